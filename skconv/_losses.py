"""Losses on the output layer's pre-activations, each fused with its output
activation: softmax cross-entropy (log-sum-exp stable), sigmoid binary
cross-entropy (softplus stable), squared error (identity output) and half the
Poisson deviance (exponential output); and the output activations that
prediction applies to the logits.

Every loss function has the signature ``loss(z, y, sample_weight, sw_sum)``
and returns ``(loss, dz)``, the weighted loss normalised by ``sw_sum`` and its
gradient with respect to ``z``, written into ``z``'s memory.
"""

import numpy as np
from scipy.special import xlogy

from ._kernels import _boundary


def _rows(z):
    """z as the kernels take it: C-contiguous float32 or float64."""
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    return np.ascontiguousarray(z)


def _output(kernel, z, *args):
    out = np.empty(z.shape, dtype=np.float64)
    kernel(_rows(z), out, *args)
    return out


# The output activations of prediction, in float64 from the logits: one
# compiled pass per row (see ``_kernels/_boundary.pyx``), each row from that
# row only, with exp and log of skconv's own (``_kernels/elementary.h``):
# numpy's float64 exp and log take another kernel on an AVX-512 CPU, the C
# library's another on a CPU without FMA, and a probability's last bits would
# follow the machine.


def softmax(z):
    """Row-wise softmax, in float64.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits; left as they are.

    Returns
    -------
    p : ndarray of shape (n, k), float64
        Each row's probabilities, ``exp(z - max)`` over its sum, so that no
        ``exp`` overflows. A row holding NaN or +inf (or only -inf) is all NaN,
        as numpy's formula gives.
    """
    return _output(_boundary.softmax_rows, z, False)


def log_softmax(z):
    """Row-wise log-softmax, in float64.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits.

    Returns
    -------
    log_p : ndarray of shape (n, k), float64
        ``(z - max) - log(sum(exp(z - max)))`` per row: no ``exp`` overflows.
    """
    return _output(_boundary.softmax_rows, z, True)


def logistic(z):
    """Element-wise ``1 / (1 + exp(-z))``, in float64, without overflow.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits.

    Returns
    -------
    p : ndarray of shape (n, k), float64
    """
    return _output(_boundary.logistic_values, z, False)


def log_logistic(z):
    """Element-wise ``log(1 / (1 + exp(-z)))``, in float64.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits.

    Returns
    -------
    log_p : ndarray of shape (n, k), float64
        ``-log1p(exp(-|z|)) - max(-z, 0)``: finite for every finite ``z``.
    """
    return _output(_boundary.logistic_values, z, True)


def exponential(z):
    """Element-wise ``exp(z)``, in float64.

    Parameters
    ----------
    z : ndarray of shape (n, k)

    Returns
    -------
    e : ndarray of shape (n, k), float64
    """
    return _output(_boundary.exp_values, z)


def _weights_column(sample_weight, sw_sum, dtype):
    return (sample_weight / sw_sum).astype(dtype, copy=False)[:, None]


def softmax_cross_entropy(z, y, sample_weight, sw_sum):
    """Weighted mean cross-entropy of softmax(z) and its gradient w.r.t. ``z``.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits; overwritten with the gradient.
    y : ndarray of shape (n,)
        Class indices in ``[0, k)``.
    sample_weight : ndarray of shape (n,)
    sw_sum : float
        The normaliser (sum of the batch's sample weights, as in ``MLPClassifier``).

    Returns
    -------
    loss : float
        ``sum_i sw_i * -log softmax(z_i)[y_i] / sw_sum``.
    dz : ndarray of shape (n, k)
        ``(softmax(z) - onehot(y)) * sw[:, None] / sw_sum``, in the memory of ``z``.
    """
    # skconv's own exp and log, as prediction's: numpy's float64 ones take another
    # kernel on an AVX-512 CPU, and the gradient, so the fitted weights, would follow it
    rows = np.arange(z.shape[0])
    loss = -np.sum(sample_weight * log_softmax(z)[rows, y])
    p = softmax(z)
    p[rows, y] -= 1
    p *= _weights_column(sample_weight, sw_sum, np.float64)
    z[...] = p
    return float(loss) / sw_sum, z


def sigmoid_binary_cross_entropy(z, y, sample_weight, sw_sum):
    """Weighted binary cross-entropy of sigmoid(z), summed over labels, and its gradient.

    The multilabel loss of ``MLPClassifier`` (its ``binary_log_loss``): each
    of the ``k`` outputs is an independent probability.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits; overwritten with the gradient.
    y : ndarray of shape (n, k)
        0/1 indicator matrix, in ``z``'s dtype.
    sample_weight : ndarray of shape (n,)
    sw_sum : float

    Returns
    -------
    loss : float
        ``sum_i sw_i * sum_k [softplus(z_ik) - y_ik z_ik] / sw_sum``, where
        ``softplus(z) - y z = -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))``
        is computed as ``-log sigmoid(-z) - y z`` (no overflow).
    dz : ndarray of shape (n, k)
        ``(sigmoid(z) - y) * sw[:, None] / sw_sum``, in the memory of ``z``.
    """
    # skconv's own exp and log, as in softmax_cross_entropy: softplus(z) = -log sigmoid(-z)
    y64 = y.astype(np.float64, copy=False)
    per_row = (-log_logistic(-z) - y64 * z).sum(axis=1)
    loss = np.sum(sample_weight * per_row)
    p = logistic(z)
    p -= y64
    p *= _weights_column(sample_weight, sw_sum, np.float64)
    z[...] = p
    return float(loss) / sw_sum, z


def squared_error(z, y, sample_weight, sw_sum):
    """Half the weighted mean squared error (identity output) and its gradient.

    The loss of ``MLPRegressor``: ``0.5 * mean`` over samples (weighted) and
    outputs. The gradient is the exact derivative of that loss; for several
    outputs it is ``MLPRegressor``'s divided by ``k`` (whose gradient is that
    of the sum over outputs).

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Predictions; overwritten with the gradient.
    y : ndarray of shape (n, k)
        Targets, in ``z``'s dtype.
    sample_weight : ndarray of shape (n,)
    sw_sum : float

    Returns
    -------
    loss : float
        ``sum_i sw_i * mean_k (z_ik - y_ik)^2 / (2 sw_sum)``.
    dz : ndarray of shape (n, k)
        ``(z - y) * sw[:, None] / (sw_sum k)``, in the memory of ``z``.
    """
    z -= y
    per_row = np.einsum("ij,ij->i", z, z).astype(np.float64, copy=False)
    k = z.shape[1]
    loss = 0.5 * float(np.sum(sample_weight * per_row)) / (sw_sum * k)
    z *= _weights_column(sample_weight, sw_sum * k, z.dtype)
    return loss, z


def half_poisson_deviance(z, y, sample_weight, sw_sum):
    """Half the weighted Poisson deviance of ``exp(z)`` (log link) and its gradient.

    ``MLPRegressor``'s ``loss='poisson'``: averaged over samples (weighted),
    summed over outputs, and zero where ``exp(z) == y``.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Log predictions; overwritten with the gradient.
    y : ndarray of shape (n, k)
        Non-negative targets, in ``z``'s dtype.
    sample_weight : ndarray of shape (n,)
    sw_sum : float

    Returns
    -------
    loss : float
        ``sum_i sw_i * sum_k [exp(z_ik) - y_ik z_ik + y_ik log(y_ik) - y_ik] / sw_sum``,
        computed in float64 whatever ``z``'s dtype; inf where the gradient
        overflows ``z``'s dtype (the batch is then not applied).
    dz : ndarray of shape (n, k)
        ``(exp(z) - y) * sw[:, None] / sw_sum``, computed in float64 and
        rounded into the memory of ``z``.
    """
    # float64: y z and y log y, each about y log y, cancel to the deviance (about
    # 1/2 a target where the fit is good), and in float32 their rounding, about
    # y log(y) 2^-24, outweighs it from counts of about 1e5 on
    z64 = z.astype(np.float64)
    y64 = y.astype(np.float64, copy=False)
    mu = exponential(z)
    per_row = (mu - y64 * z64 + (xlogy(y64, y64) - y64)).sum(axis=1)
    loss = float(np.sum(sample_weight * per_row)) / sw_sum
    mu -= y64
    mu *= _weights_column(sample_weight, sw_sum, np.float64)
    z[...] = mu
    if not np.isfinite(z).all():
        loss = np.inf
    return loss, z

"""Losses on the output layer's pre-activations, each fused with its output
activation: softmax cross-entropy (log-sum-exp stable), sigmoid binary
cross-entropy (softplus stable) and squared error (identity output).

Every loss function has the signature ``loss(z, y, sample_weight, sw_sum)``
and returns ``(loss, dz)``, the weighted loss normalised by ``sw_sum`` and its
gradient with respect to ``z``, written into ``z``'s memory.
"""

import numpy as np

from ._kernels import _boundary


def log_softmax(z):
    """Row-wise log-softmax.

    Parameters
    ----------
    z : ndarray of shape (n, k)
        Logits.

    Returns
    -------
    log_p : ndarray of shape (n, k)
        ``z - logsumexp(z)`` per row, computed as ``(z - max) - log(sum(exp(z - max)))``
        so that no ``exp`` overflows.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(z):
    """Row-wise softmax, in float64.

    Parameters
    ----------
    z : ndarray of shape (n, k), float32 or float64
        Logits; left as they are.

    Returns
    -------
    p : ndarray of shape (n, k), float64
        Each row's probabilities, computed in float64 from ``z - max`` so that
        no ``exp`` overflows: one compiled pass per row, which depends on that
        row only (see ``_kernels/_boundary.pyx``).
    """
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    p = np.empty(z.shape, dtype=np.float64)
    _boundary.softmax_rows(np.ascontiguousarray(z), p)
    return p


def log_sigmoid(z):
    """Element-wise ``log(1 / (1 + exp(-z)))``, computed as ``-logaddexp(0, -z)``.

    Parameters
    ----------
    z : ndarray
        Logits.

    Returns
    -------
    log_p : ndarray of the shape of ``z``
        Finite for every finite ``z`` (no ``exp`` overflows).
    """
    return -np.logaddexp(0, -z)


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
    rows = np.arange(z.shape[0])
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    # -log softmax(z)[y] = logsumexp(shifted z) - shifted z[y]: exact for any logits
    loss = np.sum(sample_weight * (lse - z[rows, y]).astype(np.float64, copy=False))
    z -= lse[:, None]
    np.exp(z, out=z)
    z[rows, y] -= 1
    z *= _weights_column(sample_weight, sw_sum, z.dtype)
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
        is computed as ``max(z, 0) - y z + log1p(exp(-|z|))`` (no overflow).
    dz : ndarray of shape (n, k)
        ``(sigmoid(z) - y) * sw[:, None] / sw_sum``, in the memory of ``z``.
    """
    per_row = (np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    loss = np.sum(sample_weight * per_row.astype(np.float64, copy=False))
    # sigmoid(z) = exp(log sigmoid(z)), stable for either sign
    np.exp(log_sigmoid(z), out=z)
    z -= y
    z *= _weights_column(sample_weight, sw_sum, z.dtype)
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

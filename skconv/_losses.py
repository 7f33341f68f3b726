"""Softmax cross-entropy, fused with the softmax and stable by log-sum-exp."""

import numpy as np


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
    z *= (sample_weight / sw_sum).astype(z.dtype, copy=False)[:, None]
    return float(loss) / sw_sum, z

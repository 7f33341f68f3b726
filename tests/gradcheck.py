"""Finite differences for the gradient checks of every test module."""

import numpy as np
from threadpoolctl import threadpool_limits


def numerical_gradient(loss, a, eps=1e-6):
    """Central differences of ``loss()`` with respect to every entry of ``a`` (perturbed in place).

    One thread: hundreds of tiny calls, where waking a thread team costs more
    than the work (the thread count does not change results; a test says so).
    """
    grad = np.empty_like(a)
    with threadpool_limits(1):
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss()
            a[idx] = old - eps
            down = loss()
            a[idx] = old
            grad[idx] = (up - down) / (2 * eps)
    return grad

"""Batch normalization and dropout layers.

They follow the layer interface of :mod:`skconv._layers`: ``forward(x,
training)`` caches for ``backward``, ``forward_fast(x)`` is inference (eval
mode: running statistics, no dropout). The running statistics are public
attributes, so they are fitted state (pickled, saved by skops, copied by
``Sequential.ensure_writeable`` after a read-only load) but not parameters:
neither the optimizer nor the L2 penalty sees them.
"""

import functools

import numpy as np

from ._layers import Layer, _buffer
from . import _engine


class _BatchNorm(Layer):
    """Batch normalization over every axis but the channel axis (axis 1).

    Training mode normalises each channel with the batch mean and (biased)
    variance, ``y = scale * (x - mean) / sqrt(var + eps) + shift``, and
    updates the running statistics as ``torch.nn.BatchNorm`` does::

        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)

    where ``m`` is the number of values per channel in the batch (the running
    variance is the unbiased estimate; ``m = 1`` counts as ``m / 1``). Eval
    mode uses the running statistics, so each row's output depends on that row
    only.

    Parameters
    ----------
    momentum : float, default=0.1
        Weight of the new batch statistic in the running averages (torch's
        convention; Keras' ``momentum`` is ``1 -`` this).
    eps : float, default=1e-5
        Added to the variance before the square root.

    Parameters held: ``scale`` (init 1) and ``shift`` (init 0), each of shape
    (channels,); neither gets the L2 penalty. Fitted state: ``running_mean``
    (init 0) and ``running_var`` (init 1), each of shape (channels,).
    """

    op = "batch_norm"
    fuses_relu = True

    def __init__(self, momentum=0.1, eps=1e-5):
        self.momentum = float(momentum)
        self.eps = float(eps)

    def param_specs(self):
        c = self.input_shape[0]
        return [("scale", (c,), False), ("shift", (c,), False)]

    def init_params(self, rng):
        self._scale[...] = 1
        self._shift[...] = 0
        self.running_mean = np.zeros_like(self._scale)
        self.running_var = np.ones_like(self._scale)

    @staticmethod
    def _as3d(x):
        """View of ``x`` as (n, c, m): statistics are taken over axes 0 and 2."""
        return x.reshape(x.shape[0], x.shape[1], -1)

    def forward(self, x, training=True, relu=False):
        """With ``relu``, the ReLU after the batch norm too (and its gradient in
        :meth:`backward`), in the same pass over the values."""
        if not training:
            return self.forward_fast(x, relu=relu)
        x3 = self._as3d(np.ascontiguousarray(x))
        y = _buffer(self, "_y", x3.shape, x3.dtype)
        self._statistics(x3, *_engine.batch_norm(x3, self._scale, self._shift, self.eps, y,
                                                 relu=relu), relu)
        return y.reshape(x.shape)

    def forward_add(self, x, shortcut, out, relu):
        """Training: the batch norm of x plus ``shortcut`` (then ``max(., 0)`` with
        ``relu``, as an addition's) into ``out``, an array of x's shape, in the
        pass that writes it: a residual block's last batch norm and its
        addition, the bits of the two in turn, the batch norm's output never
        written out (see ``skconv._plan.BatchNormAddStep``). :meth:`backward`
        then takes the gradient of the batch norm's output, or with ``after``
        (``out``, when ``relu``) that of ``out``."""
        x3 = self._as3d(np.ascontiguousarray(x))
        self._statistics(x3, *_engine.batch_norm(
            x3, self._scale, self._shift, self.eps, self._as3d(out), relu=relu,
            residual=self._as3d(np.ascontiguousarray(shortcut))), False)
        return out

    def _statistics(self, x3, mean, var, relu):
        """Keep what backward needs; move the running statistics."""
        # backward recomputes x_hat from x, which the layer before owns and leaves
        # alone until then: a buffer less, and a pass less through memory
        self._x, self._mean, self._var, self._relu = x3, mean, var, relu
        m = x3.size // x3.shape[1]
        mom = self.momentum
        self.running_mean *= 1 - mom
        self.running_mean += mom * mean
        self.running_var *= 1 - mom
        self.running_var += (mom * m / max(m - 1, 1)) * var

    def _affine(self):
        """The inference map as ``x * scale + shift`` per channel."""
        scale = self._scale / np.sqrt(self.running_var + self.eps)
        return scale, self._shift - self.running_mean * scale

    def forward_fast(self, x, relu=False):
        scale, shift = self._affine()
        x3 = self._as3d(x)
        y = x3 * scale[:, None] + shift[:, None]
        if relu:
            np.maximum(y, 0, out=y)
        return y.reshape(x.shape)

    def fast_call(self, n, dtype, relu=False):
        return functools.partial(self.forward_fast, relu=relu)

    def folded(self, w, b, axis):
        """Weights and bias of the layer before (its outputs along ``axis`` of
        ``w``: 0 for a convolution's (f, ...), 1 for a dense layer's (n_in,
        units)) with this batch norm's inference map applied to its outputs:
        ``w * scale`` and ``b * scale + shift`` (``shift`` for no bias)."""
        scale, shift = self._affine()
        w = w * (scale[:, None] if axis == 0 else scale[None, :])
        return w, shift if b is None else b * scale + shift

    def backward(self, dy, need_dx=True, after=None, formed=False):
        """Closed form per channel (see :func:`skconv.ops.batch_norm_backward`).
        With ``after``, the output of :meth:`forward_add` with its ReLU, dy is
        the gradient of that output, which is masked in place as the ReLU's
        gradient (that of the shortcut too) while the batch norm's is formed.
        With ``formed`` (and need_dx), dx is returned as an
        _engine.BatchNormGradient, for the convolution before to form as it
        reads it: dy and the input are read then, before anything writes them."""
        dy3 = self._as3d(np.ascontiguousarray(dy))
        dx = _buffer(self, "_dx", dy3.shape, dy3.dtype) if need_dx else None
        formed = formed and need_dx
        gradient = _engine.batch_norm_backward(
            dy3, self._x, self._mean, self._var, self._scale, self._shift, self.eps,
            dx.reshape(dy.shape) if formed else dx, self._dscale, self._dshift, relu=self._relu,
            after=None if after is None else self._as3d(after), formed=formed)
        self._x = self._mean = self._var = None
        if formed:
            return gradient
        return None if dx is None else dx.reshape(dy.shape)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of conv feature maps (n, c, h, w): statistics per
    channel over n, h and w. See :class:`_BatchNorm` for the parameters."""


class BatchNorm1d(_BatchNorm):
    """Batch normalization of dense features (n, features): statistics per
    feature over the batch. See :class:`_BatchNorm` for the parameters."""


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability
    ``rate`` and the others are scaled by ``1 / (1 - rate)``; identity at
    inference.

    The mask is drawn from a ``numpy.random.Generator`` given with
    :meth:`set_rng` (the estimator derives it from its ``random_state`` on
    every fit); it is not fitted state, so it is not pickled.

    Parameters
    ----------
    rate : float in [0, 1)
    """

    op = "dropout"

    def __init__(self, rate):
        self.rate = float(rate)

    def set_rng(self, rng):
        """Draw the masks of the following training passes from ``rng``."""
        self._rng = rng

    def forward(self, x, training=True):
        if not training or self.rate == 0:
            return x
        rng = getattr(self, "_rng", None)
        if rng is None:
            raise RuntimeError("Dropout needs set_rng(rng) before a training pass")
        mask = _buffer(self, "_mask", x.shape, x.dtype)
        # the uniforms are float32 whatever the model's dtype: a float64 draw
        # takes other bits of the stream, and a float64 fit would drop other
        # values than the float32 fit it should reproduce
        u = mask if x.dtype == np.float32 else _buffer(self, "_u", x.shape, np.float32)
        rng.random(dtype=np.float32, out=u)
        # mask <- (u >= rate) / (1 - rate), in place
        np.greater_equal(u, np.float32(self.rate), out=mask)
        mask *= 1 / (1 - self.rate)
        # a new array: the activation before this layer caches its output for backward
        y = _buffer(self, "_y", x.shape, x.dtype)
        return np.multiply(x, mask, out=y)

    def forward_fast(self, x):
        return x

    def backward(self, dy, need_dx=True):
        if self.rate == 0:
            return dy
        dy *= self._mask
        return dy

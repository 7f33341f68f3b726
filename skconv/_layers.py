"""Layers of the network: forward and backward of each kind, side by side.

Every tensor is NCHW (or ``(n, features)`` after :class:`Flatten`). A layer is
configured once with :meth:`Layer.build`, which resolves its geometry for a
per-sample input shape and returns its per-sample output shape. Layers with
parameters declare them with :meth:`Layer.param_specs`; the network allocates
one flat parameter array and one flat gradient array and hands each layer
views into them with :meth:`Layer.bind`, so a layer reads ``self.w`` and
writes ``self.dw`` without ever owning memory of its own.

Conventions that keep the design open to layers with running statistics and
train/eval modes (batch norm, dropout):

- ``forward(x, training)`` is the training path; it caches what ``backward``
  needs. ``forward_fast(x)`` is the inference path: no caches, no side effects.
- Public attributes are configuration and fitted state (pickled); attributes
  starting with ``_`` are parameter views, caches and scratch buffers
  (dropped when pickling and rebuilt by the network).
"""

import functools

import numpy as np
from scipy.special import expit

from . import ops
from . import _engine


def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _check_input(layer, x):
    """Refuse an input of another per-sample shape than the layer was built for:
    the unchecked kernels behind ``forward`` trust the built geometry."""
    if x.shape[1:] != layer.input_shape:
        raise ValueError(
            f"{type(layer).__name__} was built for inputs of shape {layer.input_shape} "
            f"per sample, got {x.shape[1:]}"
        )


def _buffer(layer, name, shape, dtype):
    """Return the scratch array ``layer.<name>``, re-allocated only when its shape changes.

    Training reuses these across the batches of a fit: a fresh array per
    batch costs the kernel's zeroing of every page it touches. The network
    drops them when a fit ends (:meth:`Layer.release_buffers`), not between
    partial_fit calls.
    """
    buf = getattr(layer, name, None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype=dtype)
        setattr(layer, name, buf)
        layer.__dict__.setdefault("_buffer_names", set()).add(name)
    return buf


class Layer:
    """Base layer: no parameters, identity geometry.

    A layer whose ``forward`` and ``forward_fast`` take ``relu=True`` applies
    a ReLU that follows it in the same call (``fuses_relu``), and its
    ``backward`` then applies the ReLU's gradient too: the network skips that
    activation, which saves a call per block on a one-row prediction and a
    pass over the pooled maps in training.
    """

    #: what the layer computes, for the fusion rules (skconv._plan) and the
    #: ONNX and inspection tables: 'conv', 'max_pool', 'dense', 'relu', ...
    op = None
    fuses_relu = False
    #: the function of :meth:`fast_call` takes ``out=``, a C-contiguous array
    #: of its output's shape and dtype to write into
    fast_out = False
    #: a convolution or dense layer: batch norm after it folds into its
    #: weights at inference (``fast_call(..., fold=batch_norm)``)
    folds_batch_norm = False
    #: works in place on its input, which the network then lets no other node read
    in_place = False
    #: ``backward`` takes ``add_to``, the gradient of its input from the input's
    #: other readers, and returns its own input gradient plus that
    adds_gradient = False

    def build(self, input_shape):
        """Resolve the geometry for per-sample ``input_shape`` (one per input of
        the node); return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.input_shape
        return self.output_shape

    def param_specs(self):
        """List of ``(name, shape, is_weight)``; weights get the L2 penalty, biases not."""
        return []

    def bind(self, params, grads):
        """Receive views ``{name: array}`` into the network's flat parameters and gradients."""
        for name, view in params.items():
            setattr(self, "_" + name, view)
        for name, view in grads.items():
            setattr(self, "_d" + name, view)

    def init_params(self, rng):
        """Draw initial parameters in place from ``rng`` (a ``RandomState``)."""

    def forward(self, x, training=True):
        return x

    def backward(self, dy, need_dx=True):
        return dy

    def forward_fast(self, x):
        return self.forward(x, training=False)

    def fast_call(self, n, dtype, relu=False):
        """:meth:`forward_fast` for C-contiguous inputs of ``n`` samples of the shape
        the layer was built for, of ``dtype``, as a function of x alone.

        With ``relu`` (only asked of a layer that ``fuses_relu``) the function
        applies the ReLU that follows. A layer with a kernel binds here, once,
        what its call derives from the shapes (threads, scratch sizes, a
        product's layout, for the current ``_engine.plan_context()``), its
        geometry and its parameter views: the function goes straight to ops.
        The network keeps these functions keyed on the input shape and that
        context, checks the shape before it plans, and drops them when it
        rebinds the parameters. Every call allocates its own scratch, and its
        output unless it takes ``out=`` (``fast_out``), so threads may call it
        at once; the one state shared, a Winograd convolution's kept filters
        (``_engine.WinogradFilters``), is replaced whole, never changed.
        """
        return self.forward_fast

    def release_buffers(self):
        """Drop the scratch arrays training kept across batches."""
        for name in self.__dict__.pop("_buffer_names", ()):
            delattr(self, name)

    def __getstate__(self):
        # a copy first (one step under the GIL): a prediction in another thread
        # may set a cache of the layer while this reads its attributes
        return {k: v for k, v in self.__dict__.copy().items() if not k.startswith("_")}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__getstate__().items())
        return f"{type(self).__name__}({args})"


def _init_uniform(rng, view, fan_in, fan_out, init):
    """He uniform (``init='he'``) or Glorot uniform, drawn in float64 then cast.

    Drawing in float64 makes float32 and float64 networks start from the same
    weights (up to rounding).
    """
    if init == "he":
        bound = np.sqrt(6.0 / fan_in)
    else:
        bound = np.sqrt(6.0 / (fan_in + fan_out))
    view[...] = rng.uniform(-bound, bound, size=view.shape)


class Conv2D(Layer):
    """2D convolution.

    Parameters
    ----------
    filters : int
    kernel_size : int or (kh, kw)
    stride, dilation : int or pair
    padding : 'same', 'valid', int or pair
        ``'same'`` gives an output of ``ceil(h / sh)`` rows (and likewise for
        columns); when the total padding this needs is odd, the extra row or
        column goes at the bottom or right, as in TensorFlow.
    init : 'he' or 'glorot'
    name : str
        Used in error messages, e.g. ``'conv block 2'``.
    bias : bool, default=True
        False when a batch norm follows, whose shift makes a bias redundant.
    groups : int, default=1
        Grouped convolution: the channels and the filters are split into
        ``groups`` groups, filter group ``g`` seeing channel group ``g`` only
        (``torch.nn.Conv2d``'s ``groups``); ``groups`` = channels = filters is
        a depthwise convolution. Each group is its own product, never a dense
        one over zeros (see ``_engine.grouped_conv2d``).
    series : int, default=0
        For a network of series (images of one row whose width is time), the
        length of its input series; 0 for images. Errors then speak of
        lengths, and a kernel longer than the series it reads is refused
        whatever the padding (it would mostly read zeros).

    Parameters held: ``w`` of shape (filters, c // groups, kh, kw) and, with
    ``bias``, ``b`` of shape (filters,).
    """

    op = "conv"
    fuses_relu = True
    fast_out = True
    folds_batch_norm = True
    adds_gradient = True
    groups = 1  # models saved before grouped convolutions existed
    series = 0  # and before series

    def __init__(self, filters, kernel_size=3, stride=1, padding="same", dilation=1,
                 init="he", name="conv", bias=True, groups=1, series=0):
        self.series = int(series)
        self.filters = int(filters)
        self.groups = int(groups)
        self.bias = bool(bias)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self.init = init
        self.name = name

    def build(self, input_shape):
        c, h, w = self.input_shape = tuple(input_shape)
        if c % self.groups or self.filters % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the {c} input channels and the "
                f"{self.filters} filters of {self.name}"
            )
        pads, extra, out = [], [], []
        axes = ("height", "length") if self.series else ("height", "width")
        for axis, size, k, s, d in zip(axes, (h, w), self.kernel_size,
                                       self.stride, self.dilation):
            span = d * (k - 1) + 1
            if self.series and axis == "length" and span > size:
                raise ValueError(
                    f"kernel_size={k} (dilation={d}) in {self.name} is longer than the "
                    f"series it reads, of length {size}"
                    + (" after the poolings and strides before it" if size < self.series
                       else "")
                    + ": use a smaller kernel, fewer poolings or strides, or longer series"
                )
            if self.padding == "same":
                o = -(-size // s)
                total = max((o - 1) * s + span - size, 0)
                p, e = total // 2, total % 2
            else:
                p = 0 if self.padding == "valid" else self.padding[len(pads)]
                e = 0
                if size + 2 * p < span:
                    raise ValueError(
                        f"kernel_size={k} (dilation={d}, padding={p}) does not fit "
                        f"input of {axis} {size} in {self.name}: use a smaller kernel or "
                        "dilation, more padding ('same'), fewer poolings or strides "
                        "before it, or larger images"
                    )
                o = (size + 2 * p - span) // s + 1
            pads.append(p)
            extra.append(e)
            out.append(o)
        self.pad = tuple(pads)
        # bottom/right padding that symmetric padding cannot express ('same' only)
        self.extra_pad = tuple(extra)
        self.output_shape = (self.filters, out[0], out[1])
        self._g = None
        return self.output_shape

    def param_specs(self):
        kh, kw = self.kernel_size
        specs = [("w", (self.filters, self.input_shape[0] // self.groups, kh, kw), True)]
        return specs + [("b", (self.filters,), False)] if self.bias else specs

    def init_params(self, rng):
        kh, kw = self.kernel_size
        fan_in = self.input_shape[0] // self.groups * kh * kw
        fan_out = self.filters // self.groups * kh * kw
        _init_uniform(rng, self._w, fan_in, fan_out, self.init)
        if self.bias:
            self._b[...] = 0

    def _padded(self, x):
        eh, ew = self.extra_pad
        if eh or ew:
            x = np.pad(x, ((0, 0), (0, 0), (0, eh), (0, ew)))
        return x

    def _geometry(self):
        """The kernels' geometry of the (padded) input, resolved once."""
        g = getattr(self, "_g", None)
        if g is None:
            c, h, w = self.input_shape
            eh, ew = self.extra_pad
            g = self._g = _engine.geometry((1, c, h + eh, w + ew), self.kernel_size, self.stride,
                                        self.pad, self.dilation)
        return g

    def _plan(self, n, dtype):
        """The kernel's plan (``_engine.ConvPlan``) for n samples of dtype in the current
        ``_engine.plan_context()``: derived once per key and used by training's
        batches and inference alike; None for a grouped convolution (its
        products plan per call)."""
        if self.groups != 1:
            return None
        plans = self.__dict__.setdefault("_plans", {})
        key = (n, np.dtype(dtype), _engine.plan_context())
        plan = plans.get(key)
        if plan is None:
            if len(plans) >= 16:  # batch sizes seen: the fit's, its last batch's, predict's
                plans.clear()
            plan = plans[key] = _engine.conv2d_plan(self._geometry(), self.filters, key[1], n)
        return plan

    def _weights(self, fold=None):
        """``(w as (f, c // groups * kh * kw), b or None)``; with ``fold``, a batch
        norm after this layer, those of the convolution followed by it at inference."""
        w, b = self._w.reshape(self.filters, -1), (self._b if self.bias else None)
        return (w, b) if fold is None else fold.folded(w, b, axis=0)

    def _conv(self, x, w, b, out=None, plan=None, pool2=None, relu=False, residual=None,
              filters=None):
        """The kernel call on the padded x: the dense product, or a group's each;
        ``relu`` (without ``pool2``) applied as the output is written, after
        adding ``residual`` (one group only); ``filters``, a Winograd product's
        kept filters (``_engine.WinogradFilters``) or None."""
        if self.groups == 1:
            return _engine.conv2d(x, w, b, self._geometry(), out=out, plan=plan, pool2=pool2,
                                  relu=relu, residual=residual, filters=filters)
        return _engine.grouped_conv2d(x, w, b, self._geometry(), self.groups, out=out, relu=relu)

    def forward(self, x, training=True, relu=False):
        if not training:
            return self.forward_fast(x, relu=relu)
        # x comes from the estimator or a previous layer: C-contiguous, of the
        # network's dtype and shape, so the unchecked path of ops serves
        _check_input(self, x)
        x = self._x = self._training_input(x)
        # backward reads the taps from x, or unfolds one sample at a time: no
        # unfolded batch is kept (it took more memory than the activations)
        y = _buffer(self, "_y", (x.shape[0],) + self.output_shape, x.dtype)
        self._relu_y = y if relu else None
        return self._conv(x, *self._weights(), out=y, plan=self._plan(len(x), x.dtype),
                          relu=relu)

    def forward_pooled(self, x, relu, out, argmax):
        """The training forward followed by a 2x2 max pooling of stride 2 (then
        ``max(., 0)`` with ``relu``), into the pooling's buffers ``out`` and
        ``argmax``: each sample's output is pooled while in cache, never
        written out (``pool2`` of _engine.conv2d). Only for a stride of 1; see
        ``skconv._plan.ConvPoolStep``."""
        _check_input(self, x)
        x = self._x = self._training_input(x)
        return self._conv(x, *self._weights(), out=out, plan=self._plan(len(x), x.dtype),
                          pool2=(relu, argmax))

    def _training_input(self, x):
        """x as training's kernels take it: the dense product's read 'same'
        padding's extra bottom row and right column as zeros (see
        _engine.conv2d and conv2d_backward), a group's each get them."""
        return np.ascontiguousarray(x if self.groups == 1 else self._padded(x))

    def forward_fast(self, x, relu=False):
        _check_input(self, x)
        return self._conv(np.ascontiguousarray(self._padded(x)), *self._weights(),
                          plan=self._plan(len(x), x.dtype), relu=relu)

    def fast_call(self, n, dtype, relu=False, pool2=False, fold=None, residual=False):
        """With ``pool2`` (a stride of 1, one group only), the call pools as
        :meth:`forward_pooled` does, then applies ``relu``. With ``fold``, a
        batch norm after this layer, the call computes both (see
        :meth:`_weights`). With ``residual`` (one group, no pooling), the
        function takes a second input, of the output's shape, which it adds to
        the output before the ReLU: a residual block's shortcut."""
        pooling = (relu, None) if pool2 else None
        plan = self._plan(n, dtype)
        # the implicit product reads 'same' padding's extra bottom row and right
        # column as zeros of its padded image: no padded copy of x
        padded = self._padded if (self.extra_pad[0] or self.extra_pad[1]) and self.groups != 1 \
            else None
        if fold is None:
            w, b = self._weights()
            weights = lambda: (w, b)  # noqa: E731
        else:
            weights = functools.partial(self._weights, fold)

        # a Winograd product's transformed filters, kept while they stay the same
        filters = (_engine.WinogradFilters()
                   if plan is not None and isinstance(plan.implicit, (_engine.WinogradLayout,
                                                                     _engine.Winograd2dLayout))
                   else None)

        if residual:
            def call(x, shortcut, out=None):
                return self._conv(x, *weights(), out=out, plan=plan, relu=relu,
                                  residual=shortcut, filters=filters)
            return call

        def call(x, out=None):
            return self._conv(x if padded is None else padded(x), *weights(), out=out, plan=plan,
                              pool2=pooling, relu=relu and not pool2, filters=filters)
        return call

    def backward(self, dy, need_dx=True, unpool=None, add_to=None, phase_dx=False):
        """With ``unpool``, ``(argmax, relu_y)`` of :meth:`forward_pooled`, dy is the
        gradient of the pooled output (see _engine.conv2d_backward). With
        ``add_to`` (and dx), an array of the input's shape or an
        _engine.PhaseGradient: dx + add_to is returned, where the input
        gradient is a convolution of dy added as its product writes it
        (``residual`` of _engine.conv2d_backward). With ``phase_dx``, a 1x1
        strided convolution without padding returns its dx as an
        _engine.PhaseGradient (for a network's backward pass, which adds it
        to its input's other gradient)."""
        x = self._x
        dx = _buffer(self, "_dx", x.shape, x.dtype) if need_dx else None
        w = self._w.reshape(self.filters, -1)
        relu_y, self._relu_y = getattr(self, "_relu_y", None), None
        if relu_y is not None or self.groups != 1:
            dy = _engine.dense(dy)
        if not isinstance(dy, _engine.BatchNormGradient):
            # (a batch norm's gradient, formed as the product reads it, is not)
            dy = np.ascontiguousarray(dy)
        if relu_y is not None:
            _relu_backward(dy, relu_y)
        if self.groups == 1:
            dx, dw, db = _engine.conv2d_backward(
                dy, x, w, self._geometry(), need_dx, dx=dx, unpool=unpool, residual=add_to,
                need_db=self.bias, phase_dx=phase_dx and x.shape[1:] == self.input_shape)
            add_to = None
        else:
            dx, dw, db = _engine.grouped_conv2d_backward(dy, x, w, self._geometry(), self.groups,
                                                      need_dx, dx=dx)
        self._dw[...] = dw.reshape(self._dw.shape)
        if self.bias:
            self._db[...] = db
        self._x = None
        if dx is not None and dx.shape[1:] != self.input_shape:
            _, h, w = self.input_shape
            dx = np.ascontiguousarray(dx[:, :, :h, :w])
        if dx is not None and add_to is not None:
            # the bits of the network's sum of its input's gradients (add_to + dx)
            dx = _engine.add(np.ascontiguousarray(_engine.dense(add_to)), dx, dx)
        return dx


class _Pool2D(Layer):
    """Shared geometry of the pooling layers.

    A window larger than the feature map is clipped to it, per axis, so small
    inputs never break an architecture: a 2x2 pool on a 1x5 map pools 1x2
    windows. The stride equals the (clipped) window; windows that do not fit
    at the bottom/right edge are dropped.
    """

    def __init__(self, pool_size=2):
        self.pool_size = _pair(pool_size)

    def build(self, input_shape):
        c, h, w = self.input_shape = tuple(input_shape)
        self.window = (min(self.pool_size[0], h), min(self.pool_size[1], w))
        self.output_shape = (c, h // self.window[0], w // self.window[1])
        self._g = None
        return self.output_shape


class MaxPool2D(_Pool2D):
    """Max pooling; the gradient goes to the first maximum of each window."""

    op = "max_pool"
    fuses_relu = True
    fast_out = True

    def _geometry(self):
        g = getattr(self, "_g", None)
        if g is None:
            g = self._g = _engine.pool_geometry((1,) + self.input_shape, self.window, None, 0)
        return g

    def forward(self, x, training=True, relu=False):
        if not training:
            return self.forward_fast(x, relu=relu)
        _check_input(self, x)
        # buffers that live across batches of the same size
        shape = (x.shape[0],) + self.output_shape
        out = _buffer(self, "_y", shape, x.dtype), _buffer(self, "_argmax", shape, np.intp)
        y, _ = _engine.max_pool2d(np.ascontiguousarray(x), self._geometry(), True, relu=relu,
                               out=out)
        self._x_shape = x.shape
        self._relu_y = y if relu else None
        return y

    def forward_fast(self, x, relu=False):
        _check_input(self, x)
        return _engine.max_pool2d(np.ascontiguousarray(x), self._geometry(), False, relu=relu)

    def fast_call(self, n, dtype, relu=False):
        g, n_threads = self._geometry(), _engine.pool_threads((n,) + self.input_shape)
        return lambda x, out=None: _engine.max_pool2d(
            x, g, False, relu=relu, out=None if out is None else (out, None), n_threads=n_threads)

    def backward(self, dy, need_dx=True):
        dx = _buffer(self, "_dx", self._x_shape, dy.dtype)
        relu_y, self._relu_y = self._relu_y, None
        return _engine.max_pool2d_backward(np.ascontiguousarray(dy), self._argmax, self._x_shape,
                                        dx, relu_y=relu_y, g=self._geometry())


class AvgPool2D(_Pool2D):
    """Average pooling."""

    op = "avg_pool"

    def forward(self, x, training=True):
        if training:
            self._x_shape = x.shape
        return ops.avg_pool2d(x, self.window)

    def backward(self, dy, need_dx=True):
        return ops.avg_pool2d_backward(dy, self._x_shape, self.window)


class Flatten(Layer):
    """(n, c, h, w) -> (n, c * h * w), in (c, h, w) row-major order. No copy."""

    op = "flatten"

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.output_shape = (int(np.prod(self.input_shape)),)
        return self.output_shape

    def forward(self, x, training=True):
        return x.reshape(x.shape[0], -1)

    def fast_call(self, n, dtype, relu=False):
        shape = (n,) + self.output_shape
        return lambda x: x.reshape(shape)

    def backward(self, dy, need_dx=True):
        return dy.reshape((dy.shape[0],) + self.input_shape)


class Dense(Layer):
    """Fully connected layer ``y = x @ w + b``.

    Parameters held: ``w`` of shape (n_in, units) and, with ``bias`` (default
    True; False when a batch norm follows), ``b`` of shape (units,): the
    layout of ``MLPClassifier.coefs_``.
    """

    op = "dense"
    fuses_relu = True
    fast_out = True
    folds_batch_norm = True

    def __init__(self, units, init="he", bias=True):
        self.units = int(units)
        self.init = init
        self.bias = bool(bias)

    def build(self, input_shape):
        (n_in,) = self.input_shape = tuple(input_shape)
        self.output_shape = (self.units,)
        return self.output_shape

    def param_specs(self):
        specs = [("w", (self.input_shape[0], self.units), True)]
        return specs + [("b", (self.units,), False)] if self.bias else specs

    def init_params(self, rng):
        _init_uniform(rng, self._w, self.input_shape[0], self.units, self.init)
        if self.bias:
            self._b[...] = 0

    def forward(self, x, training=True, relu=False):
        if not training:
            return self.forward_fast(x, relu=relu)
        _check_input(self, x)
        self._x = x
        # the training batch size is fixed, so this buffer lives across batches
        y = _buffer(self, "_y", (x.shape[0], self.units), x.dtype)
        self._relu_y = y if relu else None
        return _engine.matmul(x, self._w, self._b if self.bias else None, out=y, relu=relu)

    def forward_fast(self, x, relu=False):
        # x comes from a previous layer, of the network's dtype and shape: the
        # unchecked product of ops serves (any strides; see ops.linear)
        _check_input(self, x)
        return _engine.matmul(x, self._w, self._b if self.bias else None, relu=relu)

    def fast_call(self, n, dtype, relu=False, fold=None):
        """With ``fold``, a batch norm after this layer, the call computes both,
        folding it into the weights at each call (see ``_BatchNorm.folded``)."""
        plan = _engine.matmul_plan(n, self.units, self.input_shape[0])
        if fold is None:
            w, b = self._w, self._b if self.bias else None
            return lambda x, out=None: _engine.matmul(x, w, b, out=out, relu=relu, plan=plan)

        def call(x, out=None):
            w, b = fold.folded(self._w, self._b if self.bias else None, axis=1)
            return _engine.matmul(x, w, b, out=out, relu=relu, plan=plan)
        return call

    def backward(self, dy, need_dx=True):
        # ops.linear_backward's products, written straight into the gradient
        # view and a buffer kept across batches: fresh arrays of this size
        # (2 MB for 4096 -> 128) cost page faults and a copy every batch
        x, self._x = self._x, None
        relu_y, self._relu_y = self._relu_y, None
        dy = np.ascontiguousarray(dy)
        if relu_y is not None:
            _relu_backward(dy, relu_y)
        _engine.matmul(x.T, dy, out=self._dw)
        if self.bias:
            self._db[...] = dy.sum(axis=0)
        if not need_dx:
            return None
        return _engine.matmul(dy, self._w.T, out=_buffer(self, "_dx", x.shape, x.dtype))


def _relu_backward(dy, y):
    """dy *= (y > 0), in place: the gradient of the ReLU whose output is y."""
    _engine.relu_backward(dy, y)


class Activation(Layer):
    """Element-wise ``relu``, ``tanh``, ``logistic`` or ``identity``.

    Works in place on its input (and on ``dy`` in backward): the network puts
    an activation only after a layer whose output it owns.
    """

    in_place = True

    def __init__(self, kind):
        self.kind = kind

    @property
    def op(self):
        return self.kind

    def forward(self, x, training=True):
        if self.kind == "relu":
            np.maximum(x, 0, out=x)
        elif self.kind == "tanh":
            np.tanh(x, out=x)
        elif self.kind == "logistic":
            expit(x, out=x)
        if training:
            self._y = x
        return x

    def backward(self, dy, need_dx=True):
        y, self._y = self._y, None
        if self.kind == "relu":
            _relu_backward(dy, y)
        elif self.kind == "tanh":
            dy *= 1 - y * y
        elif self.kind == "logistic":
            dy *= y * (1 - y)
        return dy


class Add(Layer):
    """The sum of two inputs of one shape: where a residual block's branches meet.

    ``backward`` gives each input the output's gradient (the second a copy:
    the branches' layers may work on theirs in place).
    """

    op = "add"
    fuses_relu = True
    fast_out = True

    def __init__(self, name="add", series=False):
        self.name = name
        self.series = series  # the network reads series: its maps are one row high

    def build(self, *input_shapes):
        shapes = [tuple(s) for s in input_shapes]
        if len(shapes) != 2 or shapes[0] != shapes[1]:
            if self.series:
                described = [f"series of length {w} in {c} channels" for c, _, w in shapes]
            else:
                described = [f"{h}x{w} maps of {c} channels" for c, h, w in shapes]
            raise ValueError(
                f"the body of {self.name} gives {described[0]} and its shortcut "
                f"{described[1]}, which cannot be added: a residual body must keep "
                "the size its strides give ('same' padding)"
            )
        self.input_shape = self.output_shape = shapes[0]
        return self.output_shape

    def forward(self, a, b, training=True, relu=False):
        if not training:
            return self.forward_fast(a, b, relu=relu)
        y = _buffer(self, "_y", a.shape, a.dtype)
        _engine.add(np.ascontiguousarray(a), np.ascontiguousarray(b), y, relu=relu)
        self._relu_y = y if relu else None
        return y

    def forward_fast(self, a, b, relu=False, out=None):
        y = np.empty_like(a) if out is None else out
        return _engine.add(np.ascontiguousarray(a), np.ascontiguousarray(b), y, relu=relu)

    def fast_call(self, n, dtype, relu=False):
        return functools.partial(self.forward_fast, relu=relu)

    def backward(self, dy, need_dx=True):
        relu_y, self._relu_y = getattr(self, "_relu_y", None), None
        dy = np.ascontiguousarray(dy)
        if relu_y is None:
            return dy, dy.copy()
        copy = np.empty_like(dy)
        _engine.relu_backward(dy, relu_y, copy)
        return dy, copy


class GlobalPool2D(Layer):
    """Global average or max pooling: (n, c, h, w) -> (n, c), one value per map.

    Parameters
    ----------
    kind : {'avg', 'max'}
        The mean of each feature map (its gradient spread evenly over the
        map), or its maximum (the gradient going to the first maximum).
    """

    op = "global_pool"
    fast_out = True

    def __init__(self, kind="avg"):
        if kind not in ("avg", "max"):
            raise ValueError(f"global pooling kind={kind!r} must be 'avg' or 'max'")
        self.kind = kind

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"global pooling takes feature maps (c, h, w), got "
                             f"{self.input_shape} per sample")
        self.output_shape = (self.input_shape[0],)
        return self.output_shape

    def forward(self, x, training=True):
        _check_input(self, x)
        x = np.ascontiguousarray(x)
        if not training:
            return self.forward_fast(x)
        y = _buffer(self, "_y", (x.shape[0],) + self.output_shape, x.dtype)
        self._x_shape = x.shape
        if self.kind == "avg":
            return _engine.global_avg_pool2d(x, out=y)
        argmax = _buffer(self, "_argmax", y.shape, np.intp)
        return _engine.global_max_pool2d(x, out=y, argmax=argmax)[0]

    def forward_fast(self, x, out=None):
        x = np.ascontiguousarray(x)
        if self.kind == "avg":
            return _engine.global_avg_pool2d(x, out=out)
        return _engine.global_max_pool2d(x, out=out)[0]

    def fast_call(self, n, dtype, relu=False):
        return self.forward_fast

    def backward(self, dy, need_dx=True):
        dx = _buffer(self, "_dx", self._x_shape, dy.dtype)
        dy = np.ascontiguousarray(dy)
        if self.kind == "avg":
            return _engine.global_avg_pool2d_backward(dy, self._x_shape, dx=dx)
        return _engine.global_max_pool2d_backward(dy, self._argmax, self._x_shape, dx=dx)

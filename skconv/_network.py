"""Sequential network over flat parameter and gradient arrays."""

import numpy as np

from . import ops
from ._layers import Activation, MaxPool2D
from ._losses import softmax_cross_entropy
from ._normalization import Dropout, _BatchNorm


# Input shapes whose planned inference calls a network keeps (see forward_fast):
# prediction meets a few (its chunk, the last chunk, one row), never many.
_MAX_FAST_PLANS = 16


class Sequential:
    """A stack of layers whose parameters live in one flat array.

    Layout of ``params`` (and of ``grads``, element for element): first every
    weight, layer by layer, then every bias, layer by layer. Each layer sees
    views into both arrays, so an optimizer updates the whole network with one
    array operation and the L2 penalty is one slice, ``params[:n_weights]``.

    Parameters
    ----------
    layers : list of Layer
    input_shape : tuple (c, h, w) or (n_features,)
        Per-sample shape of the network input.
    dtype : numpy dtype or its name
        Stored as its name (``'float32'``), so the fitted state holds plain values.
    """

    def __init__(self, layers, input_shape, dtype):
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype).name
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape)
        self.output_shape = shape
        specs = [(i, name, tuple(shape), is_w) for i, layer in enumerate(self.layers)
                 for name, shape, is_w in layer.param_specs()]
        # weights first, then biases: stable sort on "is a bias"
        self._layout = sorted(specs, key=lambda s: not s[3])
        self.n_weights = sum(int(np.prod(s[2])) for s in specs if s[3])
        self.n_params = sum(int(np.prod(s[2])) for s in specs)
        # a layer needs to compute dx only if some layer before it has parameters
        self.need_dx = []
        seen_params = False
        for layer in self.layers:
            self.need_dx.append(seen_params)
            seen_params = seen_params or bool(layer.param_specs())
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self._bind(self.params)

    def _bind(self, params):
        """Point every layer's parameter views into ``params`` and a fresh ``grads``.

        Drops the planned inference calls, which hold the old views.
        """
        self._fast_calls = {}
        self.params = params
        self.grads = np.zeros(self.n_params, dtype=self.dtype)
        views = [({}, {}) for _ in self.layers]
        offset = 0
        for i, name, shape, _ in self._layout:
            size = int(np.prod(shape))
            views[i][0][name] = params[offset:offset + size].reshape(shape)
            views[i][1][name] = self.grads[offset:offset + size].reshape(shape)
            offset += size
        for layer, (p, g) in zip(self.layers, views):
            layer.bind(p, g)

    def param_arrays(self):
        """List of ``(layer_index, name, view)`` for every parameter, in layer order."""
        out = []
        offset = 0
        for i, name, shape, _ in self._layout:
            size = int(np.prod(shape))
            out.append((i, name, self.params[offset:offset + size].reshape(shape)))
            offset += size
        return sorted(out, key=lambda t: t[0])

    def init_params(self, rng):
        """Initialise every parameter from ``rng``, layer by layer."""
        for layer in self.layers:
            layer.init_params(rng)

    @property
    def largest_activation(self):
        """The most values one row has at any step of a forward pass, input included."""
        largest = self.__dict__.get("_largest_activation")
        if largest is None:
            shapes = [self.input_shape] + [layer.output_shape for layer in self.layers]
            largest = self._largest_activation = max(int(np.prod(s)) for s in shapes)
        return largest

    def rows_per_pass(self, budget):
        """Rows of a forward pass whose largest activation fits in ``budget`` bytes (at least 1)."""
        return max(1, budget // (self.largest_activation * self.params.itemsize))

    def set_params(self, params):
        """Copy ``params`` in, first making the storage writeable if needed."""
        self.ensure_writeable()
        self.params[...] = params

    def ensure_writeable(self):
        """After loading with ``mmap_mode='r'``, copy read-only arrays so training can go on.

        That is the flat parameters and any array a layer keeps as fitted state
        (public attributes, such as running statistics).
        """
        if not self.params.flags.writeable:
            self._bind(np.array(self.params))
        for layer, name, value in self._state_arrays():
            if not value.flags.writeable:
                setattr(layer, name, np.array(value))

    def _state_arrays(self):
        """``(layer, name, array)`` for every array a layer keeps as fitted state.

        Those are its public array attributes, such as batch norm's running
        statistics: saved with the model, but not parameters (the optimizer and
        the L2 penalty never see them).
        """
        return [(layer, name, value) for layer in self.layers
                for name, value in layer.__getstate__().items()
                if isinstance(value, np.ndarray)]

    def snapshot(self):
        """A copy of the parameters and the fitted state, for :meth:`restore`."""
        return self.params.copy(), [value.copy() for _, _, value in self._state_arrays()]

    def restore(self, snapshot):
        """Go back to a :meth:`snapshot`: parameters and running statistics together."""
        params, state = snapshot
        self.set_params(params)
        for (layer, name, _), value in zip(self._state_arrays(), state):
            setattr(layer, name, value.copy())

    @property
    def needs_rng(self):
        """Whether some layer draws random numbers in training (dropout)."""
        return any(hasattr(layer, "set_rng") for layer in self.layers)

    def set_rng(self, rng):
        """Give every layer that draws random numbers in training the generator ``rng``."""
        for layer in self.layers:
            if hasattr(layer, "set_rng"):
                layer.set_rng(rng)

    def release_buffers(self):
        """Drop the scratch arrays the layers keep between training batches."""
        for layer in self.layers:
            layer.release_buffers()

    def _fuses_relu_after(self, i):
        """Whether layer ``i`` applies the ReLU that follows it (see ``Layer.fuses_relu``)."""
        layers = self.layers
        return (layers[i].fuses_relu and i + 1 < len(layers)
                and type(layers[i + 1]) is Activation and layers[i + 1].kind == "relu")

    def _steps(self):
        """``(first, last, relu)`` of the calls a forward pass makes: layers
        ``first`` to ``last`` in one call (a convolution and the pooling that
        computes its output's pooling as it goes, see
        ``MaxPool2D.pools_output_of``), and whether that call also applies the
        ReLU after ``last`` (which is then no step of its own)."""
        steps = self.__dict__.get("_steps_cache")
        if steps is None:
            layers, steps, i = self.layers, [], 0
            while i < len(layers):
                last = i + 1 if (i + 1 < len(layers) and type(layers[i + 1]) is MaxPool2D
                                 and layers[i + 1].pools_output_of(layers[i])) else i
                relu = self._fuses_relu_after(last)
                steps.append((i, last, relu))
                i = last + (2 if relu else 1)
            steps = self._steps_cache = tuple(steps)
        return steps

    def forward(self, x, training=True):
        """Training forward pass; caches what :meth:`backward` needs."""
        for first, last, relu in self._steps():
            layer = self.layers[last]
            if last > first:
                x = layer.forward_after(self.layers[first], x, training=training, relu=relu)
            elif relu:
                x = layer.forward(x, training=training, relu=True)
            else:
                x = layer.forward(x, training=training)
        return x

    def backward(self, dy):
        """Back-propagate ``dy`` (gradient w.r.t. the output) into ``self.grads``.

        A fused ReLU's gradient is its layer's; a convolution and its pooling
        go back in one call (``MaxPool2D.backward_before``)."""
        layers = self.layers
        for first, last, _ in reversed(self._steps()):
            need_dx = self.need_dx[first]
            if last > first:
                dy = layers[last].backward_before(layers[first], dy, need_dx=need_dx)
            else:
                dy = layers[first].backward(dy, need_dx=need_dx)
            if not need_dx:
                # no layer before this one has parameters
                return

    def forward_fast(self, x):
        """Inference forward pass: no caches, no buffers shared with training.

        A ReLU right after a layer that can apply it (``fuses_relu``) runs in
        that layer's call: the same values, one pass less. The layers' calls
        are planned once per input shape, dtype and ``ops._plan_context()``
        (see :meth:`Layer.fast_call`): on a row or two, deriving thread counts
        and scratch sizes and going through the layers' checks on every call
        took longer than the arithmetic.
        """
        x = np.ascontiguousarray(x)
        key = (x.shape, x.dtype, ops._plan_context())
        calls = self._fast_calls.get(key)
        if calls is None:
            calls = self._plan_fast_calls(x.shape, x.dtype)
            if len(self._fast_calls) >= _MAX_FAST_PLANS:
                self._fast_calls.clear()
            self._fast_calls[key] = calls
        for call in calls:
            x = call(x)
        return x

    def _plan_fast_calls(self, shape, dtype):
        """The functions that :meth:`forward_fast` applies in turn to inputs of ``shape``.

        Checks the per-sample shape here, once: the planned calls trust it.
        """
        if tuple(shape[1:]) != self.input_shape:
            raise ValueError(f"the network was built for inputs of shape {self.input_shape} "
                             f"per sample, got {tuple(shape[1:])}")
        layers = self.layers
        return tuple(layers[last].fast_call_after(layers[first], shape[0], dtype, relu=relu)
                     if last > first else layers[last].fast_call(shape[0], dtype, relu=relu)
                     for first, last, relu in self._steps())

    def input_gradient(self, x, dy, start=0):
        """Gradient of ``sum(dy * forward_fast(x))`` with respect to the input ``x``.

        The backward pass of the inference function, carried down to the input
        (:meth:`backward` stops at the first layer with parameters): batch norm
        uses its running statistics and dropout is the identity, as in
        :meth:`forward_fast`. Nothing of the model changes: the running
        statistics are not updated and ``grads`` is left as it was.

        Parameters
        ----------
        x : ndarray of shape (n, c, h, w) or (n, n_features)
            Input of layer ``start`` (the network's input for ``start=0``).
        dy : ndarray of shape (n,) + output_shape
            Gradient with respect to the output; a one-hot row gives the
            gradient of one output score.
        start : int, default=0
            Index of the first layer to run: with ``start > 0`` the gradient is
            with respect to the feature maps that enter ``layers[start]``.

        Returns
        -------
        dx : ndarray of the shape of ``x``, in the network's dtype
        """
        saved_grads = self.grads.copy()  # layers write their dw on the way down
        # copies: activations work in place on their input and on dy
        x = np.array(x, dtype=self.dtype)
        dy = np.array(dy, dtype=self.dtype)
        backwards = []
        for layer in self.layers[start:]:
            x, back = _inference_step(layer, x)
            backwards.append(back)
        for back in reversed(backwards):
            dy = back(dy)
        self.grads[...] = saved_grads
        return np.array(dy)

    def loss_and_grad(self, x, y, sample_weight, alpha, loss=softmax_cross_entropy):
        """One training step's loss and gradient (in ``self.grads``).

        ``loss`` (softmax cross-entropy by default; see ``skconv._losses``)
        weighted by ``sample_weight`` and normalised by its sum, plus
        ``0.5 * alpha * ||weights||^2 / sum(sample_weight)``, as ``MLPClassifier`` does.
        """
        sw_sum = float(sample_weight.sum())
        if sw_sum <= 0:
            sw_sum = 1.0
        z = self.forward(x, training=True)
        value, dz = loss(z, y, sample_weight, sw_sum)
        self.backward(dz)
        w = self.params[:self.n_weights]
        if alpha:
            # a pairwise sum, not BLAS's dot: the loss steers early stopping, so its
            # bits must not depend on the CPU
            value += 0.5 * alpha * float(np.sum(w * w)) / sw_sum
            self.grads[:self.n_weights] += (alpha / sw_sum) * w
        return value

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["grads"]
        state.pop("_fast_calls", None)
        state.pop("_steps_cache", None)
        state.pop("_largest_activation", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind(self.params)


def _inference_step(layer, x):
    """One layer's inference forward, keeping what its backward needs.

    Returns ``(y, back)`` with ``back(dy) -> dx``. Batch norm (running
    statistics: a per-channel affine map) and dropout (the identity) differ
    between training and inference; every other layer computes the same in
    both, so its training path, which caches for backward, serves.
    """
    if isinstance(layer, _BatchNorm):
        factor = layer._scale / np.sqrt(layer.running_var + layer.eps)
        factor = factor.reshape((1, -1) + (1,) * (x.ndim - 2))
        return layer.forward_fast(x), lambda dy: dy * factor
    if isinstance(layer, Dropout):
        return layer.forward_fast(x), lambda dy: dy
    return layer.forward(x, training=True), lambda dy: layer.backward(dy, need_dx=True)

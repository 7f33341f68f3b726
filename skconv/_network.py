"""The network: a graph of layers over one flat parameter and gradient array.

A network is a list of :class:`Node` in topological order: each names its
layer's inputs (``'input'`` for the network's input, else an earlier node),
so a residual block is two branches from one node that an ``Add`` node joins.
Layers know nothing of their neighbours; which of them run as one call (a
convolution that pools its own output, a ReLU applied inside the layer before
it, batch norm folded into the weights at inference) is decided once, by the
rules of :mod:`skconv._plan`, into the steps that training and inference run.
"""

import math

import numpy as np

from ._layers import _buffer
from ._losses import softmax_cross_entropy
from ._normalization import Dropout, _BatchNorm
from ._plan import INPUT, compile_plan, compile_steps
from . import _engine

# Input shapes whose planned inference calls a network keeps (see forward_fast):
# prediction meets a few (its chunk, the last chunk, one row), never many.
_MAX_FAST_PLANS = 16

# A forward pass packs every layer's weights for its products anew: a pass of
# many rows multiplies each weight at least this many times on average, so
# that packing stays a small part of it (the default net's dense layer, 1.6 MB
# of weights, in passes of 60 rows: 8% of a prediction at 2 threads).
_MIN_USES_PER_WEIGHT = 1000

# ... but never so many rows that the pass's largest activation exceeds this:
# large images under a wide dense layer would otherwise ask hundreds of rows
# of megabytes each, a pass per thread, and a prediction that one row at a
# time would fit in memory would not.
_MAX_PASS_BYTES = 64 << 20


class Node:
    """One layer of a :class:`Network`.

    Parameters
    ----------
    name : str
        Unique in the network; its parameters are named ``name + '.w'`` etc.
    layer : Layer
    inputs : tuple of str, default=None
        Names of the nodes whose outputs the layer takes, in the order its
        ``forward`` takes them; ``'input'`` is the network's input. None is
        the node before (the input for the first node).
    """

    def __init__(self, name, layer, inputs=None):
        self.name = str(name)
        self.layer = layer
        self.inputs = None if inputs is None else tuple(inputs)

    def __repr__(self):
        return f"Node({self.name!r}, {self.layer!r}, inputs={self.inputs!r})"


class Network:
    """A graph of layers whose parameters live in one flat array.

    Layout of ``params`` (and of ``grads``, element for element): first every
    weight, node by node, then every bias and batch-norm parameter, node by
    node. Each layer sees views into both arrays, so an optimizer updates the
    whole network with one array operation and the L2 penalty is one slice,
    ``params[:n_weights]``.

    Parameters
    ----------
    nodes : list of Node
        In topological order; the last node's output is the network's.
    input_shape : tuple (c, h, w) or (n_features,)
        Per-sample shape of the network input.
    dtype : numpy dtype or its name
        Stored as its name (``'float32'``), so the fitted state holds plain values.
    """

    def __init__(self, nodes, input_shape, dtype):
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype).name
        self.nodes = []
        shapes = {INPUT: self.input_shape}
        consumers = {INPUT: 0}
        for node in nodes:
            if node.inputs is None:
                node.inputs = (self.nodes[-1].name if self.nodes else INPUT,)
            if node.name in shapes:
                raise ValueError(f"two nodes of the network are named {node.name!r}")
            unknown = [name for name in node.inputs if name not in shapes]
            if unknown:
                raise ValueError(f"node {node.name!r} takes {unknown}, which no earlier node "
                                 "computes (nodes go in topological order)")
            for name in node.inputs:
                consumers[name] += 1
            shapes[node.name] = tuple(node.layer.build(*(shapes[i] for i in node.inputs)))
            consumers[node.name] = 0
            self.nodes.append(node)
        for node in self.nodes:
            # a layer that works in place on its input must own it
            if getattr(node.layer, "in_place", False) and consumers[node.inputs[0]] > 1:
                raise ValueError(f"node {node.name!r} works in place on {node.inputs[0]!r}, "
                                 "which other nodes read too")
        self.output_shape = shapes[self.nodes[-1].name]
        self._layout = specs = self._declared_layout()
        # Python ints: np.prod's int64 wraps around for a huge kernel or layer
        self.n_weights = sum(math.prod(s[2]) for s in specs if s[3])
        self.n_params = sum(math.prod(s[2]) for s in specs)
        if self.n_params * np.dtype(self.dtype).itemsize > np.iinfo(np.intp).max:
            raise ValueError(f"{self._largest_layer()}: more than any memory holds")
        # a node needs to compute dx only if some node it depends on has parameters
        has_params = {INPUT: False}
        self.need_dx = []
        for node in self.nodes:
            upstream = any(has_params[name] for name in node.inputs)
            self.need_dx.append(upstream)
            has_params[node.name] = upstream or bool(node.layer.param_specs())
        try:
            self.params = np.zeros(self.n_params, dtype=self.dtype)
            self._bind(self.params)
        except MemoryError as error:
            raise self.out_of_memory() from error

    def _largest_layer(self):
        """``'dense1 would hold 1e+09 parameters (w of shape (10000, 100000))'``:
        the layer with the most parameters, what to shrink."""
        i, name, shape = max(((i, name, shape) for i, node in enumerate(self.nodes)
                              for name, shape, _ in node.layer.param_specs()),
                             key=lambda s: math.prod(s[2]), default=(0, "", ()))
        return (f"{getattr(self.nodes[i].layer, 'name', self.nodes[i].name)} would hold "
                f"{math.prod(shape):.3g} parameters ({name} of shape {shape})")

    def out_of_memory(self):
        """The MemoryError to raise where an array the size of the parameters
        cannot be allocated: numpy's names an array's length, not the layer
        that made it so long."""
        nbytes = self.n_params * np.dtype(self.dtype).itemsize
        return MemoryError(
            f"{self._largest_layer()}: the network's {self.n_params:.3g} parameters take "
            f"{nbytes / 2**30:.3g} GiB, and training keeps six or seven arrays of their "
            "size (parameters, gradients, the solver's state, the last two epochs' "
            "parameters): more than this machine can allocate now. Use a smaller network."
        )

    # ------------------------------------------------------------------ structure

    @property
    def layers(self):
        """The layers, node by node."""
        return [node.layer for node in self.nodes]

    @property
    def output(self):
        """Name of the node whose output is the network's."""
        return self.nodes[-1].name

    def index(self, name):
        """Position of the node called ``name``."""
        for i, node in enumerate(self.nodes):
            if node.name == name:
                return i
        raise KeyError(f"the network has no node {name!r}")

    def cut_points(self):
        """Names of the nodes whose output alone determines every later node's:
        where a residual branch does not straddle them. A forward pass can start
        or stop there (``forward_fast(..., start=, stop=)``)."""
        cuts, reads = [], set()
        for node in reversed(self.nodes):
            # reads: what the nodes after this one take from before them
            if reads <= {node.name}:
                cuts.append(node.name)
            reads.discard(node.name)
            reads.update(node.inputs)
        return cuts[::-1]

    # ------------------------------------------------------------------ parameters

    def _declared_layout(self):
        """``[(node_index, name, shape, is_weight), ...]``: the parameters the layers
        declare, weights first, then biases (a stable sort on "is a bias")."""
        specs = [(i, name, tuple(shape), is_w) for i, node in enumerate(self.nodes)
                 for name, shape, is_w in node.layer.param_specs()]
        return sorted(specs, key=lambda s: not s[3])

    def _bind(self, params):
        """Point every layer's parameter views into ``params`` and a fresh ``grads``.

        Drops the planned inference calls, which hold the old views.
        """
        self._fast_plans = {}
        self.params = params
        self.grads = np.zeros(self.n_params, dtype=self.dtype)
        for node, p, g in zip(self.nodes, self._views(params), self._views(self.grads)):
            node.layer.bind(p, g)

    def _views(self, flat):
        """Per node, ``{name: view}`` of the flat array ``flat`` in the parameters' layout."""
        views = [{} for _ in self.nodes]
        offset = 0
        for i, name, shape, _ in self._layout:
            size = int(np.prod(shape))
            views[i][name] = flat[offset:offset + size].reshape(shape)
            offset += size
        return views

    def param_arrays(self):
        """List of ``(node_index, name, view)`` for every parameter, in node order."""
        out = []
        offset = 0
        for i, name, shape, _ in self._layout:
            size = int(np.prod(shape))
            out.append((i, name, self.params[offset:offset + size].reshape(shape)))
            offset += size
        return sorted(out, key=lambda t: t[0])

    def named_params(self):
        """``{'block2.conv1.w': view, ...}``: every parameter under its node's name."""
        return {f"{self.nodes[i].name}.{name}": view for i, name, view in self.param_arrays()}

    def init_params(self, rng):
        """Initialise every parameter from ``rng``, node by node."""
        try:
            for node in self.nodes:
                node.layer.init_params(rng)
        except MemoryError as error:  # the draws are in float64
            raise self.out_of_memory() from error

    @property
    def largest_activation(self):
        """The most values one row has at any step of a forward pass, input included."""
        largest = self.__dict__.get("_largest_activation")
        if largest is None:
            shapes = [self.input_shape] + [node.layer.output_shape for node in self.nodes]
            largest = self._largest_activation = max(int(np.prod(s)) for s in shapes)
        return largest

    @property
    def activation_bytes(self):
        """Bytes of one row's values at every node of a forward pass, input included:
        what training keeps of each row for the backward pass, about."""
        shapes = [self.input_shape] + [node.layer.output_shape for node in self.nodes]
        return sum(math.prod(s) for s in shapes) * np.dtype(self.dtype).itemsize

    def rows_per_pass(self, budget):
        """Rows of a forward pass whose largest activation fits in ``budget`` bytes, but
        at least as many as use each weight ``_MIN_USES_PER_WEIGHT`` times (as long as
        the largest activation fits in ``_MAX_PASS_BYTES``), and 1."""
        row_bytes = self.largest_activation * self.params.itemsize
        rows = self.__dict__.get("_weight_rows")
        if rows is None:
            # a weight of a node is used once per position of its output in a row
            uses = sum(view.size * max(1, int(np.prod(self.nodes[i].layer.output_shape[1:])))
                       for i, _, view in self.param_arrays())
            rows = -(-_MIN_USES_PER_WEIGHT * self.params.size // max(uses, 1))
            rows = self._weight_rows = min(rows, _MAX_PASS_BYTES // row_bytes)
        return max(1, rows, budget // row_bytes)

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
        return [(node.layer, name, value) for node in self.nodes
                for name, value in node.layer.__getstate__().items()
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
    def one_row_norm(self):
        """Name of the first batch norm that sees one value per channel in each
        row (after a dense layer, or a conv map of 1 x 1), None if none does.
        Over a batch of one row its statistics are that value and its output is
        its shift whatever the input: it needs batches of two rows or more."""
        for node in self.nodes:
            layer = node.layer
            if layer.op == "batch_norm" and math.prod(layer.input_shape[1:]) == 1:
                return node.name
        return None

    @property
    def needs_rng(self):
        """Whether some layer draws random numbers in training (dropout)."""
        return any(hasattr(node.layer, "set_rng") for node in self.nodes)

    def set_rng(self, rng):
        """Give every layer that draws random numbers in training the generator ``rng``."""
        for node in self.nodes:
            if hasattr(node.layer, "set_rng"):
                node.layer.set_rng(rng)

    def release_buffers(self):
        """Drop the scratch arrays the layers (and the L2 penalty) keep between training
        batches."""
        for node in self.nodes:
            node.layer.release_buffers()
        for name in self.__dict__.pop("_buffer_names", ()):
            delattr(self, name)

    # ------------------------------------------------------------------ passes

    def steps(self, training=True):
        """The calls a training (or inference) pass makes, as :func:`compile_steps` fuses them."""
        cache = self.__dict__.setdefault("_steps_cache", {})
        if training not in cache:
            cache[training] = compile_steps(self, training)
        return cache[training]

    def forward(self, x, training=True):
        """Training forward pass; caches what :meth:`backward` needs."""
        if not training:
            return self.forward_fast(x)
        values = {INPUT: x}
        for step in self.steps(True):
            values[step.output] = step.forward([values[name] for name in step.inputs])
        return values[self.output]

    def backward(self, dy):
        """Back-propagate ``dy`` (gradient w.r.t. the output) into ``self.grads``.

        A node read by several others gets the sum of their gradients, added
        in the reverse of the node order: the same bits every time. A step
        that ``adds_gradient`` (a convolution's) adds the sum so far to its
        input gradient as it writes it, rather than a pass of its own after;
        its input gradient may be an _engine.PhaseGradient (a 1x1 strided
        convolution's), which such a step takes as the sum so far and any
        other use makes an array first. A batch norm's step hands its input
        gradient to the convolution's step that runs right after it (the one
        that wrote that input) as an _engine.BatchNormGradient, formed as the
        convolution's backward reads it.
        """
        grads = {self.output: dy}
        steps = self.steps(True)
        for k in range(len(steps) - 1, -1, -1):
            step = steps[k]
            dy = grads.pop(step.output, None)
            if dy is None:  # no gradient reaches it: nothing before it has parameters
                continue
            if not (step.kernel.takes_formed_gradient
                    and isinstance(dy, _engine.BatchNormGradient)):
                dy = _engine.dense(dy)
            need_dx = self.need_dx[step.first]
            first = step.inputs[0]
            if need_dx and step.kernel.adds_gradient and first in grads:
                dxs = step.backward(dy, need_dx, add_to=grads.pop(first))
            elif (need_dx and step.kernel.forms_gradient and k and first not in grads
                  and steps[k - 1].output == first and steps[k - 1].kernel.takes_formed_gradient):
                # the next step takes this input gradient formed as it reads it:
                # nothing runs between them that could write what it reads
                dxs = step.backward(dy, need_dx, formed=True)
            else:
                dxs = step.backward(dy, need_dx)
            if not need_dx:
                continue
            for name, dx in zip(step.inputs, dxs):
                if name == INPUT:
                    continue
                grads[name] = dx if name not in grads else _accumulate(grads[name], dx)

    def forward_fast(self, x, start=None, stop=None):
        """Inference forward pass: no caches, no buffers shared with training.

        The calls are planned once per input shape, dtype and
        ``_engine.plan_context()`` (threads, SIMD path, work per thread): on a row or two, deriving
        thread counts and scratch sizes and going through the layers' checks
        on every call took longer than the arithmetic.

        ``start``, ``stop``: names of cut points (:meth:`cut_points`): x is
        then ``start``'s output, and the pass returns ``stop``'s.
        """
        x = np.ascontiguousarray(x)
        key = (x.shape, x.dtype, start, stop, _engine.plan_context())
        plan = self._fast_plans.get(key)
        if plan is None:
            plan = compile_plan(self, x.shape, x.dtype, start, stop)
            if len(self._fast_plans) >= _MAX_FAST_PLANS:
                self._fast_plans.clear()
            self._fast_plans[key] = plan
        return plan.run(x)

    def input_gradient(self, x, dy, start=None, stop=None):
        """Gradient of ``sum(dy * forward_fast(x, start, stop))`` with respect to ``x``.

        The backward pass of the inference function, carried down to the input
        (:meth:`backward` stops at the first layer with parameters): batch norm
        uses its running statistics and dropout is the identity, as in
        :meth:`forward_fast`. Nothing of the model changes: the running
        statistics are not updated and ``grads`` is left as it was. Threads
        may call it at once.

        Parameters
        ----------
        x : ndarray of shape (n, c, h, w) or (n, n_features)
            The network's input, or with ``start`` that node's output.
        dy : ndarray of shape (n,) + the output's shape
            Gradient with respect to the output; a one-hot row gives the
            gradient of one output score.
        start, stop : str or None
            Cut points (:meth:`cut_points`) where the pass starts and stops.
            An int ``start`` is a position: x enters ``layers[start]``.

        Returns
        -------
        dx : ndarray of the shape of ``x``, in the network's dtype
        """
        if isinstance(start, (int, np.integer)):  # x enters layers[start]
            start = self.nodes[start - 1].name if start else None
        first, last = self._span(start, stop)
        # the layers' training paths keep their inputs and buffers on the layer
        # and write their dw into grads: each call runs copies of its own, so
        # that threads may call it at once and the model is left as it was
        dws = self._views(np.empty_like(self.grads))
        # copies: activations work in place on their input and on dy
        values = {start or INPUT: np.array(x, dtype=self.dtype)}
        backwards = []
        for i in range(first, last):
            node = self.nodes[i]
            layer = _private_copy(node.layer, dws[i])
            y, back = _inference_step(layer, [values[name] for name in node.inputs])
            values[node.name] = y
            backwards.append((node, back))
        grads = {backwards[-1][0].name: np.array(dy, dtype=self.dtype)}
        for node, back in reversed(backwards):
            dxs = back(grads.pop(node.name))
            for name, dx in zip(node.inputs, dxs):
                grads[name] = dx if name not in grads else grads[name] + dx
        return np.array(grads[start or INPUT])

    def _span(self, start, stop):
        """Node positions ``[first, last)`` of a pass from cut point ``start`` to ``stop``."""
        cuts = self.cut_points()
        for name in (start, stop):
            if name is not None and name not in cuts:
                raise ValueError(f"a pass cannot start or stop at {name!r}: a branch of the "
                                 f"network straddles it (cut points: {cuts})")
        first = 0 if start is None else self.index(start) + 1
        last = len(self.nodes) if stop is None else self.index(stop) + 1
        if last <= first:
            raise ValueError(f"stop={stop!r} comes before start={start!r}")
        return first, last

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
            # in a buffer kept across batches: two fresh arrays of the weights'
            # size each batch would double a large dense layer's memory
            work = _buffer(self, "_l2_work", w.shape, w.dtype)
            value += 0.5 * alpha * float(np.sum(np.multiply(w, w, out=work))) / sw_sum
            self.grads[:self.n_weights] += np.multiply(w, alpha / sw_sum, out=work)
        return value

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["grads"]
        for cache in ("_fast_plans", "_steps_cache", "_largest_activation", "_weight_rows",
                      "_l2_work", "_buffer_names"):
            state.pop(cache, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # the kernels trust each layer's geometry, and they and the optimizers index
        # params by the layout, unchecked: both are derived again from the layers'
        # settings, so that a damaged file stops here, not reading or writing past an
        # array later
        shapes = {INPUT: self.input_shape}
        for node in self.nodes:
            shapes[node.name] = tuple(node.layer.build(*(shapes[i] for i in node.inputs)))
        self.output_shape = shapes[self.nodes[-1].name]
        params = self.params
        layout = self._declared_layout()
        size = sum(math.prod(shape) for _, _, shape, _ in layout)
        saved = [(i, name, tuple(shape), is_w) for i, name, shape, is_w in self._layout]
        if (saved != layout or not isinstance(params, np.ndarray) or params.shape != (size,)
                or self.n_params != size or params.dtype != np.dtype(self.dtype)):
            raise ValueError(
                f"the saved network's parameters ({_describe_array(params)}, in "
                f"{len(saved)} arrays) are not those its layers take ({size} {self.dtype} "
                f"values, in {len(layout)} arrays of the shapes the layers declare): the "
                "file is damaged or was not written by skconv"
            )
        self._bind(params)


def _describe_array(value):
    """``'shape (3,), float64'``, or the type of what is not an array."""
    if isinstance(value, np.ndarray):
        return f"shape {value.shape}, {value.dtype}"
    return type(value).__name__


def _accumulate(total, dx):
    """``total + dx``, into total where it can be: a gradient handed to the
    backward pass is read only by the step it goes to, so its array is free
    to overwrite (a residual block's input gradient: no fresh array of the
    activation's size each batch, one pass instead of numpy's)."""
    total, dx = _engine.dense(total), _engine.dense(dx)
    if (total.flags.c_contiguous and total.flags.writeable and dx.flags.c_contiguous
            and total.shape == dx.shape and total.dtype == dx.dtype and total is not dx):
        return _engine.add(total, dx, total)
    return total + dx


class Sequential(Network):
    """A chain of layers, each taking the one before's output: ``Network`` with
    nodes named by position (``'0'``, ``'1'``, ...).

    Also how a model saved by skconv 0.1, whose network was this list of
    layers, loads: its state has ``layers`` and no ``nodes``, and its flat
    parameters are already in the graph's layout (weights, then biases, layer
    by layer).
    """

    def __init__(self, layers, input_shape, dtype):
        super().__init__([Node(str(i), layer) for i, layer in enumerate(layers)],
                         input_shape, dtype)

    def __setstate__(self, state):
        if "nodes" not in state:  # saved by skconv 0.1
            layers = state.pop("layers")
            state["nodes"] = [Node(str(i), layer, (str(i - 1) if i else INPUT,))
                              for i, layer in enumerate(layers)]
            state.pop("_steps_cache", None)
        super().__setstate__(state)


def _private_copy(layer, grads):
    """``layer`` sharing its parameters, with the gradient views ``grads`` and
    no training buffers of its own: what its forward and backward cache or
    write stays on the copy."""
    clone = object.__new__(type(layer))  # not copy.copy: it would keep only the pickled state
    clone.__dict__.update(layer.__dict__)
    clone.release_buffers()
    clone.bind({}, grads)
    return clone


def _inference_step(layer, xs):
    """One layer's inference forward, keeping what its backward needs.

    Returns ``(y, back)`` with ``back(dy) -> tuple of dx``, one per input.
    Batch norm (running statistics: a per-channel affine map) and dropout
    (the identity) differ between training and inference; every other layer
    computes the same in both, so its training path, which caches for
    backward, serves.
    """
    if isinstance(layer, _BatchNorm):
        (x,) = xs
        factor = layer._scale / np.sqrt(layer.running_var + layer.eps)
        factor = factor.reshape((1, -1) + (1,) * (x.ndim - 2))
        return layer.forward_fast(x), lambda dy: (dy * factor,)
    if isinstance(layer, Dropout):
        return layer.forward_fast(xs[0]), lambda dy: (dy,)
    if len(xs) > 1:
        return layer.forward(*xs, training=True), lambda dy: layer.backward(dy, need_dx=True)
    # an activation works in place: keep the input it was given intact
    return (layer.forward(xs[0].copy() if getattr(layer, "in_place", False) else xs[0],
                          training=True),
            lambda dy: (layer.backward(dy, need_dx=True),))

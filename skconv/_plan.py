"""Compiling a network into the calls its passes make.

The layers of a :class:`~skconv._network.Network` know nothing of their
neighbours. Which of them run as one call is decided here, once, by the rules
of :data:`FUSION_RULES`: each names a chain of layer ops (a node taking the
one before's output, which nothing else reads; an addition takes its other
input from outside the chain), a condition on those layers,
the step that runs them, and whether training uses it too. The first rule that
matches at a node wins, so longer chains go first.

Training runs the steps of :func:`compile_steps`; inference runs a
:class:`Plan`, the steps' planned calls for one input shape, dtype and
``_engine.plan_context()`` (threads, SIMD path, work per thread), from :func:`compile_plan`.
"""

import functools
import math
import threading
import weakref
from collections import namedtuple

import numpy as np

from ._layers import _buffer

INPUT = "input"

_ANY = "*"


class LayerStep:
    """One layer, applying the ReLU after it (``relu``) when the chain has one."""

    rule = "layer"

    def __init__(self, layers):
        self.layer = layers[0]
        self.relu = len(layers) == 2
        # backward takes add_to: the gradient of the layer's input from its other readers
        self.adds_gradient = self.layer.adds_gradient
        # backward may return its input's gradient as an _engine.BatchNormGradient,
        # which a convolution's backward takes as its dy (see Network.backward)
        self.forms_gradient = self.layer.op == "batch_norm"
        self.takes_formed_gradient = self.layer.op == "conv"

    def forward(self, xs):
        if self.relu:
            return self.layer.forward(*xs, training=True, relu=True)
        return self.layer.forward(*xs, training=True)

    def backward(self, dy, need_dx, add_to=None, formed=False):
        """The layer's input gradients; a convolution's (``adds_gradient``) may
        be an _engine.PhaseGradient, a batch norm's with ``formed`` an
        _engine.BatchNormGradient (see Network.backward)."""
        if self.adds_gradient:
            return (self.layer.backward(dy, need_dx=need_dx, add_to=add_to, phase_dx=True),)
        if formed:
            return (self.layer.backward(dy, need_dx=need_dx, formed=True),)
        dx = self.layer.backward(dy, need_dx=need_dx)
        return dx if isinstance(dx, tuple) else (dx,)

    def fast(self, n, dtype):
        if self.relu:
            return self.layer.fast_call(n, dtype, relu=True)
        return self.layer.fast_call(n, dtype)

    @property
    def fast_out(self):
        return self.layer.fast_out


class ConvPoolStep:
    """A stride-1 convolution that max-pools its output 2x2 as it goes, then the
    ReLU when the chain has one: the convolution's output (8 MB for a batch of
    64 through 32 filters on 32x32) is never written out, each sample's being
    pooled while in cache (``pool2`` of ``_engine.conv2d``). The same values,
    and the argmax and state that the pooling's backward goes back through,
    kept in the pooling layer's buffers."""

    rule = "conv_pool"
    adds_gradient = False
    forms_gradient = takes_formed_gradient = False

    def __init__(self, layers):
        self.conv, self.pool = layers[:2]
        self.relu = len(layers) == 3

    def forward(self, xs):
        pool = self.pool
        shape = (xs[0].shape[0],) + pool.output_shape
        y = _buffer(pool, "_y", shape, xs[0].dtype)
        pool._argmax = _buffer(pool, "_argmax", shape, np.intp)
        self.conv.forward_pooled(xs[0], self.relu, y, pool._argmax)
        pool._x_shape = (xs[0].shape[0],) + pool.input_shape
        pool._relu_y = y if self.relu else None
        return y

    def backward(self, dy, need_dx):
        if need_dx:
            return (self.conv.backward(self.pool.backward(dy), need_dx=True),)
        # no dx (a first layer): the convolution forms its output's gradient
        # sample by sample while its weight gradient reads it, never for the batch
        relu_y, self.pool._relu_y = self.pool._relu_y, None
        return (self.conv.backward(dy, need_dx=False, unpool=(self.pool._argmax, relu_y)),)

    def fast(self, n, dtype):
        return self.conv.fast_call(n, dtype, relu=self.relu, pool2=True)

    fast_out = True


class FoldedStep:
    """Inference only: a convolution or dense layer with the batch norm after it
    folded into its weights and bias (from the running statistics, at each
    call, so that a change of the parameters is never missed), then the 2x2
    max pooling a stride-1 convolution computes as it goes, then the ReLU."""

    rule = "folded"
    adds_gradient = False

    def __init__(self, layers):
        self.layer, self.batch_norm = layers[:2]
        self.pool = layers[2] if len(layers) > 2 and layers[2].op == "max_pool" else None
        self.relu = layers[-1].op == "relu"

    def fast(self, n, dtype):
        if self.pool is not None:
            return self.layer.fast_call(n, dtype, relu=self.relu, pool2=True,
                                        fold=self.batch_norm)
        if self.relu:
            return self.layer.fast_call(n, dtype, relu=True, fold=self.batch_norm)
        return self.layer.fast_call(n, dtype, fold=self.batch_norm)

    @property
    def fast_out(self):
        return self.layer.fast_out


class ResidualStep:
    """Inference only: a convolution (with the batch norm after it folded into
    its weights, as :class:`FoldedStep` folds it), then the addition of a
    residual block's shortcut, then the ReLU, all as the convolution's output
    leaves its tiles: neither the convolution's output nor the sum is written
    out and read back (``residual`` of ``_engine.conv2d``). The step's inputs
    are the convolution's and the shortcut."""

    rule = "residual"
    adds_gradient = False
    fast_out = True

    def __init__(self, layers):
        self.conv = layers[0]
        self.batch_norm = layers[1] if layers[1].op == "batch_norm" else None
        self.relu = layers[-1].op == "relu"

    def fast(self, n, dtype):
        return self.conv.fast_call(n, dtype, relu=self.relu, fold=self.batch_norm,
                                   residual=True)


class BatchNormAddStep:
    """A residual block's last batch norm, its addition of the shortcut, then the
    ReLU when the chain has one, in the batch norm's pass that writes its
    output (``forward_add`` of the batch norm): the batch norm's output is
    neither written out nor read back, and backward gives the shortcut the
    masked gradient itself rather than a copy, since the batch norm's
    backward, which reads it too, has run by then. The step's inputs are the
    batch norm's and the shortcut."""

    rule = "batch_norm_add"
    adds_gradient = False
    forms_gradient, takes_formed_gradient = True, False
    fast_out = True

    def __init__(self, layers):
        self.batch_norm, self.add = layers[:2]
        self.relu = len(layers) == 3

    def forward(self, xs):
        x, shortcut = xs
        out = _buffer(self.add, "_y", x.shape, x.dtype)
        self.batch_norm.forward_add(x, shortcut, out, self.relu)
        self._relu_y = out if self.relu else None
        return out

    def backward(self, dy, need_dx, formed=False):
        relu_y, self._relu_y = self._relu_y, None
        dy = np.ascontiguousarray(dy)
        # the ReLU's gradient masks dy in place as the batch norm's backward reads it
        return self.batch_norm.backward(dy, need_dx=need_dx, after=relu_y, formed=formed), dy

    def fast(self, n, dtype):
        batch_norm, add, relu = self.batch_norm, self.add, self.relu

        def call(x, shortcut, out=None):
            return add.forward_fast(batch_norm.forward_fast(x), shortcut, relu=relu, out=out)
        return call


def _adds_residual(conv, *rest):
    """A convolution of one group (the implicit product) whose batch norm, if any, folds."""
    return conv.groups == 1 and (rest[0].op != "batch_norm" or conv.folds_batch_norm)


def _pools_conv(conv, pool, *relu):
    """A convolution computes the 2x2 pooling of its output as it goes: one of
    stride 1 (the implicit product, whose output is in cache sample by
    sample) and one group."""
    return pool.window == (2, 2) and conv.stride == (1, 1) and conv.groups == 1


def _folds(layer, batch_norm, *rest):
    return layer.folds_batch_norm and (not rest or rest[-1].op != "relu" or layer.fuses_relu)


def _folds_and_pools(layer, batch_norm, pool, *relu):
    return layer.folds_batch_norm and _pools_conv(layer, pool)


def _fuses_relu(layer, relu):
    return layer.fuses_relu


def _always(*layers):
    return True


Rule = namedtuple("Rule", "name ops condition step training")

#: The fusions, tried in order at each node; ``'*'`` is any op. A ReLU
#: "inside" a layer is applied by its kernel as it writes the output.
FUSION_RULES = (
    Rule("batch norm folded, residual added, ReLU",
         ("conv", "batch_norm", "add", "relu"), _adds_residual, ResidualStep, False),
    Rule("batch norm folded, residual added",
         ("conv", "batch_norm", "add"), _adds_residual, ResidualStep, False),
    Rule("residual added, ReLU", ("conv", "add", "relu"), _adds_residual, ResidualStep, False),
    Rule("residual added", ("conv", "add"), _adds_residual, ResidualStep, False),
    Rule("batch norm folded into a pooling convolution, ReLU",
         ("conv", "batch_norm", "max_pool", "relu"), _folds_and_pools, FoldedStep, False),
    Rule("batch norm folded into a pooling convolution",
         ("conv", "batch_norm", "max_pool"), _folds_and_pools, FoldedStep, False),
    Rule("convolution pooling 2x2 as it goes, ReLU",
         ("conv", "max_pool", "relu"), _pools_conv, ConvPoolStep, True),
    Rule("convolution pooling 2x2 as it goes",
         ("conv", "max_pool"), _pools_conv, ConvPoolStep, True),
    Rule("batch norm folded, ReLU inside", (_ANY, "batch_norm", "relu"), _folds, FoldedStep,
         False),
    Rule("batch norm folded", (_ANY, "batch_norm"), _folds, FoldedStep, False),
    Rule("batch norm, residual added, ReLU", ("batch_norm", "add", "relu"), _always,
         BatchNormAddStep, True),
    Rule("batch norm, residual added", ("batch_norm", "add"), _always, BatchNormAddStep, True),
    Rule("ReLU inside the layer before", (_ANY, "relu"), _fuses_relu, LayerStep, True),
)


class Step:
    """A call of a pass: ``kernel`` (one of the step classes above) runs a chain
    of nodes from ``first`` to ``last``, reading ``inputs`` and writing
    ``output``, as the fusion rule called ``fusion`` says (None: one layer on
    its own)."""

    def __init__(self, kernel, first, last, inputs, output, fusion=None):
        self.kernel = kernel
        self.fusion = fusion
        self.first, self.last = first, last
        self.inputs, self.output = inputs, output
        self.forward = getattr(kernel, "forward", None)
        self.backward = getattr(kernel, "backward", None)

    @property
    def rule(self):
        return self.kernel.rule

    def __repr__(self):
        return f"Step({self.rule}, nodes {self.first}..{self.last}, {self.inputs} -> {self.output!r})"


def compile_steps(network, training, first=0, last=None):
    """The steps of a pass over nodes ``first`` to ``last - 1`` of ``network``.

    A chain's nodes need not be consecutive: a residual body's last batch norm
    and its block's addition have the shortcut's nodes between them. The
    chain's step runs where its last node would (every input is ready there).
    """
    nodes = network.nodes[first:last]
    readers = {}
    for k, node in enumerate(nodes):
        for name in node.inputs:
            readers.setdefault(name, []).append(k)
    rules = [rule for rule in FUSION_RULES if rule.training or not training]
    steps, waiting, taken = [], {}, set()
    for i in range(len(nodes)):
        if i in taken:  # in a chain that began earlier: its step runs at its last node
            if i in waiting:
                steps.append(waiting.pop(i))
            continue
        for rule in rules:
            chain = _chain(nodes, i, len(rule.ops), readers)
            if chain and all(op in (_ANY, nodes[k].layer.op) for op, k in zip(rule.ops, chain)) \
                    and rule.condition(*(nodes[k].layer for k in chain)):
                break
        else:
            rule, chain = None, [i]
        links = [nodes[k] for k in chain]
        kernel = (rule.step if rule else LayerStep)([node.layer for node in links])
        # an addition's other input comes from outside the chain
        inputs = links[0].inputs + tuple(name for node in links[1:] for name in node.inputs[1:])
        step = Step(kernel, first + chain[0], first + chain[-1], inputs, links[-1].name,
                    rule and rule.name)
        taken.update(chain[1:])
        if chain[-1] == i:
            steps.append(step)
        else:
            waiting[chain[-1]] = step
    return tuple(steps)


def _chain(nodes, i, length, readers):
    """Positions of ``length`` nodes from ``nodes[i]``, each after the first
    taking the one before's output, which nothing else reads, alone or (an
    addition) as its first input; None if there is no such chain."""
    chain = [i]
    while len(chain) < length:
        name = nodes[chain[-1]].name
        after = readers.get(name, ())
        if len(after) != 1:
            return None
        node = nodes[after[0]]
        if node.inputs[0] != name or len(node.inputs) > 1 and node.layer.op != "add":
            return None
        chain.append(after[0])
    return chain


class _Scratch(threading.local):
    """Per thread, the byte buffers that inference plans write the values they
    keep to themselves into (every value but the one a plan returns).

    Fresh arrays for them cost more than some of the layers: glibc serves
    blocks of megabytes with fresh pages (and gives them back when freed),
    which the kernel zeroes on first touch: a tenth of a ResNet-20 prediction.
    Every plan on a thread shares these, each buffer as large as the largest
    that plan slot has needed, and one plan runs at a time on a thread.
    ``bound`` holds, per plan, its calls bound to views of these buffers: here,
    not on the plan, so that growing a buffer drops every view of the old one.
    """

    def __init__(self):
        self.buffers = []
        self.bound = weakref.WeakKeyDictionary()

    def get(self, sizes):
        """The buffers, at least ``sizes[i]`` bytes for buffer i."""
        for i, size in enumerate(sizes):
            if i == len(self.buffers):
                self.buffers.append(None)
            if self.buffers[i] is None or self.buffers[i].nbytes < size:
                # release before the larger one is allocated
                self.buffers[i] = None
                self.bound.clear()
                self.buffers[i] = np.empty(size, dtype=np.uint8)
        return self.buffers


_SCRATCH = _Scratch()


class Plan:
    """The planned calls of an inference pass for one input shape and dtype.

    ``calls`` are ``(function, inputs, output, drop)``: a value is dropped
    after its last reader. ``outs`` are, per call, None (the call allocates
    its output, or returns a view of its input) or ``(slot, shape, dtype)``:
    the call writes its output into scratch buffer ``slot`` (see
    :func:`assign_slots`), one value per slot at a time. The value returned is
    never scratch: ``copy_output`` says whether it may be a view of some, so
    that run copies it. Threads may run a plan at once: each has its scratch.
    """

    def __init__(self, calls, source, output, outs=None, copy_output=False):
        self.calls = calls
        self.source, self.output = source, output
        self.outs = outs if outs is not None else (None,) * len(calls)
        self.slot_sizes = _slot_sizes(self.outs)
        self.copy_output = copy_output
        # a chain (each call reads the one before's output only) runs as a plain loop
        reads = [inputs for _, inputs, _, _ in calls]
        writes = [source] + [output for _, _, output, _ in calls[:-1]]
        self.chain = all(r == (w,) for r, w in zip(reads, writes))
        self._plain = [function for function, *_ in calls]

    def _functions(self):
        """The calls' functions, each bound to its output in this thread's scratch."""
        if not self.slot_sizes:
            return self._plain
        buffers = _SCRATCH.get(self.slot_sizes)
        functions = _SCRATCH.bound.get(self)
        if functions is None:
            functions = _SCRATCH.bound[self] = [
                function if out is None else functools.partial(
                    function, out=buffers[out[0]][:_nbytes(out)].view(out[2]).reshape(out[1]))
                for (function, *_), out in zip(self.calls, self.outs)]
        return functions

    def run(self, x):
        functions = self._functions()
        if self.chain:
            for function in functions:
                x = function(x)
        else:
            values = {self.source: x}
            for function, (_, inputs, output, drop) in zip(functions, self.calls):
                values[output] = function(*[values[name] for name in inputs])
                for name in drop:
                    del values[name]
            x = values[self.output]
        return np.array(x) if self.copy_output else x


def _nbytes(out):
    _, shape, dtype = out
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def _slot_sizes(outs):
    sizes = {}
    for out in outs:
        if out is not None:
            sizes[out[0]] = max(sizes.get(out[0], 0), _nbytes(out))
    return [sizes[slot] for slot in range(len(sizes))]


#: Values smaller than this are allocated by their calls: malloc serves them
#: from its heap, pages already touched (glibc maps fresh pages from 128 KiB
#: on), and a one-row prediction then skips the scratch's bookkeeping.
SMALL_VALUE = 128 << 10


def assign_slots(values, source, result):
    """Scratch slots for a pass's values, each slot holding one live value at a time.

    ``values`` are, in call order, ``(inputs, output, nbytes, writes_out, drop)``:
    ``nbytes`` of output, whether the call can write it into a given array,
    and the names dropped after it. A value the call cannot place may be a
    view of its inputs (a reshape, an activation in place), so it keeps their
    slots busy while it lives. ``result``, the value the pass returns, gets no
    slot, nor does one under ``SMALL_VALUE`` bytes. Returns ``(slots,
    copy_result)``: per call its slot or None, and whether the result may be
    a view of a slot. Among free slots a value takes the smallest that holds
    it, else the largest (grown): few slots, little memory.
    """
    occupied = {source: frozenset()}  # value -> the slots it may use
    sizes, slots = [], []
    for inputs, output, nbytes, writes_out, drop in values:
        busy = set().union(*occupied.values())
        if writes_out and output != result and nbytes >= SMALL_VALUE:
            free = [s for s in range(len(sizes)) if s not in busy]
            fits = [s for s in free if sizes[s] >= nbytes]
            if fits:
                slot = min(fits, key=lambda s: sizes[s])
            elif free:
                slot = max(free, key=lambda s: sizes[s])
            else:
                slot = len(sizes)
                sizes.append(0)
            sizes[slot] = max(sizes[slot], nbytes)
            occupied[output] = frozenset((slot,))
            slots.append(slot)
        else:
            occupied[output] = frozenset().union(*(occupied[name] for name in inputs)) \
                if not writes_out else frozenset()
            slots.append(None)
        for name in drop:
            occupied.pop(name, None)
    return slots, bool(occupied[result])


def compile_plan(network, shape, dtype, start=None, stop=None):
    """The :class:`Plan` of ``network.forward_fast`` for inputs of ``shape`` and
    ``dtype``, from cut point ``start`` (None: the input) to ``stop`` (None: the end).

    Checks the per-sample shape here, once: the planned calls trust it.
    """
    first, last = network._span(start, stop)
    expected = network.input_shape if start is None else network.nodes[first - 1].layer.output_shape
    if tuple(shape[1:]) != tuple(expected):
        where = "the network was built" if start is None else f"node {start!r} gives"
        raise ValueError(f"{where} for inputs of shape {tuple(expected)} per sample, got "
                         f"{tuple(shape[1:])}")
    steps = compile_steps(network, False, first, last)
    source = start or INPUT
    inputs = [tuple(source if name == INPUT else name for name in step.inputs) for step in steps]
    last_read = {}
    for k, names in enumerate(inputs):
        for name in names:
            last_read[name] = k
    dtype = np.dtype(dtype)
    calls = tuple((step.kernel.fast(shape[0], dtype), names, step.output,
                   tuple(sorted({name for name in names if last_read[name] == k})))
                  for k, (step, names) in enumerate(zip(steps, inputs)))
    out_shapes = [(shape[0],) + tuple(network.nodes[step.last].layer.output_shape)
                  for step in steps]
    slots, copy_output = assign_slots(
        [(names, step.output, math.prod(out_shape) * dtype.itemsize, step.kernel.fast_out, drop)
         for step, names, out_shape, (*_, drop) in zip(steps, inputs, out_shapes, calls)],
        source, steps[-1].output)
    outs = tuple(None if slot is None else (slot, out_shape, dtype)
                 for slot, out_shape in zip(slots, out_shapes))
    return Plan(calls, source, steps[-1].output, outs, copy_output)

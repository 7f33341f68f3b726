"""Compiling a network into the calls its passes make.

The layers of a :class:`~skconv._network.Network` know nothing of their
neighbours. Which of them run as one call is decided here, once, by the rules
of :data:`FUSION_RULES`: each names a chain of layer ops (a node taking the
one before's output, which nothing else reads), a condition on those layers,
the step that runs them, and whether training uses it too. The first rule that
matches at a node wins, so longer chains go first.

Training runs the steps of :func:`compile_steps`; inference runs a
:class:`Plan`, the steps' planned calls for one input shape, dtype and
``_engine.plan_context()`` (threads, SIMD path), from :func:`compile_plan`.
"""

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

    def forward(self, xs):
        if self.relu:
            return self.layer.forward(*xs, training=True, relu=True)
        return self.layer.forward(*xs, training=True)

    def backward(self, dy, need_dx):
        dx = self.layer.backward(dy, need_dx=need_dx)
        return dx if isinstance(dx, tuple) else (dx,)

    def fast(self, n, dtype):
        if self.relu:
            return self.layer.fast_call(n, dtype, relu=True)
        return self.layer.fast_call(n, dtype)


class ConvPoolStep:
    """A stride-1 convolution that max-pools its output 2x2 as it goes, then the
    ReLU when the chain has one: the convolution's output (8 MB for a batch of
    64 through 32 filters on 32x32) is never written out, each sample's being
    pooled while in cache (``pool2`` of ``_engine.conv2d``). The same values,
    and the argmax and state that the pooling's backward goes back through,
    kept in the pooling layer's buffers."""

    rule = "conv_pool"

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


class FoldedStep:
    """Inference only: a convolution or dense layer with the batch norm after it
    folded into its weights and bias (from the running statistics, at each
    call, so that a change of the parameters is never missed), then the 2x2
    max pooling a stride-1 convolution computes as it goes, then the ReLU."""

    rule = "folded"

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


Rule = namedtuple("Rule", "name ops condition step training")

#: The fusions, tried in order at each node; ``'*'`` is any op. A ReLU
#: "inside" a layer is applied by its kernel as it writes the output.
FUSION_RULES = (
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
    Rule("ReLU inside the layer before", (_ANY, "relu"), _fuses_relu, LayerStep, True),
)


class Step:
    """A call of a pass: ``kernel`` (one of the step classes above) runs nodes
    ``first`` to ``last``, reading ``inputs`` and writing ``output``, as the
    fusion rule called ``fusion`` says (None: one layer on its own)."""

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
    """The steps of a pass over nodes ``first`` to ``last - 1`` of ``network``."""
    nodes = network.nodes[first:last]
    readers = {}
    for node in nodes:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
    rules = [rule for rule in FUSION_RULES if rule.training or not training]
    steps, i = [], 0
    while i < len(nodes):
        for rule in rules:
            chain = nodes[i:i + len(rule.ops)]
            if len(chain) == len(rule.ops) and _is_chain(chain, readers) and all(
                    op in (_ANY, node.layer.op) for op, node in zip(rule.ops, chain)) \
                    and rule.condition(*(node.layer for node in chain)):
                break
        else:
            rule, chain = None, nodes[i:i + 1]
        kernel = (rule.step if rule else LayerStep)([node.layer for node in chain])
        steps.append(Step(kernel, first + i, first + i + len(chain) - 1, chain[0].inputs,
                          chain[-1].name, rule and rule.name))
        i += len(chain)
    return tuple(steps)


def _is_chain(chain, readers):
    """Whether each node takes the one before's output alone, which nothing else reads."""
    return all(node.inputs == (prev.name,) and readers.get(prev.name) == 1
               for prev, node in zip(chain, chain[1:]))


class Plan:
    """The planned calls of an inference pass for one input shape and dtype.

    ``calls`` are ``(function, inputs, output, drop)``: a value is dropped
    after its last reader, so a long network holds only the live ones. Every
    call allocates its own output and scratch: threads may run a plan at once.
    """

    def __init__(self, calls, source, output):
        self.calls = calls
        self.source, self.output = source, output
        # a chain (each call reads the one before's output only) runs as a plain loop
        reads = [inputs for _, inputs, _, _ in calls]
        writes = [source] + [output for _, _, output, _ in calls[:-1]]
        self.chain = all(r == (w,) for r, w in zip(reads, writes))

    def run(self, x):
        if self.chain:
            for function, *_ in self.calls:
                x = function(x)
            return x
        values = {self.source: x}
        for function, inputs, output, drop in self.calls:
            values[output] = function(*[values[name] for name in inputs])
            for name in drop:
                del values[name]
        return values[self.output]


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
    calls = tuple((step.kernel.fast(shape[0], np.dtype(dtype)), names, step.output,
                   tuple(sorted({name for name in names if last_read[name] == k})))
                  for k, (step, names) in enumerate(zip(steps, inputs)))
    return Plan(calls, source, steps[-1].output)

"""ONNX export of fitted skconv estimators, through skl2onnx.

Importing this module registers converters for :class:`~skconv.ConvNetClassifier`
and :class:`~skconv.ConvNetRegressor` with skl2onnx
(``update_registered_converter``), so ``skl2onnx.to_onnx`` converts the
estimator alone or inside a scikit-learn ``Pipeline``, its preprocessing steps
included::

    import skl2onnx
    import skconv.onnx  # noqa: F401  (registers the converter)

    onx = skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})

``import skconv`` never imports skl2onnx: only ``import skconv.onnx`` does
(``pip install "skconv[onnx]"``).

The graph is the network's inference path, node by node (each layer op has
one converter in ``_LAYERS``):

- the input as the user gives it (flat rows, ``(n, h, w)`` or
  ``(n, h, w, c)`` images; float32, float64 or int64) is cast to the
  model's dtype, reshaped to ``(n, h, w, c)`` and transposed to NCHW;
- ``Conv`` with explicit ``pads`` (``'same'`` puts its odd extra row and
  column at the bottom and right, as skconv does), strides, dilations and
  ``group`` (grouped, depthwise and separable convolutions);
- ``Add`` where a residual block's branches meet; ``GlobalAveragePool`` /
  ``GlobalMaxPool`` then ``Flatten`` for global pooling;
- ``BatchNormalization`` with the running statistics; activations;
- ``MaxPool`` / ``AveragePool`` with the clipped window skconv uses (a window
  larger than the feature map is clipped to it), stride equal to the window,
  no padding and ``count_include_pad=0``;
- ``Flatten`` (the (c, h, w) order of skconv's dense inputs), ``Gemm``;
- a network of series (``input_shape=(length, channels)``) is a 1-D graph:
  the input is reshaped to ``(n, length, channels)`` and transposed to
  ``(n, channels, length)``, and its ``Conv``, ``MaxPool``, ``AveragePool``,
  ``BatchNormalization`` and global pooling nodes are 1-D (one kernel
  size, stride, dilation; pads ``[before, after]``, an even kernel's
  ``'same'`` extra step after, as skconv and PyTorch pad);
- the output activation, the estimator's ``out_activation_``: ``Softmax``
  (classifier), ``Sigmoid`` (multilabel classifier), none (regressor),
  ``Exp`` (a regressor fitted with ``loss='poisson'``);
  dropout vanishes.

A float64 model computes in float64 throughout. onnxruntime has no float64
kernel for ``Conv`` or ``AveragePool``, so for a float64 model those two are
written with standard ops instead: the convolution as pad, one strided
``Slice`` per kernel offset, ``Concat`` and one ``MatMul`` (im2col; a grouped
convolution one such product per group, concatenated), and the average
pooling, global or not, as ``Reshape`` and ``ReduceMean`` (global max pooling
as ``ReduceMax``). These give skconv's results to float64 rounding.

Classifier outputs follow skl2onnx's convention: ``label`` (the original
class labels: int64 for integer, boolean or integral float labels, strings
for string labels) and ``probabilities`` (float32, or float64 for float64
input), turned into a list of dicts by ``ZipMap`` unless the option
``zipmap=False`` is given (``zipmap='columns'`` gives one output per class);
with ``ZipMap`` the two outputs are named ``output_label`` and
``output_probability``.
A multilabel classifier's ``label`` is ``predict``'s int64 0/1 indicator
matrix. A regressor has one output, ``variable``, of shape (n, n_outputs) as
skl2onnx's regressors (a column for a single target, where ``predict`` gives a
1-D array).

Anything the converter cannot express raises an error naming it: opsets
below 13, class labels that are neither integers nor strings, layers it does
not know. An input whose samples ``predict`` would refuse (rows of another
length, channels-first images) is refused with ``predict``'s error.
"""

import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
    guess_proto_type,
    guess_tensor_type,
)
from skl2onnx.common.utils import check_input_and_output_numbers
from sklearn.utils.validation import check_is_fitted

from ._classifier import ConvNetClassifier
from ._plan import INPUT
from ._regressor import ConvNetRegressor

__all__ = ["MIN_OPSET", "convert_convnet_classifier", "convert_convnet_regressor",
           "shape_convnet_classifier", "shape_convnet_regressor"]

#: the oldest opset the converter writes (Softmax over one axis, Slice/Pad inputs)
MIN_OPSET = 13

_PROTO = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid", "identity": None}
# the estimator's ``out_activation_`` -> ONNX op: softmax classifier, multilabel,
# regressor, Poisson regressor
_OUT_ACTIVATIONS = {"softmax": "Softmax", "logistic": "Sigmoid", "identity": None,
                    "exp": "Exp"}


class _Graph:
    """Thin helper over skl2onnx's scope and container: unique names, constants, nodes."""

    def __init__(self, scope, container, dtype, series=False):
        self.scope = scope
        self.container = container
        self.dtype = np.dtype(dtype)
        self.proto = _PROTO[self.dtype]
        self.opset = container.target_opset
        # a network of series: its tensors are (n, c, length), the layers' images of one row
        self.series = series

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def const(self, hint, value, proto=None):
        """An initializer; model-dtype floats unless ``proto`` says otherwise."""
        value = np.asarray(value)
        if proto is None:
            proto = self.proto
            value = value.astype(self.dtype)
        elif proto == TensorProto.INT64:
            value = value.astype(np.int64)
        name = self.name(hint)
        content = value.ravel() if proto != TensorProto.STRING else list(value.ravel())
        self.container.add_initializer(name, proto, list(value.shape), content)
        return name

    def ints(self, hint, values):
        return self.const(hint, np.asarray(values, dtype=np.int64), TensorProto.INT64)

    def node(self, op, inputs, hint=None, output=None, **attrs):
        """Add one node; return its (single) output's name."""
        output = output or self.name(hint or op.lower())
        self.container.add_node(op, list(inputs), [output],
                                name=self.scope.get_unique_operator_name(op), **attrs)
        return output


# ---------------------------------------------------------------------- layers


def _with_height(convert):
    """A converter of NCHW images applied to series (n, c, length): the row axis
    put back around it (onnxruntime's float64 stand-ins are written for 2-D)."""
    def on_series(g, layer, x):
        y = convert(g, layer, g.node("Unsqueeze", [x, g.ints("axes", [2])]))
        return g.node("Squeeze", [y, g.ints("axes", [2])])
    return on_series


def _conv(g, layer, x):
    """Conv2D on NCHW ``x``: explicit pads, the 'same' extra row/column bottom/right;
    on series (n, c, length) a 1-D Conv, the extra step after."""
    (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
    pads = [ph, pw, ph + eh, pw + ew]
    w = layer._w
    b = layer._b if layer.bias else None
    if g.series and g.dtype == np.float32:
        inputs = [x, g.const("conv_w", w[:, :, 0])]
        inputs += [g.const("conv_b", b)] if b is not None else []
        return g.node("Conv", inputs, kernel_shape=[layer.kernel_size[1]],
                      strides=[layer.stride[1]], dilations=[layer.dilation[1]],
                      pads=[pw, pw + ew], group=layer.groups)
    if g.series:
        return _with_height(_conv_planar)(g, layer, x)
    return _conv_planar(g, layer, x, pads, w, b)


def _conv_planar(g, layer, x, pads=None, w=None, b=None):
    if pads is None:
        (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
        pads = [ph, pw, ph + eh, pw + ew]
        w, b = layer._w, (layer._b if layer.bias else None)
    if g.dtype == np.float32:
        inputs = [x, g.const("conv_w", w)] + ([g.const("conv_b", b)] if b is not None else [])
        return g.node("Conv", inputs, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), dilations=list(layer.dilation), pads=pads,
                      group=layer.groups)
    if layer.groups == 1:
        return _conv_im2col(g, layer, x, pads, w, b)
    # float64 grouped: each group's channels through its own im2col product
    c, f, groups = layer.input_shape[0], layer.filters, layer.groups
    axis = g.ints("axes", [1])
    outputs = []
    for k in range(groups):
        part = g.node("Slice", [x, g.ints("starts", [k * c // groups]),
                                g.ints("ends", [(k + 1) * c // groups]), axis])
        rows = slice(k * f // groups, (k + 1) * f // groups)
        outputs.append(_conv_im2col(g, layer, part, pads, w[rows],
                                    None if b is None else b[rows]))
    return g.node("Concat", outputs, axis=1)


def _conv_im2col(g, layer, x, pads, w, b):
    """The convolution as Pad, one strided Slice per kernel offset, Concat, MatMul.

    For float64 models: onnxruntime has no float64 Conv. Works in NHWC so the
    patches concatenate along the last axis, in (ki, kj, c) order.
    """
    f, c, kh, kw = w.shape
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    _, oh, ow = layer.output_shape
    if any(pads):
        x = g.node("Pad", [x, g.ints("pads", [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]])])
    x = g.node("Transpose", [x], perm=[0, 2, 3, 1])
    axes, steps = g.ints("axes", [1, 2]), g.ints("steps", [sh, sw])
    patches = []
    for ki in range(kh):
        for kj in range(kw):
            starts = [ki * dh, kj * dw]
            ends = [starts[0] + (oh - 1) * sh + 1, starts[1] + (ow - 1) * sw + 1]
            patches.append(g.node("Slice", [x, g.ints("starts", starts), g.ints("ends", ends),
                                             axes, steps]))
    cols = patches[0] if len(patches) == 1 else g.node("Concat", patches, axis=3)
    y = g.node("MatMul", [cols, g.const("conv_w", w.transpose(2, 3, 1, 0).reshape(-1, f))])
    if b is not None:
        y = g.node("Add", [y, g.const("conv_b", b)])
    return g.node("Transpose", [y], perm=[0, 3, 1, 2])


def _batch_norm(g, layer, x):
    return g.node("BatchNormalization",
                  [x, g.const("bn_scale", layer._scale), g.const("bn_shift", layer._shift),
                   g.const("bn_mean", layer.running_mean), g.const("bn_var", layer.running_var)],
                  epsilon=layer.eps)


def _max_pool(g, layer, x):
    kh, kw = layer.window
    if g.series:
        return g.node("MaxPool", [x], kernel_shape=[kw], strides=[kw], pads=[0, 0])
    return g.node("MaxPool", [x], kernel_shape=[kh, kw], strides=[kh, kw], pads=[0, 0, 0, 0])


def _avg_pool(g, layer, x):
    kh, kw = layer.window
    if g.series and g.dtype == np.float32:
        return g.node("AveragePool", [x], kernel_shape=[kw], strides=[kw], pads=[0, 0],
                      count_include_pad=0)
    if g.series:
        return _with_height(_avg_pool_planar)(g, layer, x)
    return _avg_pool_planar(g, layer, x)


def _avg_pool_planar(g, layer, x):
    kh, kw = layer.window
    if g.dtype == np.float32:
        return g.node("AveragePool", [x], kernel_shape=[kh, kw], strides=[kh, kw],
                      pads=[0, 0, 0, 0], count_include_pad=0)
    # float64: onnxruntime has no float64 AveragePool. Drop the rows/columns no
    # window covers, split each axis into (windows, window) and average.
    c, oh, ow = layer.output_shape
    _, h, w = layer.input_shape
    if (oh * kh, ow * kw) != (h, w):
        x = g.node("Slice", [x, g.ints("starts", [0, 0]), g.ints("ends", [oh * kh, ow * kw]),
                             g.ints("axes", [2, 3])])
    x = g.node("Reshape", [x, g.ints("shape", [-1, c, oh, kh, ow, kw])])
    if g.opset >= 18:
        return g.node("ReduceMean", [x, g.ints("axes", [3, 5])], keepdims=0)
    return g.node("ReduceMean", [x], axes=[3, 5], keepdims=0)


def _activation(g, layer, x):
    op = _ACTIVATIONS[layer.kind]
    return x if op is None else g.node(op, [x])


def _dense(g, layer, x):
    inputs = [x, g.const("dense_w", layer._w)]
    if layer.bias:
        inputs.append(g.const("dense_b", layer._b))
    return g.node("Gemm", inputs)


def _global_pool(g, layer, x):
    op = "GlobalAveragePool" if layer.kind == "avg" else "GlobalMaxPool"
    if g.dtype == np.float64:
        # onnxruntime has no float64 GlobalAveragePool or GlobalMaxPool
        reduce = "ReduceMean" if layer.kind == "avg" else "ReduceMax"
        axes = [2] if g.series else [2, 3]
        if g.opset >= 18:
            return g.node(reduce, [x, g.ints("axes", axes)], keepdims=0)
        return g.node(reduce, [x], axes=axes, keepdims=0)
    return g.node("Flatten", [g.node(op, [x])], axis=1)


#: one converter per layer op (``Layer.op``): ``convert(graph, layer, *inputs) -> output``
_LAYERS = {
    "conv": _conv,
    "batch_norm": _batch_norm,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "relu": _activation,
    "tanh": _activation,
    "logistic": _activation,
    "identity": _activation,
    "flatten": lambda g, layer, x: g.node("Flatten", [x], axis=1),
    "dense": _dense,
    "dropout": lambda g, layer, x: x,
    "add": lambda g, layer, a, b: g.node("Add", [a, b]),
    "global_pool": _global_pool,
}


def _network_logits(g, estimator, x):
    """Graph of the estimator's network from input ``x`` (as the user gives it) to
    the last layer's output, before the output activation: (n, n_outputs), model dtype."""
    h, w, c = estimator._hwc
    x = g.node("Cast", [x], to=g.proto)
    if estimator.input_scale is not None:  # divided after the cast, as the batch gather does
        x = g.node("Div", [x, g.const("input_scale", estimator.input_scale)])
    if g.series:  # (n, length, channels) -> (n, channels, length)
        x = g.node("Reshape", [x, g.ints("shape", [-1, w, c])])
        x = g.node("Transpose", [x], perm=[0, 2, 1])
    else:
        x = g.node("Reshape", [x, g.ints("shape", [-1, h, w, c])])
        x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    values = {INPUT: x}
    for node in estimator._network.nodes:
        convert = _LAYERS.get(node.layer.op)
        if convert is None:
            raise NotImplementedError(
                f"node {node.name!r} of {type(estimator).__name__}, "
                f"{type(node.layer).__name__}, has no ONNX converter in skconv.onnx "
                f"(known layer ops: {sorted(_LAYERS)})"
            )
        values[node.name] = convert(g, node.layer, *(values[name] for name in node.inputs))
    return values[estimator._network.output]


def _output_activation(g, estimator, logits):
    """The estimator's ``out_activation_`` on the logits."""
    out = estimator.out_activation_
    if out not in _OUT_ACTIVATIONS:
        raise NotImplementedError(
            f"out_activation_={out!r} of {type(estimator).__name__} has no ONNX converter "
            f"(known: {sorted(_OUT_ACTIVATIONS)})"
        )
    op = _OUT_ACTIVATIONS[out]
    if op is None:
        return logits
    attrs = {"axis": 1} if op == "Softmax" else {}
    return g.node(op, [logits], hint="output", **attrs)


def _check_convertible(operator, container):
    estimator = operator.raw_operator
    check_is_fitted(estimator)
    if container.target_opset < MIN_OPSET:
        raise RuntimeError(
            f"target_opset={container.target_opset} is too old for skconv.onnx; "
            f"{type(estimator).__name__} needs opset {MIN_OPSET} or newer"
        )
    dtype = np.dtype(estimator._network.dtype)
    if dtype not in _PROTO:
        raise NotImplementedError(f"dtype={dtype.name!r} models have no ONNX converter")
    return estimator, dtype


# ---------------------------------------------------------------------- classifier


def _label_classes(scope, estimator):
    """``classes_`` as ONNX label values and their type: int64 or strings.

    Integral float and boolean labels become int64, as skl2onnx does for
    scikit-learn's classifiers; other labels raise ``ValueError``. With
    skl2onnx's option ``nocl=True`` the labels are the class indices.
    """
    classes = estimator.classes_
    if scope.get_options(estimator, dict(nocl=False))["nocl"]:
        return np.arange(len(classes), dtype=np.int64), TensorProto.INT64
    kind = classes.dtype.kind
    # the cast to int64 would wrap uint64 labels above its range into other labels
    if kind in "bi" or (kind == "u" and classes.max() <= np.iinfo(np.int64).max):
        return classes.astype(np.int64), TensorProto.INT64
    if kind == "f" and np.all(classes == np.round(classes)):
        return classes.astype(np.int64), TensorProto.INT64
    if all(isinstance(v, str) for v in classes):
        return np.array([v.encode("utf-8") for v in classes], dtype=object), TensorProto.STRING
    raise ValueError(
        f"classes_={classes!r} of {type(estimator).__name__} cannot be ONNX labels: "
        "ONNX classifiers label with int64 or strings, so the labels must be integers "
        "within int64's range (integral floats and booleans are cast) or all strings"
    )


def _input_type(operator):
    """The operator's input type, checked: float, double or int64 tensors whose
    samples, where the shape says them, are those ``predict`` accepts."""
    estimator = operator.raw_operator
    # the shape calculators run before the converter, and read fitted attributes
    check_is_fitted(estimator)
    in_type = operator.inputs[0].type
    if not isinstance(in_type, (FloatTensorType, DoubleTensorType, Int64TensorType)):
        raise TypeError(
            f"{type(estimator).__name__} takes float, double or int64 input in "
            f"ONNX, got {type(in_type).__name__}"
        )
    # the graph reshapes whatever it gets to the fitted samples: a row of another
    # length would fail only when served, channels-first images would be misread
    shape = in_type.shape
    if shape is not None and len(shape) > 1 and all(isinstance(d, (int, np.integer))
                                                     for d in shape[1:]):
        shape = (None,) + tuple(int(d) for d in shape[1:])
        estimator._check_image_shape(estimator._sample_shape(shape, estimator._signal()),
                                     shape)
    return in_type


def _set_output(operator, index, in_type, width):
    """Output ``index`` is a real tensor (n, width) of the input's float type, as in skl2onnx."""
    operator.outputs[index].type = guess_tensor_type(in_type)
    operator.outputs[index].type.shape = [operator.inputs[0].get_first_dimension(), width]


def shape_convnet_classifier(operator):
    """skl2onnx shape calculator: ``label`` (n,), or (n, n_labels) for multilabel,
    and ``probabilities`` (n, n_classes)."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    estimator = operator.raw_operator
    in_type = _input_type(operator)
    zipmap = operator.scope_inst.get_options(estimator, dict(zipmap=True))["zipmap"]
    if zipmap is True and isinstance(in_type, DoubleTensorType):
        # skl2onnx's ZipMap takes float32 only, and would give an invalid model
        raise ValueError(
            f"zipmap=True needs float32 probabilities, but {type(estimator).__name__} gets "
            "float64 input here (probabilities follow the input type): pass "
            "options={'zipmap': False} (or 'columns'), or convert for float32 input "
            "(X[:1].astype(np.float32))"
        )
    n = operator.inputs[0].get_first_dimension()
    if estimator.out_activation_ == "logistic":
        # multilabel: predict's 0/1 indicator matrix
        operator.outputs[0].type = Int64TensorType(shape=[n, len(estimator.classes_)])
    else:
        _, label_proto = _label_classes(operator.scope_inst, estimator)
        label_type = Int64TensorType if label_proto == TensorProto.INT64 else StringTensorType
        operator.outputs[0].type = label_type(shape=[n])
    _set_output(operator, 1, in_type, len(estimator.classes_))


def convert_convnet_classifier(scope, operator, container):
    """skl2onnx converter of a fitted :class:`~skconv.ConvNetClassifier`.

    Writes ``operator.outputs[0]``, the labels as ``predict`` gives them:
    ``classes_`` at the argmax of the logits, or for multilabel (a logistic
    output) the int64 indicator matrix of the positive logits; and
    ``operator.outputs[1]``, the probabilities (softmax, or each label's
    sigmoid), cast to that output's type.
    """
    estimator, dtype = _check_convertible(operator, container)
    g = _Graph(scope, container, dtype, series=estimator._signal())
    logits = _network_logits(g, estimator, operator.inputs[0].full_name)
    proba = _output_activation(g, estimator, logits)
    g.node("Cast", [proba], output=operator.outputs[1].full_name,
           to=guess_proto_type(operator.outputs[1].type))
    if estimator.out_activation_ == "logistic":
        positive = g.node("Greater", [logits, g.const("zero", 0.0)])
        g.node("Cast", [positive], to=TensorProto.INT64, output=operator.outputs[0].full_name)
        return
    # as predict: the argmax of the logits (the softmax may round two of them to a tie)
    classes, label_proto = _label_classes(scope, estimator)
    index = g.node("ArgMax", [logits], axis=1, keepdims=0)
    g.node("Gather", [g.const("classes", classes, label_proto), index], axis=0,
           output=operator.outputs[0].full_name)


# ---------------------------------------------------------------------- regressor


def shape_convnet_regressor(operator):
    """skl2onnx shape calculator: one output, (n, n_outputs), as skl2onnx's regressors
    (a single target is a column, where ``predict`` gives a 1-D array)."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    _set_output(operator, 0, _input_type(operator), operator.raw_operator.n_outputs_)


def convert_convnet_regressor(scope, operator, container):
    """skl2onnx converter of a fitted ``ConvNetRegressor``: the network's outputs
    through its output activation (the identity, or ``Exp`` for
    ``loss='poisson'``), cast to the output's type."""
    estimator, dtype = _check_convertible(operator, container)
    g = _Graph(scope, container, dtype, series=estimator._signal())
    logits = _network_logits(g, estimator, operator.inputs[0].full_name)
    g.node("Cast", [_output_activation(g, estimator, logits)],
           output=operator.outputs[0].full_name,
           to=guess_proto_type(operator.outputs[0].type))


def _register():
    update_registered_converter(
        ConvNetClassifier,
        "SkconvConvNetClassifier",
        shape_convnet_classifier,
        convert_convnet_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                 "output_class_labels": [False, True]},
    )
    update_registered_converter(ConvNetRegressor, "SkconvConvNetRegressor",
                                shape_convnet_regressor, convert_convnet_regressor)


_register()

"""Published architectures as estimator parameters.

Each function returns a dict of keyword arguments for
:class:`~skconv.ConvNetClassifier` or :class:`~skconv.ConvNetRegressor`, so
that an architecture is a starting point, not a class of its own::

    from skconv import ConvNetClassifier
    from skconv.architectures import resnet

    clf = ConvNetClassifier(**resnet(20), max_iter=30)

Every value is an ordinary parameter: override any of them
(``ConvNetClassifier(**{**resnet(8), "learning_rate_init": 0.01})``), and
search over their ``conv_layers`` with ``GridSearchCV``::

    grid = {"conv_layers": [resnet(8)["conv_layers"], resnet(14)["conv_layers"]]}

:func:`fcn` and :func:`resnet1d` are networks for series, to use with
``input_shape=(length, channels)``.
"""

from numbers import Integral, Real

__all__ = ["fcn", "lenet5", "mobilenet", "resnet", "resnet1d"]


def _positive_int(value, name):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return int(value)


def _fully_convolutional(blocks):
    """The parameters of a net whose conv blocks end in global average pooling straight
    into the output layer, with batch norm throughout."""
    return {"conv_layers": tuple(blocks), "batch_norm": True, "global_pool": "avg",
            "hidden_layer_sizes": ()}


def lenet5():
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, "Gradient-based learning
    applied to document recognition"), with ReLU and max pooling.

    Two 'valid' 5x5 convolutions of 6 and 16 filters, each followed by 2x2 max
    pooling, then dense layers of 120 and 84 units. Made for 28x28 or 32x32
    grey images (on 28x28, the 16 maps of the second block are 4x4).

    Returns
    -------
    params : dict
        ``conv_layers``, ``padding`` and ``hidden_layer_sizes``.
    """
    return {"conv_layers": ((6, 5), (16, 5)), "padding": "valid",
            "hidden_layer_sizes": (120, 84)}


def resnet(depth=20, width=16):
    """The CIFAR ResNet of He, Zhang, Ren and Sun 2016 ("Deep residual learning
    for image recognition", section 4.2).

    A 3x3 convolution of ``width`` filters, then three stages of ``n`` residual
    blocks each, ``depth = 6n + 2``: every block is two 3x3 convolutions with
    batch norm, the stages having ``width``, ``2 * width`` and ``4 * width``
    filters, the first block of the second and third stages halving the
    height and width with a stride of 2; global average pooling; the output
    layer. Where a block changes the filters or the size, its shortcut is a
    1x1 convolution with batch norm (the paper's option B; its CIFAR nets pad
    the identity with zeros, option A, which has no parameters).

    Parameters
    ----------
    depth : int, default=20
        ``6n + 2``: 8, 14, 20 (0.27 M parameters at width 16), 32, 44, 56, 110.
    width : int, default=16
        Filters of the first stage.

    Returns
    -------
    params : dict
        ``conv_layers``, ``batch_norm=True``, ``global_pool='avg'``,
        ``hidden_layer_sizes=()``.
    """
    depth = _positive_int(depth, "depth")
    width = _positive_int(width, "width")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth} must be 6n + 2 for an n >= 1: 8, 14, 20, 32, 44, "
                         "56, 110, ...")
    n = (depth - 2) // 6
    blocks = [{"filters": width, "pool": None}]
    for stage in range(3):
        filters = width * 2 ** stage
        for k in range(n):
            stride = 2 if stage > 0 and k == 0 else 1
            blocks.append({"residual": [{"filters": filters, "stride": stride}, filters]})
    return _fully_convolutional(blocks)


# MobileNet's separable layers: (filters, stride), after the first 3x3 convolution
_MOBILENET_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet(width=1.0, n_layers=13):
    """MobileNet (Howard et al. 2017, "MobileNets: efficient convolutional neural
    networks for mobile vision applications"), for small images.

    A 3x3 convolution of 32 filters, then depthwise separable convolutions
    (a depthwise 3x3 convolution and a 1x1 convolution, each with batch norm
    and the activation), global average pooling and the output layer. The
    paper's first convolution has a stride of 2 for 224x224 images; here it
    has 1, as for CIFAR-sized images, and the separable layers halve the size
    four times.

    Parameters
    ----------
    width : float in (0, 1], default=1.0
        The paper's width multiplier: every layer has ``width`` times its
        filters (at least 1).
    n_layers : int in [1, 13], default=13
        The first ``n_layers`` separable layers of the paper's 13: fewer make
        a shallower net for small inputs.

    Returns
    -------
    params : dict
        ``conv_layers``, ``batch_norm=True``, ``global_pool='avg'``,
        ``hidden_layer_sizes=()``.
    """
    if not isinstance(width, Real) or isinstance(width, bool) or not 0 < width <= 1:
        raise ValueError(f"width={width!r} must be a float in (0, 1]")
    n_layers = _positive_int(n_layers, "n_layers")
    if n_layers > len(_MOBILENET_LAYERS):
        raise ValueError(f"n_layers={n_layers} must be at most {len(_MOBILENET_LAYERS)}")

    def scaled(filters):
        return max(1, int(round(filters * width)))

    blocks = [{"filters": scaled(32), "pool": None}]
    blocks += [{"filters": scaled(f), "stride": s, "separable": True, "pool": None}
               for f, s in _MOBILENET_LAYERS[:n_layers]]
    return _fully_convolutional(blocks)


def fcn(width=128):
    """The fully convolutional network for time series of Wang, Yan and Oates 2017
    ("Time series classification from scratch with deep neural networks: a
    strong baseline", IJCNN), for series: ``input_shape=(length, channels)``.

    Three convolutions of ``width``, ``2 * width`` and ``width`` filters with
    kernels of 8, 5 and 3 time steps ('same' padding: the length is kept), each
    followed by batch norm and ReLU, no pooling; global average pooling over
    time; the output layer. Fawaz et al. 2019 ("Deep learning for time series
    classification: a review") benchmark it on the UCR/UEA archives.

    Parameters
    ----------
    width : int, default=128
        Filters of the first and last convolutions (the paper's 128); smaller
        widths make a faster, smaller net.

    Returns
    -------
    params : dict
        ``conv_layers``, ``batch_norm=True``, ``global_pool='avg'``,
        ``hidden_layer_sizes=()``.
    """
    width = _positive_int(width, "width")
    blocks = tuple({"filters": f, "kernel_size": k, "pool": None}
                   for f, k in ((width, 8), (2 * width, 5), (width, 3)))
    return _fully_convolutional(blocks)


def resnet1d(width=64):
    """The residual network for time series of Wang, Yan and Oates 2017 (see
    :func:`fcn`), for series: ``input_shape=(length, channels)``.

    Three residual blocks of ``width``, ``2 * width`` and ``2 * width``
    filters, each of three convolutions with kernels of 8, 5 and 3 time steps
    ('same' padding), batch norm after each and ReLU after each but the last;
    the shortcut is a 1x1 convolution with batch norm where the filters
    change (the first two blocks), the identity otherwise (the paper's puts a
    batch norm on it); ReLU after the addition; global average pooling over
    time; the output layer.

    Parameters
    ----------
    width : int, default=64
        Filters of the first block (the paper's 64).

    Returns
    -------
    params : dict
        ``conv_layers``, ``batch_norm=True``, ``global_pool='avg'``,
        ``hidden_layer_sizes=()``.
    """
    width = _positive_int(width, "width")
    blocks = tuple({"residual": [{"filters": f, "kernel_size": k} for k in (8, 5, 3)]}
                   for f in (width, 2 * width, 2 * width))
    return _fully_convolutional(blocks)

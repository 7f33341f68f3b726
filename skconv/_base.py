"""BaseConvNet: what ConvNetClassifier and ConvNetRegressor share.

Parameters and their validation, the architecture (``conv_layers`` resolved
into layers), input handling (2D/3D/4D and sparse X, ``input_shape``; the
forms X is read from are ``_samples``'), the epoch loop with early stopping
and divergence handling, ``partial_fit`` bookkeeping, the fitted weights and
persistence. The subclasses add their loss, output activation, target
encoding, validation score and ``predict``; the numerics live in the network.
"""

import copy
import math
import os
import sys
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from . import _data
from ._samples import (
    check_equal_lengths,
    check_equal_shapes,
    check_finite_series,
    column_of_samples,
    refuse_channel_major_columns,
    refuse_long_series,
    refuse_mapping,
    series_terms,
    unnested,
)
from ._augment import augment_batch, check_augment, draw_transforms
from ._kernels import _boundary
from ._layers import Activation, Add, AvgPool2D, Conv2D, Dense, Flatten, GlobalPool2D, MaxPool2D
from ._network import Network, Node
from ._plan import INPUT
from ._normalization import BatchNorm1d, BatchNorm2d, Dropout
from ._optimizers import LR_SCHEDULES, AdamOptimizer, SGDOptimizer
from .exceptions import InconsistentVersionWarning
from . import _engine

# a first fit on X whose root mean square exceeds this warns to scale X: standardized
# or [0, 1]-scaled X stays below 1, 8-bit pixels are near 100, digits' 0..16 near 8
_RAW_INPUT_RMS = 5.0
# targets whose root mean square exceeds this are far from a network's first
# outputs, about 0, for its steps: a regressor's fit that stays about there is
# told to scale y (for digits' labels 0..9 it is 5.3)
_RAW_TARGET_RMS = 5.0

try:  # scikit-learn >= 1.9: the (experimental) callback API
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # scikit-learn 1.6 - 1.8: no callbacks; fit runs as before
    class CallbackSupportMixin:
        """Stand-in for scikit-learn < 1.9, which has no ``set_callbacks``."""

    def with_callbacks(method):
        return method

# bytes of the largest activation of one forward pass in predict: bounds
# memory for any number of rows, and sets the rows per pass (Network.rows_per_pass).
# Passes run at once, one a thread (_engine.run_passes); a pass whose
# activations stay in its core's L2 runs faster than a larger one
_PASS_BYTES = 6 << 20

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# the keys of a conv_layers dict entry; of a residual block's; of a conv in its body
_BLOCK_KEYS = {"filters", "kernel_size", "stride", "padding", "dilation", "pool", "pool_size",
               "batch_norm", "groups", "separable"}
_RESIDUAL_KEYS = {"residual", "pool", "pool_size", "batch_norm"}
_BODY_KEYS = {"filters", "kernel_size", "stride", "padding", "dilation", "groups", "separable"}
#: The parameters the network is built from: a fit that continues it
#: (warm_start, partial_fit) refuses a change of any of them since.
_ARCHITECTURE_PARAMS = ("conv_layers", "kernel_size", "padding", "pool", "pool_size",
                        "global_pool", "batch_norm", "dropout", "activation",
                        "hidden_layer_sizes", "dtype", "input_shape")

#: What a continued fit resets before its first epoch (and puts back if it
#: fails before one finished).
_CONTINUED_STATE = ("n_iter_", "_optimizer", "_no_improvement_count", "best_loss_",
                    "validation_scores_", "best_validation_score_")


def _comparable(value):
    """A parameter's value in a form that compares equal for the same
    architecture: any sequence a tuple, a dict its items, numpy values Python's."""
    if isinstance(value, dict):
        return tuple(sorted(((k, _comparable(v)) for k, v in value.items()),
                            key=lambda item: repr(item[0])))
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


_NON_FINITE_MESSAGE = (
    "Solver produced non-finite parameter weights. The input data may contain large "
    "values and need to be preprocessed, or learning_rate_init={} is too large."
)

# The parameters both estimators document the same way: each class docstring
# holds the marker, replaced by this text when the class is defined.
PARAMETERS_DOC = """conv_layers : sequence, default=(32, 64)
        One entry per conv block: an int (number of filters), a tuple
        ``(filters, kernel_size)``, or a dict with the key ``filters`` and any
        of ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``pool``,
        ``pool_size``, ``batch_norm``, ``groups`` (a grouped convolution:
        ``groups`` divides the block's input channels and its filters) and
        ``separable`` (True: a depthwise ``kernel_size`` convolution, one
        filter per input channel, then a 1x1 convolution to ``filters``).
        Unset values come from the block-wide defaults below (``stride=1``,
        ``dilation=1``). An entry ``{"residual": [spec, ...]}`` (and any of
        ``pool``, ``pool_size``, ``batch_norm``) is a residual block: its body
        is the list of conv specs (each an int, tuple or dict as above, strides
        allowed, but no ``pool``, ``pool_size`` or ``batch_norm`` key: the
        block's own ``batch_norm`` covers its body), with batch norm after
        each convolution when ``batch_norm``
        and the activation after each but the last; the block's input is added
        to the body's output (through a 1x1 convolution, with batch norm, when
        the body changes the filters or has a stride), then the activation.
        A residual block pools only if its ``pool`` says so. An empty sequence
        gives a plain MLP. ``skconv.architectures`` holds published
        architectures as parameter dicts.
    hidden_layer_sizes : array-like of int, default=(128,)
        Units of the dense layers between the conv blocks and the output;
        ``()`` puts the output layer right after them (with ``global_pool``,
        a fully convolutional network).
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
    kernel_size : int or (kh, kw), default=3
        Block-wide default kernel size.
    padding : {'same', 'valid'}, int or (ph, pw), default='same'
        Block-wide default padding. ``'same'`` keeps ``ceil(size / stride)``
        rows and columns (an odd total padding puts the extra row/column at
        the bottom/right). A ``'valid'`` or int-padded kernel that does not
        fit the feature map raises ``ValueError``.
    pool : {'max', 'avg'} or None, default='max'
        Block-wide default pooling after the activation.
    pool_size : int or (kh, kw), default=2
        Block-wide pooling window, with stride equal to the window. A window
        larger than the feature map is clipped to it, so small inputs never
        break the architecture (a 1xN map pools 1x2 windows, a 1x1 map passes
        through).
    global_pool : {'avg', 'max'} or None, default=None
        What follows the last conv block: None flattens its feature maps into
        the dense layers; ``'avg'`` or ``'max'`` pools each channel's map to
        one value (global average or max pooling), so that the number of
        parameters does not depend on the image size (the fitted model still
        reads images of the shape it was fitted on).
    batch_norm : bool, default=False
        Put batch normalization after each convolution (statistics per channel)
        and each hidden dense layer (per unit), before the activation; a
        ``conv_layers`` dict entry's ``batch_norm`` overrides it for its block.
        A layer followed by batch norm has no bias (the batch norm's shift
        replaces it). Training normalises with the batch statistics and updates
        running averages (momentum 0.1 as in ``torch.nn.BatchNorm2d``,
        ``eps=1e-5``); prediction and early stopping's validation score use the
        running averages, so each row's prediction depends on that row only.
        Batch norm's scale and shift get no L2 penalty. The batch statistics
        are unweighted: ``sample_weight`` weights the loss, not the mean and
        variance. A batch norm after a dense layer (or of 1 x 1 maps) has one
        value per channel in a row, none to normalise over in a batch of one:
        an epoch's last batch of one row joins the batch before, and
        ``batch_size=1`` (or one training row) is refused, as torch refuses it.
    dropout : float in [0, 1), default=0.0
        Dropout rate after each hidden dense layer's activation (inverted
        dropout: kept values are scaled by ``1 / (1 - dropout)`` in training;
        nothing is dropped at prediction). The masks are drawn from
        ``random_state``.
    input_shape : (height, width, channels) or (length, channels), default=None
        Shape of each sample. Three values: images; None infers them from X's
        shape for 3D ``(n, h, w)`` and 4D ``(n, h, w, c)`` input, and for 2D X
        with ``n_features = s * s`` they are ``(s, s, 1)``, otherwise
        ``(1, n_features, 1)``. 2D rows are images flattened row-major in
        (h, w, c) order. Two values: series ``(length, channels)`` (length
        None: that of the series of the X of ``fit``, which the fitted model
        then takes only), X of shape ``(n, length)``,
        ``(n, length * channels)`` (rows in (length, channels) order) or
        ``(n, length, channels)``; ``kernel_size``, ``stride``, ``dilation``,
        ``padding`` and ``pool_size`` are then ints along time, and
        ``'same'`` padding of an even kernel puts the extra step at the end,
        as PyTorch and Keras do. aeon and sktime hold series as ``(n,
        channels, length)``: pass ``X.transpose(0, 2, 1)``. 2D X may be a
        scipy sparse matrix: it is densified one batch at a time.
    solver : {'adam', 'sgd'}, default='adam'
        ``'lbfgs'`` (full-batch L-BFGS in ``MLPClassifier``) is refused with a
        message: convolutional nets train on mini-batches.
    alpha : float, default=1e-4
        L2 penalty on the weights (not the biases), scaled as in ``MLPClassifier``.
    batch_size : int or 'auto', default='auto'
        ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine', 'step', 'plateau'}, \
default='constant'
        Learning-rate schedule. ``'constant'``, ``'invscaling'`` and
        ``'adaptive'`` are ``MLPClassifier``'s, for ``solver='sgd'`` (Adam
        keeps its rate constant with them). Three more work with both
        solvers, per epoch ``e`` (from 0): ``'cosine'`` decays the rate to 0
        over ``max_iter`` epochs, ``lr * (1 + cos(pi * e' / (max_iter - W))) / 2``
        with ``e' = e - W`` after ``W = lr_warmup_epochs`` warm-up epochs;
        ``'step'`` multiplies it by ``lr_gamma`` every ``lr_step_size`` epochs;
        ``'plateau'`` multiplies it by ``lr_gamma`` each time the training loss
        (or the validation score) stalls for more than ``n_iter_no_change``
        epochs, and training stops when a stall finds the rate already
        <= 1e-6 (``'adaptive'``'s rule). ``learning_rate_curve_`` records the rate
        of each epoch.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule.
    max_iter : int, default=50
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the shuffling and the validation split;
        re-drawn on every ``fit``.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) below which an epoch
        counts as no improvement.
    verbose : bool, default=False
        Print one line per epoch: ``Iteration %d, loss = %.8f``, then the
        validation score (with ``early_stopping``) and the epoch time.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution. It (and ``partial_fit``)
        continues the fitted network: a change of the parameters that build
        it (``conv_layers``, ``global_pool``, ``hidden_layer_sizes``,
        ``activation``, ...) since is refused with a ``ValueError``.
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when the
        validation score (that of ``score``) stops improving; the best
        weights are restored. A classifier's split is stratified by class
        where every class can be on both sides (two rows of it at least, as
        many rows on each side as classes), else drawn plainly.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float
        Adam's parameters, by default 0.9, 0.999 and 1e-8 (``MLPClassifier``'s):
        the decay rates of its first and second moment estimates, and the
        term added to the square root of the second for stability.
    n_iter_no_change : int or np.inf, default=10
        Epochs without an improvement of ``tol`` that training tolerates, as
        in ``MLPClassifier``: the next one stops it (for ``'adaptive'`` and
        ``'plateau'``, lowers the rate); ``np.inf`` never stops on a plateau
        (``max_iter`` epochs run).
    max_fun : None
        Exists for ``MLPClassifier``'s signature only: there it bounds the
        loss evaluations of ``solver='lbfgs'``, which skconv does not have.
        Any other value than None is refused; bound training with ``max_iter``.
    dtype : {'float32', 'float64'}, default='float32'
        Precision of the weights and of all computation.
    augment : dict or None, default=None
        Random transforms of the training samples, drawn per sample and per
        epoch from ``random_state`` (so a fit is reproducible bit for bit).
        Images: any of the keys ``shift`` (int: largest shift in pixels along
        each axis, zero fill), ``rotate`` (largest rotation in degrees),
        ``scale`` (largest relative zoom, e.g. 0.1 for zooms in [0.9, 1.1];
        rotations and zooms are bilinear) and ``flip`` (bool: mirror half the
        images left-right), e.g. ``{"shift": 2, "rotate": 10}``. Series: any
        of ``shift`` (int: largest shift in time steps, zero fill), ``scale``
        (largest relative change of amplitude, e.g. 0.1 for factors in [0.9,
        1.1]) and ``noise`` (Gaussian noise whose standard deviation is this
        fraction of each channel's own over time, e.g. 0.05), applied in that
        order. Only the training batches are transformed: never early
        stopping's validation rows, never ``predict`` or ``transform``.
    lr_warmup_epochs : int, default=0
        Epochs of linear warm-up, ``lr * (e + 1) / (W + 1)``, before the
        ``'cosine'``, ``'step'`` and ``'plateau'`` schedules (< ``max_iter``
        for ``'cosine'``).
    lr_step_size : int, default=10
        Epochs between two reductions of the ``'step'`` schedule.
    lr_gamma : float in (0, 1), default=0.1
        Factor of each reduction of the ``'step'`` and ``'plateau'`` schedules.
    embedding_layer : int, default=-1
        The layer whose activations ``transform`` returns: 0 is the output of
        the conv blocks, flattened in (c, h, w) order; ``k`` >= 1 is hidden
        dense layer ``k`` after its activation (and batch norm); negative
        values count from the last, so -1 is the last hidden layer.
    input_scale : float > 0 or None, default=None
        Divide X by it as each batch is read: ``input_scale=255`` trains on
        8-bit pixels scaled to [0, 1] with the bits of ``X.astype(dtype) /
        dtype(255)``, without a scaled copy of X (a ``FunctionTransformer`` or
        ``X / 255`` makes one as large as X in float). ``predict`` and
        ``transform`` divide the same way. None divides by nothing.
    shuffle_buffer : int, default=10_000
        For X in a chunked store (an h5py dataset, a Zarr or Dask array):
        rows shuffled together. Each epoch visits the chunks in a random
        order, about ``shuffle_buffer`` rows' worth at a time, and shuffles
        the rows of each such group; with ``shuffle_buffer >= n_samples``
        the shuffle is exact (that of a numpy X with the same
        ``random_state``). Up to twice this many rows are held in memory, in
        X's dtype. numpy arrays and memory maps are always shuffled exactly.
        See the user guide's "Data larger than memory"."""

ATTRIBUTES_DOC = """n_features_in_ : int
        Features per sample, ``h * w * c``.
    feature_names_in_ : ndarray of str
        Only when X is a DataFrame with string column names.
    input_shape_ : (h, w, c) or (length, channels)
        The sample shape of the fit: ``(length, channels)`` for series.
    n_iter_ : int
        Epochs run by the last ``fit`` (``partial_fit`` calls add up).
    t_ : int
        Samples seen by the optimizer.
    loss_, best_loss_ : float
        Last epoch's training loss and the best (``best_loss_`` is None with
        early stopping).
    loss_curve_ : list of float
    learning_rate_curve_ : list of float
        The learning rate of each epoch (for Adam, before its bias correction).
    validation_scores_ : list of float or None
        Validation score per epoch with early stopping.
    best_validation_score_ : float or None
    n_layers_ : int
        Number of layers with weights plus one (the input), as ``MLPClassifier``.
    coefs_ : list of ndarray
        Weights, layer by layer: conv layers ``(filters, in_channels // groups,
        kh, kw)`` (NCHW, as ``torch.nn.Conv2d``; a separable convolution is two
        layers, its depthwise part ``(channels, 1, kh, kw)``, then its 1x1
        part; a residual block's shortcut convolution follows its body), then
        dense layers ``(n_in, n_out)`` (as ``MLPClassifier``). The first dense
        layer's inputs are the last feature maps flattened in (c, h, w) order
        (or globally pooled, one value per channel). These are views of the
        model's parameters: writing to them changes the model.
    intercepts_ : list of ndarray
        Biases, one ``(n_out,)`` array per entry of ``coefs_`` whose layer has
        a bias: with batch norm, a conv or dense layer followed by it has none."""


# an epoch of at least this many batches reports its batches to the callbacks
# (a progress bar then moves within the epoch)
_BATCH_CALLBACK_MIN_BATCHES = 50


# frames in these folders are skconv's or scikit-learn's (fit's wrapper, cross_val_score,
# Pipeline): a warning points at the first frame outside them, the user's call
_LIBRARY_DIRS = (os.path.dirname(__file__) + os.sep, os.path.dirname(sklearn.__file__) + os.sep)


def _warn(message, category=UserWarning):
    """``warnings.warn`` attributed to the user's line: the first caller outside
    skconv and scikit-learn (``skip_file_prefixes`` needs Python 3.12)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class _NoCallbackContext:
    """What the epoch loop calls when scikit-learn has no callback API: nothing happens."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        return self

    def call_on_fit_task_end(self, **kwargs):
        return False


class _FitCallbacks:
    """A fit's callback contexts: the fit, its epochs and, in long epochs, their batches.

    Every hook gets the fit's X and y (as given to ``fit``, validated) and its
    ``sample_weight`` as metadata, so ``ScoringMonitor`` scores each epoch's
    model on them; ``on_fit_task_end`` of an epoch or a batch returning True
    ends training after that epoch.
    """

    def __init__(self, estimator, max_epochs, X, y, sample_weight):
        self.estimator = estimator
        self.hook_args = {"X": X, "y": y, "metadata": (
            {} if sample_weight is None else {"sample_weight": sample_weight})}
        self.active = bool(getattr(estimator, "_skl_callbacks", None))
        if hasattr(estimator, "_init_callback_context"):
            self.root = estimator._init_callback_context(max_subtasks=max_epochs)
        else:
            self.root = _NoCallbackContext()
        self.root.call_on_fit_task_begin(estimator=estimator, **self.hook_args)
        self._epoch = None

    def begin_epoch(self, n_batches, streamed=False):
        """Open an epoch's task; True if its batches get tasks too (a long
        epoch's, or any epoch that reads X from disk or a cluster)."""
        per_batch = self.active and (streamed or n_batches >= _BATCH_CALLBACK_MIN_BATCHES)
        self._epoch = self.root.subcontext(task_name="epoch",
                                           max_subtasks=n_batches if per_batch else 0)
        self._epoch.call_on_fit_task_begin(estimator=self.estimator, **self.hook_args)
        return per_batch

    def batch(self):
        """One batch's task, begun and ended (after the batch); True to stop."""
        task = self._epoch.subcontext(task_name="batch")
        task.call_on_fit_task_begin(estimator=self.estimator)
        return task.call_on_fit_task_end(estimator=self.estimator)

    def end_epoch(self):
        """End the epoch's task with the model reached; True if a callback stops training."""
        return self._epoch.call_on_fit_task_end(
            estimator=self.estimator, reconstruction_attributes=lambda: {}, **self.hook_args)

    def end_fit(self):
        self.root.call_on_fit_task_end(estimator=self.estimator,
                                       reconstruction_attributes={}, **self.hook_args)


def fill_doc(cls):
    """Class decorator: put the shared parameter and attribute docs into ``cls.__doc__``."""
    cls.__doc__ = (cls.__doc__.replace("{shared_parameters}", PARAMETERS_DOC)
                   .replace("{shared_attributes}", ATTRIBUTES_DOC))
    return cls


def _dense_targets(y):
    """y as validated, a sparse y dense: a multilabel indicator matrix
    (``MultiLabelBinarizer(sparse_output=True)``) or several targets, of
    n_samples x n_outputs values, small next to X; the losses read them dense."""
    return y.toarray() if sp.issparse(y) else y


def _check_keys(entry, allowed, name, required, what):
    unknown = set(entry) - allowed
    if unknown or required not in entry:
        raise ValueError(
            f"conv_layers entry {entry!r} of {name} must have {what} and only keys from "
            f"{sorted(allowed)}; got {sorted(entry)}"
        )


def _as_pair(value, name, block, minimum, signal=False):
    """Check an int or pair of ints >= minimum (for series, ``signal``: an int);
    ``name=value`` appear in the error."""
    if signal and np.ndim(value) != 0:
        # a pair (or a list of one) would be refused for series anyway: say so first
        raise ValueError(
            f"{name}={value!r} in {block} must be an int for series (input_shape="
            "(length, channels)): kernel sizes, strides, dilations, paddings and "
            "pool sizes count time steps"
        )
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= minimum for v in pair
    ):
        raise ValueError(
            f"{name}={value!r} in {block} must be an int >= {minimum}"
            + (" (time steps)" if signal else " or a pair of them")
        )
    return value


def _along_time(spec, keys):
    """A series' conv or pooling settings, checked by :func:`_as_pair`, as those
    of an image of one row: each of ``keys`` an int along time -> ``(1, value)``
    (padding ``(0, value)``)."""
    for key in keys:
        if not isinstance(spec[key], str):
            spec[key] = (0 if key == "padding" else 1, spec[key])
    return spec


class BaseConvNet(CallbackSupportMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                  BaseEstimator, metaclass=ABCMeta):
    """Base class of the convolutional estimators. Not for direct use.

    A subclass sets the target side: ``_check_targets`` (validation),
    ``_init_targets`` (what the first fit learns from y: ``n_outputs_``,
    ``out_activation_``), ``_encode_targets`` (y as the loss wants it),
    ``_loss`` (a function of ``skconv._losses``), ``_score_outputs`` (the
    validation score) and ``_stratify``.
    """

    _parameter_constraints = {
        "conv_layers": [list, tuple],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "padding": [StrOptions({"same", "valid"}), Interval(Integral, 0, None, closed="left"),
                    tuple, list],
        "pool": [StrOptions({"max", "avg"}), None],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "global_pool": [StrOptions({"avg", "max"}), None],
        "batch_norm": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "input_shape": [tuple, list, None],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(LR_SCHEDULES))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [None],
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
        "augment": [dict, None],
        "lr_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "lr_step_size": [Interval(Integral, 1, None, closed="left")],
        "lr_gamma": [Interval(Real, 0, 1, closed="neither")],
        "embedding_layer": [Interval(Integral, None, None, closed="neither")],
        "input_scale": [Interval(Real, 0, None, closed="neither"), None],
        "shuffle_buffer": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        conv_layers=(32, 64),
        hidden_layer_sizes=(128,),
        *,
        activation="relu",
        kernel_size=3,
        padding="same",
        pool="max",
        pool_size=2,
        global_pool=None,
        batch_norm=False,
        dropout=0.0,
        input_shape=None,
        solver="adam",
        alpha=1e-4,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        max_iter=50,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=None,
        dtype="float32",
        augment=None,
        lr_warmup_epochs=0,
        lr_step_size=10,
        lr_gamma=0.1,
        embedding_layer=-1,
        input_scale=None,
        shuffle_buffer=10_000,
    ):
        self.conv_layers = conv_layers
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.kernel_size = kernel_size
        self.padding = padding
        self.pool = pool
        self.pool_size = pool_size
        self.global_pool = global_pool
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.input_shape = input_shape
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.augment = augment
        self.lr_warmup_epochs = lr_warmup_epochs
        self.lr_step_size = lr_step_size
        self.lr_gamma = lr_gamma
        self.embedding_layer = embedding_layer
        self.input_scale = input_scale
        self.shuffle_buffer = shuffle_buffer

    def _validate_params(self):
        """Refuse ``MLPClassifier``-only settings with what to use instead, then
        check every parameter against ``_parameter_constraints``."""
        name = type(self).__name__
        if isinstance(self.solver, str) and self.solver == "lbfgs":
            raise InvalidParameterError(
                f"The 'solver' parameter of {name} must be 'adam' or 'sgd'; got 'lbfgs'. "
                "L-BFGS (MLPClassifier's full-batch solver) is not available: use "
                "solver='adam' (the default), or solver='sgd'."
            )
        if self.max_fun is not None:
            raise InvalidParameterError(
                f"The 'max_fun' parameter of {name} must be None; got "
                f"max_fun={self.max_fun!r}. It bounds L-BFGS's loss evaluations in "
                "MLPClassifier, and skconv has no L-BFGS: bound training with max_iter "
                "(epochs) instead."
            )
        super()._validate_params()

    # ------------------------------------------------------------------ architecture

    def _conv_blocks(self, signal=False):
        """Resolve ``conv_layers`` into one dict of block settings per block.

        A plain block has ``kind='conv'`` and its conv settings; a residual
        block ``kind='residual'`` and ``body``, the settings of each of its
        convolutions. Every value is checked here, with the block named. For
        series (``signal``), the ints along time become the pairs of an image
        of one row.
        """
        blocks = []
        for i, entry in enumerate(self.conv_layers, start=1):
            block = {"pool": self.pool, "pool_size": self.pool_size,
                     "batch_norm": self.batch_norm}
            if isinstance(entry, dict) and "residual" in entry:
                name = f"residual block {i}"
                _check_keys(entry, _RESIDUAL_KEYS, name, "residual", "the key 'residual'")
                body = entry["residual"]
                if not isinstance(body, (list, tuple)) or not body:
                    raise ValueError(
                        f"residual={body!r} in {name} must be a non-empty list of conv "
                        "specs (an int, (filters, kernel_size) or a dict each)"
                    )
                # a residual block pools only when asked
                if "pool_size" in entry and entry.get("pool") is None:
                    raise ValueError(
                        f"pool_size={entry['pool_size']!r} in {name} sizes no pooling: a "
                        "residual block pools only when its 'pool' says so ('max' or 'avg')"
                    )
                block.update(pool=None, kind="residual", name=name)
                block.update({k: v for k, v in entry.items() if k != "residual"})
                block["body"] = [self._conv_spec(spec, f"conv {j} of {name}", _BODY_KEYS,
                                                 signal)
                                 for j, spec in enumerate(body, start=1)]
            else:
                name = f"conv block {i}"
                block.update(self._conv_spec(entry, name, _BLOCK_KEYS, signal), kind="conv")
            _as_pair(block["pool_size"], "pool_size", name, 1, signal)
            if signal:
                _along_time(block, ("pool_size",))
            if block["pool"] not in ("max", "avg", None):
                raise ValueError(
                    f"pool={block['pool']!r} in {name} must be 'max', 'avg' or None"
                )
            if not isinstance(block["batch_norm"], (bool, np.bool_)):
                raise ValueError(
                    f"batch_norm={block['batch_norm']!r} in {name} must be True or False"
                )
            blocks.append(block)
        return blocks

    def _conv_spec(self, entry, name, keys, signal=False):
        """One convolution's settings from a ``conv_layers`` entry (or a residual
        body's): an int, ``(filters, kernel_size)`` or a dict."""
        spec = {"kernel_size": self.kernel_size, "stride": 1, "padding": self.padding,
                "dilation": 1, "groups": 1, "separable": False, "name": name}
        if isinstance(entry, dict):
            _check_keys(entry, keys, name, "filters", "the key 'filters'")
            spec.update(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            spec["filters"], spec["kernel_size"] = entry
        else:
            spec["filters"] = entry
        filters = spec["filters"]
        if not isinstance(filters, Integral) or isinstance(filters, bool) or filters < 1:
            raise ValueError(
                f"filters={filters!r} in {name} must be a positive int "
                f"(conv_layers entries are an int, (filters, kernel_size) or a dict)"
            )
        _as_pair(spec["kernel_size"], "kernel_size", name, 1, signal)
        _as_pair(spec["stride"], "stride", name, 1, signal)
        _as_pair(spec["dilation"], "dilation", name, 1, signal)
        if spec["padding"] not in ("same", "valid"):
            if isinstance(spec["padding"], str):
                raise ValueError(
                    f"padding={spec['padding']!r} in {name} must be 'same', 'valid', "
                    "an int >= 0 or a pair of them"
                )
            _as_pair(spec["padding"], "padding", name, 0, signal)
        groups = spec["groups"]
        if not isinstance(groups, Integral) or isinstance(groups, bool) or groups < 1:
            raise ValueError(f"groups={groups!r} in {name} must be a positive int")
        if not isinstance(spec["separable"], (bool, np.bool_)):
            raise ValueError(f"separable={spec['separable']!r} in {name} must be True or False")
        if spec["separable"] and groups != 1:
            raise ValueError(
                f"separable=True and groups={groups} in {name} cannot be combined: a "
                "separable convolution's depthwise part has one group per channel"
            )
        if signal:
            _along_time(spec, ("kernel_size", "stride", "dilation", "padding"))
        return spec

    def _build_network(self, n_outputs):
        """The network for ``input_shape_``, ending in a dense layer of ``n_outputs``
        units without activation (the loss applies the output activation).

        Nodes are named after the block they belong to (``block2.conv1``,
        ``block2.shortcut``, ``dense1``, ``output``), and so are their
        parameters (``block2.conv1.w``).
        """
        init = "he" if self.activation == "relu" else "glorot"
        activation = self.activation
        nodes = []

        def add(name, layer, *inputs):
            nodes.append(Node(name, layer, inputs or None))
            return name

        def conv(prefix, j, spec, batch_norm, channels, *source):
            """The nodes of one convolution (a separable one: depthwise, then
            pointwise), each followed by batch norm; ``j`` numbers the
            convolutions of a residual body ('' in a plain block). Returns the
            last node's name."""
            if spec["separable"]:
                # MobileNet's (Howard et al. 2017): the depthwise convolution
                # gets its batch norm and activation too
                add(f"{prefix}.depthwise{j}", Conv2D(
                    channels, spec["kernel_size"], spec["stride"], spec["padding"],
                    spec["dilation"], init=init, name=f"the depthwise part of {spec['name']}",
                    bias=not batch_norm, groups=channels, series=series), *source)
                if batch_norm:
                    add(f"{prefix}.depthwise_bn{j}", BatchNorm2d())
                add(f"{prefix}.depthwise_act{j}", Activation(activation))
                last = add(f"{prefix}.pointwise{j}", Conv2D(
                    spec["filters"], 1, 1, "valid", init=init,
                    name=f"the pointwise part of {spec['name']}", bias=not batch_norm))
            else:
                last = add(f"{prefix}.conv{j}", Conv2D(
                    spec["filters"], spec["kernel_size"], spec["stride"], spec["padding"],
                    spec["dilation"], init=init, name=spec["name"], bias=not batch_norm,
                    groups=spec["groups"], series=series), *source)
            return add(f"{prefix}.bn{j}", BatchNorm2d()) if batch_norm else last

        h, w, c = self._hwc
        channels = c
        signal = self._signal()
        series = w if signal else 0
        blocks = self._conv_blocks(signal)
        for i, block in enumerate(blocks, start=1):
            prefix, bn = f"block{i}", block["batch_norm"]
            if block["kind"] == "residual":
                source = nodes[-1].name if nodes else INPUT
                body, x, stride = block["body"], source, (1, 1)
                for j, spec in enumerate(body, start=1):
                    if j > 1:
                        add(f"{prefix}.act{j - 1}", Activation(activation))
                    x = conv(prefix, j, spec, bn, channels if j == 1 else body[j - 2]["filters"],
                             *((source,) if j == 1 else ()))
                    s = _engine.as_pair(spec["stride"], "stride", 1)
                    stride = (stride[0] * s[0], stride[1] * s[1])
                shortcut = source
                if channels != body[-1]["filters"] or stride != (1, 1):
                    # He et al. 2016's projection shortcut (option B)
                    shortcut = add(f"{prefix}.shortcut", Conv2D(
                        body[-1]["filters"], 1, stride, "valid", init=init,
                        name=f"the shortcut of {block['name']}", bias=not bn), source)
                    if bn:
                        shortcut = add(f"{prefix}.shortcut_bn", BatchNorm2d())
                add(f"{prefix}.add", Add(name=block["name"], series=signal), x,
                    shortcut)
                channels = body[-1]["filters"]
            else:
                conv(prefix, "", block, bn, channels)
                channels = block["filters"]
            if block["pool"] == "max":
                # max pooling commutes with a non-decreasing activation, outputs and
                # gradients alike: pooling first runs the activation on 4x fewer values
                add(f"{prefix}.pool", MaxPool2D(block["pool_size"]))
                add(f"{prefix}.act", Activation(activation))
            elif block["pool"] == "avg":
                add(f"{prefix}.act", Activation(activation))
                add(f"{prefix}.pool", AvgPool2D(block["pool_size"]))
            else:
                add(f"{prefix}.act", Activation(activation))
        if self.global_pool is None:
            add("flatten", Flatten())
        else:
            add("global_pool", GlobalPool2D(self.global_pool))
        hidden = list(np.atleast_1d(self.hidden_layer_sizes))
        if not all(isinstance(u, Integral) and u >= 1 for u in hidden):
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} must hold positive ints"
            )
        for k, units in enumerate(hidden, start=1):
            add(f"dense{k}", Dense(units, init=init, bias=not self.batch_norm))
            if self.batch_norm:
                add(f"dense{k}.bn", BatchNorm1d())
            add(f"dense{k}.act", Activation(activation))
            if self.dropout:
                add(f"dense{k}.dropout", Dropout(self.dropout))
        add("output", Dense(n_outputs, init="glorot"))
        try:
            return Network(nodes, (c, h, w), self._dtype())
        except ValueError as error:
            # the layers know the size they read; X's own is said in X's terms (2D
            # rows of n values that are not a square are images of one row)
            if signal:
                raise ValueError(f"{error} (X holds series of length {w}, n_features="
                                 f"{w * c} in {c} channel{'s' if c > 1 else ''})") from None
            raise ValueError(f"{error} (X holds images of shape {(h, w, c)}, n_features="
                             f"{h * w * c})") from None

    def _dtype(self):
        return np.dtype(self.dtype)

    def _model_dtype(self):
        """The fitted network's dtype, which its images and outputs take: a
        ``set_params(dtype=...)`` since applies from the next fit."""
        return self._network.dtype

    def _signal(self, fitted=True):
        """Whether the model reads series: ``input_shape`` (``input_shape_`` once
        fitted) is ``(length, channels)``."""
        shape = self.input_shape_ if fitted else self.input_shape
        return shape is not None and len(shape) == 2

    @property
    def _hwc(self):
        """The fitted sample shape as the network's image ``(h, w, c)``: a series
        of ``(length, channels)`` is an image of one row, ``(1, length, channels)``."""
        shape = tuple(self.input_shape_)
        return (1,) + shape if len(shape) == 2 else shape

    def _sample_shape(self, shape, signal):
        """X's ``shape`` -> the ``(h, w, c)`` of its samples, None for 2D X; for a
        model of series (``signal``), 3D X ``(n, length, channels)`` is
        ``(1, length, channels)`` and 4D X is refused."""
        if len(shape) <= 2:
            return None
        if len(shape) > 4:
            raise ValueError(
                f"X must be 2D (n_samples, n_features), 3D (n, height, width) or 4D "
                f"(n, height, width, channels); got X.ndim={len(shape)}"
            )
        if signal:
            if len(shape) != 3:
                raise ValueError(
                    f"X of shape {tuple(shape)} is not series: with input_shape=(length, "
                    "channels), X must be 2D (n, length * channels) or 3D (n, length, "
                    "channels)"
                )
            return (1,) + tuple(int(v) for v in shape[1:])
        return tuple(int(v) for v in shape[1:]) + (1,) * (4 - len(shape))

    def _describe_samples(self, shape=None):
        """``'images of shape (h, w, c)'`` or ``'series of length L with C
        channel(s)'``: the fitted samples (or those of ``shape``, (h, w, c)) in
        the user's terms."""
        h, w, c = self._hwc if shape is None else shape
        if self._signal():
            return f"series of length {w} with {c} channel{'s' if c > 1 else ''}"
        return f"images of shape {(h, w, c)}"

    # ------------------------------------------------------------------ input handling

    def _validate_input(self, X, y="no_validation", reset=True):
        """Validate X (2D, 3D, 4D or sparse 2D) and y; return X as 2D rows and the image shape.

        The image shape is ``(h, w, c)`` for 3D/4D X, None for 2D X. An array
        of a stored dtype (uint8, uint16, float16, float32, float64; numpy,
        memory-mapped, h5py, Zarr, Dask) stays as stored: it comes back as
        ``_data.Rows``, checked in blocks by a fit, block by block as they are
        read by a prediction (:meth:`_validate_stored`). Other X is converted
        whole: in fit to the model dtype, in predict to float. Sparse X stays
        sparse (CSR): rows are densified a batch at a time by
        :meth:`_to_nchw`. After a fit, X of another shape is refused in image
        terms (:meth:`_check_image_shape`); in a first fit, X that looks
        channels-first or unscaled is warned about (:meth:`_warn_about_input`).
        """
        signal = self._signal(fitted=not reset)
        # a Dask array of unknown length would be computed whole by validation
        _data.check_known_chunks(X)
        refuse_mapping(X)
        X = column_of_samples(X, signal)
        if signal:
            series_shape = self.input_shape_ if not reset else self.input_shape
            refuse_long_series(X, series_shape)
            refuse_channel_major_columns(X, series_shape)
        # a list of samples, or an object array of them, is one array once its
        # samples are of one length
        if ((isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1)
                or not (hasattr(X, "ndim") or hasattr(X, "iloc") or hasattr(X, "columns")
                        or sp.issparse(X))):
            if isinstance(X, (np.ndarray, list, tuple)):
                # a list, whose cells numpy converts (PIL images, and object
                # arrays once lists), where an object array keeps them as objects
                X = [unnested(row) for row in X]
            samples = check_equal_lengths(X, signal)
            try:
                X = np.asarray(list(X)) if samples else np.asarray(X)
            except ValueError:
                check_equal_shapes(X, signal)
                raise
        if _data.is_stored(X):
            # its NaN are found by the read that checks it, and named in series
            # terms then (series_terms): no pass of its own
            return self._validate_stored(X, y, reset)
        if signal and isinstance(X, np.ndarray) and X.dtype.kind == "f":
            check_finite_series(X, self._hwc if not reset else (1,) + tuple(self.input_shape))
        dtype = self._dtype() if reset else [np.float64, np.float32]
        image_shape = None
        # a DataFrame (pandas, polars, ...) goes to validate_data as it is, which
        # records its column names and checks them at predict
        shape = getattr(X, "shape", None)
        if shape is not None:
            # a Dask DataFrame's row count is lazy (a Dask scalar): the shape
            # checks compare X's shape, and a comparison with it has no truth value
            shape = tuple(s if isinstance(s, Integral) else None for s in shape)
        if sp.issparse(X) and X.ndim > 2:  # an n-D COO array: scipy would speak of CSR
            n, *sample = X.shape
            raise ValueError(
                f"X is a sparse array of shape {X.shape}: sparse X must be 2D, rows of "
                f"flattened images: pass X.reshape(({n}, {math.prod(sample)})) with "
                "input_shape=(height, width, channels), the shape of one image."
            )
        series_shape = None
        if signal:
            series_shape = self._hwc if not reset else (1,) + tuple(self.input_shape)
        with series_terms(X, series_shape):
            if getattr(X, "ndim", 2) > 2 and not sp.issparse(X):
                X = check_array(X, allow_nd=True, dtype=dtype, estimator=self)
                shape = X.shape
                image_shape = self._sample_shape(X.shape, signal)
                if 0 in image_shape:  # else told of its rows, flattened, as 0 features
                    h, w, c = image_shape
                    what = (f"series of length {w} with {c} channel(s)" if signal
                            else f"images of shape {image_shape}")
                    raise ValueError(f"X of shape {shape} holds {what}, which hold no values: "
                                     "a network takes samples of at least one value.")
                X = X.reshape(X.shape[0], -1)
            if not reset:
                self._check_image_shape(image_shape, shape)
            no_y = isinstance(y, str) and y == "no_validation"
            if no_y:
                X = validate_data(self, X, reset=reset, dtype=dtype, accept_sparse="csr")
            else:
                X, y = validate_data(self, X, y, reset=reset, dtype=dtype,
                                     accept_sparse="csr", multi_output=True,
                                     y_numeric=self._y_numeric)
        if not no_y:
            y = self._check_targets(_dense_targets(y))
        if reset:
            self._warn_about_input(X, shape)
        return (X, image_shape) if no_y else (X, y, image_shape)

    def _validate_stored(self, X, y, reset):
        """:meth:`_validate_input` for X kept as stored (``_data.is_stored``).

        The shape is checked at once; the values in blocks of a few MiB: a fit
        reads X through before training and names the rows holding NaN or
        infinity; a prediction checks each block as it reads it. scikit-learn
        sees the first row only, which sets or checks ``n_features_in_`` (and
        drops ``feature_names_in_``, as for any array).
        """
        rows = _data.Rows(X)
        image_shape = self._sample_shape(X.shape, self._signal(fitted=not reset))
        if not reset:
            self._check_image_shape(image_shape, X.shape)
        # y=None raises scikit-learn's "requires y to be passed" here; the
        # values are checked in blocks below, which name the rows holding NaN
        validate_data(self, rows.read(0, 1), None if y is None else "no_validation",
                      reset=reset, dtype=None, ensure_all_finite=False)
        no_y = isinstance(y, str) and y == "no_validation"
        if no_y:
            return rows, image_shape
        y = self._check_targets(_dense_targets(_check_y(
            y, multi_output=True, y_numeric=self._y_numeric, estimator=self)))
        check_consistent_length(rows, y)
        signal = self._signal(fitted=not reset)
        shape = ((1,) + tuple(self.input_shape) if reset else self._hwc) if signal else None
        with series_terms(X, shape):
            stats = _data.scan(rows, stats=reset, dtype=self._dtype())
        if reset:
            self._warn_about_input(rows, X.shape, stats)
        return rows, y, image_shape

    def _resolve_input_shape(self, n_features, image_shape):
        """``input_shape_`` of a first fit: ``(h, w, c)`` for images, ``(length,
        channels)`` for series (an ``input_shape`` of two values)."""
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if len(shape) == 2 and shape[0] is None:
                shape = (self._series_length(n_features, image_shape, shape[1]), shape[1])
            if len(shape) not in (2, 3) or not all(
                isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in shape
            ):
                raise ValueError(
                    f"input_shape={self.input_shape!r} must be (length, channels) for series "
                    "(length None: that of X's series) or (height, width, channels) for "
                    "images, of positive ints"
                )
            shape = tuple(int(v) for v in shape)
            what = "series" if len(shape) == 2 else "images"
            hwc = (1,) + shape if len(shape) == 2 else shape
            # images (or series) of X of another shape are named by it, not by
            # their count of values: (28, 28, 3) against (28, 28, 1)
            if image_shape is not None and image_shape != hwc:
                seen = image_shape[1:] if len(shape) == 2 else image_shape
                hint = ""
                if len(shape) == 2 and seen == shape[::-1]:
                    hint = (" X looks channels-first (n, channels, length), as aeon and "
                            "sktime hold series: pass X.transpose(0, 2, 1).")
                    if seen[0] > seen[1]:
                        # X's time axis is the longer: more likely the pair is swapped
                        # than X, which transposed would be series of a few steps
                        hint = (f" For series of length {seen[0]} with {seen[1]} channels, "
                                f"as X holds them (n, length, channels), pass input_shape="
                                f"{seen}; if X is channels-first (n, channels, length), as "
                                "aeon and sktime hold series, pass X.transpose(0, 2, 1).")
                raise ValueError(
                    f"input_shape={self.input_shape!r} does not match the {what} of X, of "
                    f"shape {seen}.{hint}"
                )
            if math.prod(shape) != n_features:
                raise ValueError(
                    f"input_shape={self.input_shape!r} has {math.prod(shape)} values per "
                    f"sample but X has n_features={n_features}"
                )
            if len(shape) == 2 and shape[0] == shape[1] and shape[0] > 4:
                _warn(
                    f"input_shape={self.input_shape!r} reads X as series of length "
                    f"{shape[0]} with {shape[1]} channels (input_shape=(length, channels)); "
                    f"for {shape[0]}x{shape[1]} images pass input_shape="
                    f"{(shape[0], shape[1], 1)}."
                )
            return shape
        if image_shape is not None:
            return tuple(int(v) for v in image_shape)
        side = math.isqrt(n_features)
        return (side, side, 1) if side * side == n_features else (1, n_features, 1)

    def _series_length(self, n_features, image_shape, channels):
        """The length of X's series for ``input_shape=(None, channels)``."""
        if not isinstance(channels, Integral) or isinstance(channels, bool) or channels < 1:
            return None  # refused by the caller, naming input_shape
        if image_shape is not None:
            if image_shape[2] != channels:
                hint = ("; it looks channels-first, (n, channels, length) as aeon and "
                        "sktime hold series: pass X.transpose(0, 2, 1)"
                        if image_shape[1] == channels else "")
                raise ValueError(
                    f"input_shape={self.input_shape!r} does not match the series of X, of "
                    f"{image_shape[2]} channel(s){hint}"
                )
            return image_shape[1]
        if n_features % channels:
            raise ValueError(
                f"input_shape={self.input_shape!r}: X's rows of n_features={n_features} "
                f"values are not series of {channels} channels"
            )
        return n_features // channels

    def _check_image_shape(self, image_shape, shape=None):
        """Refuse X whose samples are not those of the fit, saying so in image
        (or series) shapes.

        ``image_shape`` is ``(h, w, c)`` for 3D/4D X (:meth:`_sample_shape`),
        None for 2D X; ``shape`` is X's own shape, for the hints: one sample
        without its batch axis, or channels-first samples. 2D rows of another
        length keep scikit-learn's "X has k features, but ... is expecting m
        features as input".
        """
        fitted = self._hwc
        user = tuple(self.input_shape_)  # as X holds one sample
        n_fitted = math.prod(fitted)
        signal = self._signal()
        one = "series" if signal else "image"
        shape = None if shape is None else tuple(shape)
        hint = ""
        if shape in (user, fitted, user[:2] if user[-1] == 1 else None, (n_fitted,)):
            hint = (f" X of shape {shape} looks like one {one}: pass X[np.newaxis] to "
                    f"predict one {one}.")
        elif signal and shape is not None and len(shape) == 3 and shape[1:] == user[::-1]:
            hint = (f" X of shape {shape} looks channels-first (n, channels, length), as aeon "
                    "and sktime hold series: pass X.transpose(0, 2, 1).")
        elif shape is not None and len(shape) == 4 and shape[2:] + shape[1:2] == fitted:
            hint = (f" X of shape {shape} looks channels-first (n, channels, height, "
                    "width): pass X.transpose(0, 2, 3, 1).")
        # the length of X's series where only it differs from the fit's
        length = None
        if signal and shape is not None and len(shape) == 3 and shape[2] == user[1]:
            length = shape[1]
        elif signal and shape is not None and len(shape) == 2 and shape[1] % user[1] == 0:
            length = shape[1] // user[1]
        pad = not hint and length not in (None, user[0])
        if pad and length < user[0]:
            hint = f" Pad (zeros at the end) or resample the series to length {user[0]}."
        elif pad:  # a longer series cannot be padded to the fitted length
            hint = (f" Resample or crop the series to length {user[0]}, or fit on series "
                    "padded to the longest length.")
        # the fitted samples as the messages name them
        fitted_as = (f"{self._describe_samples()} (input_shape_={user})" if signal
                     else f"{fitted} (input_shape_)")
        if image_shape is not None and tuple(image_shape) != fitted:
            raise ValueError(
                f"X holds {self._describe_samples(tuple(image_shape))}; the model was "
                f"fitted on {fitted_as}.{hint}"
            )
        if shape is None or image_shape is not None:
            return
        if len(shape) == 1 and hint:
            raise ValueError(
                f"X is 1D, with the {n_fitted} values of one {one} of shape {user} (the "
                "model's input_shape_); X must be 2D (n_samples, n_features). Reshape "
                f"your data: pass X[np.newaxis] to predict one {one}."
            )
        if len(shape) == 2 and shape[1] != n_fitted:
            raise ValueError(
                f"X has {shape[1]} features, but {type(self).__name__} is expecting "
                f"{n_fitted} features as input: X holds rows of {shape[1]} values"
                + (f" (series of length {length} if of {user[1]} channel"
                   f"{'s' if user[1] > 1 else ''})" if pad else "")
                + f", and the model was fitted on {'' if signal else 'images of shape '}"
                f"{fitted_as}, "
                f"flattened to rows of {n_fitted} values.{hint}"
            )

    def _warn_about_input(self, X, shape, stats=None):
        """First fit: warn about X that trains badly or wrongly without an error.

        Channels-first 4D X ``(n, 1|3|4, h, w)``, as PyTorch holds images, is
        read as ``c x h`` images with ``w`` channels; values far outside
        [-1, 1] (raw pixel intensities) make the first losses huge and the
        model worse. Both are valid input, so a warning saying the fix; the
        range check is one pass over X (the sum of squares), two more (min,
        max) only when it warns. X kept as stored brings its ``stats`` (root
        mean square, min, max) from the fit's scan. The range is that of X
        divided by ``input_scale``.
        """
        if (self.input_shape is None and shape is not None and len(shape) == 4
                and shape[1] in (1, 3, 4) and min(shape[2:]) > 4):
            n, c, h, w = shape
            _warn(
                f"X of shape {shape} looks channels-first (n, channels, height, width), as "
                f"PyTorch holds images; skconv reads 4D X as (n, height, width, channels), "
                f"so these are {c}x{h} images with {w} channels. Pass "
                f"X.transpose(0, 2, 3, 1) if the second axis holds the channels, or "
                f"input_shape={(c, h, w)} to keep this reading."
            )
        if (self.input_shape is None and shape is not None and len(shape) == 3
                and shape[2] <= 64 and 2 * shape[2] < shape[1]):
            n, length, c = shape
            _warn(
                f"X of shape {shape} may hold series (n, length, channels); skconv reads 3D X "
                f"without input_shape as images (n, height, width), so these are "
                f"{length}x{c} images. For series pass input_shape={(length, c)}; for "
                f"images, input_shape={(length, c, 1)} keeps this reading."
            )
        if (self.input_shape is None and shape is not None and len(shape) == 3
                and shape[1] <= 64 and 2 * shape[1] < shape[2]):
            n, c, length = shape
            _warn(
                f"X of shape {shape} looks like series held channels-first (n, channels, "
                f"length), as aeon and sktime hold them; skconv reads 3D X without "
                f"input_shape as images (n, height, width), so these are {c}x{length} "
                f"images. For series pass X.transpose(0, 2, 1) with input_shape="
                f"{(length, c)}; for images, input_shape={(c, length, 1)} keeps this reading."
            )
        scale_by = 1.0 if self.input_scale is None else float(self.input_scale)
        if stats is not None:
            rms, lo, hi = (v / scale_by for v in stats)
        else:
            values = (X.data if sp.issparse(X) else X).ravel(order="K")  # a view, C or F order
            if values.size == 0:
                return
            # the root mean square, not the largest value: a standardized column that is
            # nearly constant holds values of 40 (digits), but the whole of X stays near 1.
            # einsum, not np.dot: nothing in fit calls BLAS (23 ms for MNIST's 60000 rows)
            rms = math.sqrt(float(np.einsum("i,i->", values, values))
                            / (X.shape[0] * X.shape[1])) / scale_by
        if rms > _RAW_INPUT_RMS:
            if stats is None:
                lo, hi = float(values.min()) / scale_by, float(values.max()) / scale_by
                if values.size < X.shape[0] * X.shape[1]:  # sparse: the implicit zeros
                    lo, hi = min(lo, 0.0), max(hi, 0.0)
            scale = max(-lo, hi)
            # integer X as stored: its type's full range is what a scale should undo
            dtype = getattr(X, "dtype", None)
            full = np.iinfo(dtype).max if dtype is not None and dtype.kind == "u" else scale
            example = "X / 255" if scale == 255 else f"X / {scale:g} (X / 255 for 8-bit images)"
            raw, fix = "pixel intensities", f"Scale X to about [0, 1], e.g. {example}, or"
            if self._signal(fitted=False):
                # series are z-normalised one by one (the UCR/UEA baselines'
                # preprocessing), not scaled as pixels are
                raw = "a sensor's counts"
                fix = (f"Z-normalise each series (its mean 0 and standard deviation 1 over "
                       f"its steps), scale X to about [-1, 1], e.g. X / {scale:g}, or")
            _warn(
                f"X ranges from {lo:g} to {hi:g} (root mean square {rms:.3g}): networks "
                f"train badly on raw values such as {raw} (huge first losses, a worse "
                f"model). {fix} put a MinMaxScaler or StandardScaler before the network "
                f"in a Pipeline; input_scale={full:g} divides each batch as it is read, "
                "without a scaled copy of X."
            )

    def _to_nchw(self, X):
        """Rows in (h, w, c) order, dense or sparse -> contiguous (n, c, h, w) in the
        model dtype. Where validated rows become the network's images (a
        prediction's plain rows become the same in :meth:`_row_images`)."""
        if sp.issparse(X):
            X = X.toarray()
        h, w, c = self._hwc
        x = X.reshape(X.shape[0], h, w, c).transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x, dtype=self._model_dtype())
        if self.input_scale is not None:  # a new array: x may be a view of X
            x = x / x.dtype.type(self.input_scale)
        return x

    def _batch_source(self, X, batch_size, train_rows=None):
        """The training batches: a ``_data.Batches``, whose ``order(rng, shuffle)``
        gives an epoch's positions and whose call ``(positions, transforms=None)``
        gives the ``(len(positions), c, h, w)`` images of those training rows,
        each transformed by its entry of ``transforms`` (as drawn by
        ``draw_transforms`` for all the training rows).

        ``train_rows`` are the rows of X that train (None: all, in order).
        X as stored (``_data.Rows``) is read a batch at a time, cast and
        converted into one reused buffer; sparse X is densified a batch at a
        time, so a large sparse X is never dense in memory as a whole.
        """
        h, w, c = self._hwc
        if not sp.issparse(X):
            return _data.training_batches(_data.as_rows(X), train_rows, batch_size, (c, h, w),
                                          self._dtype(), self.input_scale, self.shuffle_buffer)
        if train_rows is not None:
            X = X[train_rows]

        def take_sparse(rows, transforms=None):
            x = self._to_nchw(X[rows])
            if transforms is None:
                return x
            # the batch's own transforms, image b getting that of row rows[b]
            return augment_batch(x, np.arange(len(rows)), transforms.take(rows),
                                 np.empty_like(x))
        return _data.Batches(X.shape[0], take_sparse)

    # ------------------------------------------------------------------ targets (subclasses)

    _y_numeric = False

    @abstractmethod
    def _check_targets(self, y):
        """Validate y as returned by ``validate_data``; return it."""

    @abstractmethod
    def _init_targets(self, y, classes):
        """First fit: learn from y what the output layer is (sets ``n_outputs_``,
        ``out_activation_`` and the subclass's own fitted attributes)."""

    @abstractmethod
    def _encode_targets(self, y):
        """y as the loss takes it, checked against what ``_init_targets`` learned."""

    @abstractmethod
    def _loss(self):
        """The loss function, ``loss(z, y, sample_weight, sw_sum) -> (loss, dz)``."""

    @abstractmethod
    def _score_outputs(self, outputs, y, sample_weight):
        """Validation score of the network outputs for encoded targets y."""

    def _stratify(self, y):
        """What early stopping's validation split is stratified on (None: not at all)."""
        return None

    def _predictions(self, outputs):
        """The network's outputs through the output activation, where what the
        model predicts can overflow though the outputs do not (an exponential
        output's); by default the outputs themselves (a softmax or logistic of
        finite logits is finite)."""
        return outputs

    def _init_output(self, y, sample_weight, incremental):
        """First fit (``incremental``: the first ``partial_fit``): set the output
        layer from the encoded targets where the loss wants it (by default it
        keeps its random initialisation)."""

    def _weight_samples(self, y, sample_weight):
        """Sample weights for the loss, given the encoded y (class weights hook in here)."""
        return sample_weight

    # ------------------------------------------------------------------ training

    def _check_partial_fit(self):
        """What ``partial_fit`` refuses in both estimators."""
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")

    @with_callbacks
    def _fit(self, X, y, sample_weight, incremental, classes=None):
        continuing = hasattr(self, "_network") and (incremental or self.warm_start)
        if continuing:
            self._check_architecture_kept(incremental)
            # a continued fit refused before an epoch of it finished (y with a new
            # label, too few rows to split) leaves the model as it was, not with the
            # epoch count, optimizer and records of a fit that never ran
            kept = {name: vars(self)[name] for name in _CONTINUED_STATE if name in vars(self)}
            n_epochs = len(self.loss_curve_)
            try:
                return self._fit_network(X, y, sample_weight, incremental, classes, continuing)
            except BaseException:
                if "loss_curve_" in vars(self) and len(self.loss_curve_) == n_epochs:
                    vars(self).update(kept)
                raise
        curve = getattr(self, "loss_curve_", None)
        try:
            return self._fit_network(X, y, sample_weight, incremental, classes, continuing)
        except BaseException:
            # a fit that builds a network and fails before an epoch of it finished
            # leaves no model, not that untrained network (or half of the fitted
            # attributes of the one before)
            now = getattr(self, "loss_curve_", None)
            if now is None or now is curve or not now:
                self._forget_fit()
            raise

    def _forget_fit(self):
        """Leave the estimator unfitted: no network, no fitted attribute."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        for name in ("_network", "_optimizer", "_architecture", "_seed"):
            self.__dict__.pop(name, None)

    def _fit_network(self, X, y, sample_weight, incremental, classes, continuing):
        """The body of :meth:`_fit`: build the network unless ``continuing``, then train it."""
        X, y, image_shape = self._validate_input(X, y, reset=not continuing)
        given_weight = sample_weight
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        top = sample_weight.max(initial=0)
        if not np.isfinite(sample_weight.sum()) or 0 < top < np.finfo(np.float64).tiny:
            # the loss is normalised by the weights' sum (and the L2 penalty
            # divided by it, as MLPClassifier's): inf, or a sum that underflows
            raise ValueError(
                f"sample_weight holds values up to {top:.3g}, whose sum "
                f"({sample_weight.sum():.3g}) float64 cannot normalise the loss by: "
                "rescale them (their sum also sets the weight of the L2 penalty, "
                "alpha / sum)"
            )
        rng = check_random_state(self.random_state)

        info = np.finfo(self._dtype())
        if self.input_scale is not None and not info.tiny <= self.input_scale <= info.max:
            # the division is in the model's dtype: past its range the scale is
            # infinite (every image 0) or 0 (every image infinite)
            raise ValueError(
                f"input_scale={self.input_scale!r} is beyond {info.dtype.name}'s range "
                f"({float(info.tiny):.3g} to {float(info.max):.3g}), in which it divides X: "
                "scale X first, or fit with dtype='float64'."
            )
        if self.solver == "adam" and self._dtype().type(self.epsilon) == 0:
            # Adam divides by sqrt(v) + epsilon in the model's dtype: a weight
            # whose gradients are all 0 (a dead unit) got 0 / 0
            raise ValueError(
                f"epsilon={self.epsilon!r} is 0 in {info.dtype.name}, in which Adam "
                f"divides by it (its smallest value is {float(info.smallest_subnormal):.3g}): "
                "use a larger epsilon (the default is 1e-8), or fit with dtype='float64'."
            )
        if self.learning_rate == "cosine" and self.lr_warmup_epochs >= self.max_iter:
            raise ValueError(
                f"lr_warmup_epochs={self.lr_warmup_epochs} must be < max_iter={self.max_iter} "
                "for learning_rate='cosine': the decay starts after the warm-up"
            )
        if not continuing:
            self.input_shape_ = self._resolve_input_shape(X.shape[1], image_shape)
            self._init_targets(y, classes)
            self._network = self._build_network(self.n_outputs_)
            self._network.init_params(rng)
            self._architecture = ({name: copy.deepcopy(getattr(self, name))
                                   for name in _ARCHITECTURE_PARAMS}, self._resolved_architecture())
            self.n_layers_ = len(self.coefs_) + 1
            self.t_ = 0
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.learning_rate_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            # seeds the shuffling of later partial_fit calls
            self._seed = int(rng.randint(np.iinfo(np.int32).max))
        else:
            self._network.ensure_writeable()
        if incremental and hasattr(self, "_optimizer"):
            self._optimizer.ensure_writeable()
            rng = np.random.RandomState([self._seed, self.n_iter_])
        else:
            self._optimizer = self._make_optimizer()
            if not incremental:
                self.n_iter_ = 0

        labels, y = y, self._encode_targets(y)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            # y was checked finite: the cast to the model's dtype overflowed
            big = ~np.isfinite(y).reshape(len(y), -1).all(axis=1)
            raise ValueError(
                f"y holds values beyond {y.dtype.name}'s range ({int(big.sum())} samples, "
                f"|y| up to {float(np.abs(np.asarray(labels, dtype=np.float64)).max()):.3g}), "
                "in which the model computes: scale y (e.g. TransformedTargetRegressor("
                "regressor=..., transformer=StandardScaler())) or fit with dtype='float64'."
            )
        if self._network.needs_rng:
            # dropout masks: their own stream, seeded from the same random state
            self._network.set_rng(np.random.default_rng(rng.randint(np.iinfo(np.int32).max)))
        sample_weight = self._weight_samples(y, sample_weight)
        h, w, c = self._hwc
        augment = check_augment(self.augment, (c, h, w), series=self._signal(),
                                dtype=self._dtype())
        # augmentation draws from its own stream, so that augment=None fits keep
        # the shuffling (and the bits) they had before augmentation existed
        aug_rng = (None if augment is None
                   else np.random.RandomState(rng.randint(np.iinfo(np.int32).max)))
        if not hasattr(self, "learning_rate_curve_"):  # fitted before the schedules existed
            self.learning_rate_curve_ = [np.nan] * len(self.loss_curve_)
        callbacks = _FitCallbacks(self, 1 if incremental else self.max_iter,
                                  X.data if isinstance(X, _data.Rows) else X, labels,
                                  given_weight)
        self._stopped_diverged = False  # set by _diverged, which says why itself
        network = self._network  # a fit that fails leaves no model: hold on to it here
        try:
            # a diverging epoch's inf and NaN are caught and said (_diverged), not
            # numpy's overflow warnings along the way
            with _engine.training(), np.errstate(over="ignore", invalid="ignore",
                                                 divide="ignore"):
                self._fit_epochs(X, y, sample_weight, rng, incremental, augment, aug_rng,
                                 callbacks, init_output=not continuing)
        except MemoryError as error:
            network.release_buffers()
            rows = min(X.shape[0], 200 if self.batch_size == "auto" else self.batch_size)
            raise MemoryError(
                f"Out of memory training on {self._describe_samples()} in batches of {rows} "
                f"(batch_size={self.batch_size!r}): a batch's activations alone take "
                f"{rows * network.activation_bytes / 2**30:.3g} GiB, before their gradients. "
                "Lower batch_size, or use a smaller network."
            ) from error
        except BaseException:
            network.release_buffers()
            raise
        if not incremental:  # partial_fit keeps its scratch for the next call
            network.release_buffers()
        callbacks.end_fit()
        if not (incremental or self._stopped_diverged):
            self._diagnose_loss_curve(y, sample_weight)
        if not np.isfinite(self._network.params).all():  # pragma: no cover - a guard
            raise ValueError(_NON_FINITE_MESSAGE.format(self.learning_rate_init))
        return self

    def _resolved_architecture(self):
        """What the network is built from, resolved: ``(32, 64)``, ``[32, 64]``
        and ``({"filters": 32}, 64)`` are one architecture."""
        return _comparable((self._conv_blocks(self._signal()), self.global_pool,
                            self.hidden_layer_sizes, self.batch_norm, self.dropout,
                            self.activation, np.dtype(self.dtype).str))

    def _check_architecture_kept(self, incremental):
        """Refuse to continue the fitted network where the parameters now ask
        for another one (set_params since the fit that built it)."""
        if not hasattr(self, "_architecture"):  # pickled before it was kept
            return
        built, resolved = self._architecture
        # input_shape None (X's own) fits any fitted shape; a length None too
        shape = self.input_shape
        shape_kept = shape is None or (
            len(shape) == len(self.input_shape_)
            and all(s is None or s == f for s, f in zip(shape, self.input_shape_)))
        if self._resolved_architecture() != resolved or not shape_kept:
            changed = [name for name in _ARCHITECTURE_PARAMS if name != "input_shape"
                       and (np.dtype(built[name]) != np.dtype(getattr(self, name))
                            if name == "dtype" else
                            _comparable(built[name]) != _comparable(getattr(self, name)))]
            changed += [] if shape_kept else ["input_shape"]
            how = "partial_fit" if incremental else "fit with warm_start=True"
            was = ", ".join(f"{name}={built[name]!r}" for name in changed)
            now = ", ".join(f"{name}={getattr(self, name)!r}" for name in changed)
            raise ValueError(
                f"{how} continues the fitted network, built with {was}; the parameters now "
                f"say {now}. Fit with warm_start=False (or a clone) to build the new network, "
                "or set them back to continue."
            )

    def _make_optimizer(self):
        try:
            return self._new_optimizer()
        except MemoryError as error:
            raise self._network.out_of_memory() from error

    def _new_optimizer(self):
        params = self._network.params
        schedule = dict(n_epochs=self.max_iter, warmup_epochs=self.lr_warmup_epochs,
                        step_size=self.lr_step_size, gamma=self.lr_gamma)
        if self.solver == "adam":
            return AdamOptimizer(params, self.learning_rate_init, self.beta_1, self.beta_2,
                                 self.epsilon, lr_schedule=self.learning_rate, **schedule)
        return SGDOptimizer(params, self.learning_rate_init, self.learning_rate,
                            self.momentum, self.nesterovs_momentum, self.power_t, **schedule)

    def _batch_size_for(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            _warn(
                f"batch_size={self.batch_size} is larger than the number of samples "
                f"{n_samples}; it is clipped to {n_samples}"
            )
        return min(self.batch_size, n_samples)

    def _fit_epochs(self, X, y, sample_weight, rng, incremental, augment, aug_rng, callbacks,
                    init_output=False):
        """The epoch loop: batches, stopping rules, early stopping, divergence, Ctrl-C.

        ``augment`` (from ``check_augment``) transforms the training batches,
        with one transform per training row and epoch drawn from ``aug_rng``.
        ``callbacks`` (a ``_FitCallbacks``) hears of each epoch (and batch).
        ``init_output``: a new network's output layer is set from the training
        rows' targets first (``_init_output``).
        """
        net, opt = self._network, self._optimizer
        early_stopping = self.early_stopping and not incremental
        # a warm start may switch early stopping on or off: the other mode's record
        # is of weights trained on since, so it goes (a best validation score
        # kept from then would outrank every epoch of this fit, which restores
        # the weights it started from)
        if early_stopping:
            if self.validation_scores_ is None:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            if self.best_loss_ is None:
                self.best_loss_ = np.inf
            self.validation_scores_ = self.best_validation_score_ = None
        train_rows = X_val = y_val = sw_val = None
        # with a warm start, the weights now are the best of the previous fit
        best = net.snapshot() if early_stopping and self.validation_scores_ else None
        if early_stopping:
            # train_test_split's sizes, checked first so that the errors name
            # validation_fraction (not its test_size)
            n_val = math.ceil(self.validation_fraction * X.shape[0])
            if n_val < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves "
                    f"{n_val} validation sample(s) of n_samples={X.shape[0]}; increase it "
                    "or add data"
                )
            if n_val >= X.shape[0]:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} holds out all "
                    f"{X.shape[0]} samples for validation, leaving none to train on; "
                    "lower it or add data"
                )
            # the split is of row numbers: X is never copied
            train_rows, val_rows, y, y_val, sample_weight, sw_val = train_test_split(
                np.arange(X.shape[0]), y, sample_weight, random_state=rng,
                test_size=self.validation_fraction, stratify=self._stratify(y),
            )
            if not sw_val.any():
                raise ValueError(
                    f"The {len(val_rows)} validation samples that early stopping drew "
                    f"(validation_fraction={self.validation_fraction}) all have a "
                    "sample_weight of 0, so they cannot score an epoch. Leave the samples "
                    "of weight 0 out of X (they do not train the model), or increase "
                    "validation_fraction."
                )
            if not sample_weight.any():
                raise ValueError(
                    f"The {len(train_rows)} training samples left by early stopping's split "
                    f"(validation_fraction={self.validation_fraction}) all have a "
                    "sample_weight of 0: nothing would train the model. Leave the samples "
                    "of weight 0 out of X, or lower validation_fraction."
                )
            X_val = _data.subset(X, val_rows)
        if init_output:
            # from the training rows only: the validation rows score what they learn
            self._init_output(y, sample_weight, incremental)
        n_samples = len(y)
        batch_size = self._batch_size_for(n_samples)
        batches = self._epoch_batches(n_samples, batch_size)
        take = self._batch_source(X, max(b.stop - b.start for b in batches), train_rows)
        loss_function = self._loss()
        streamed = getattr(X, "streamed", False)
        # weights at the ends of the last two finished epochs: where a diverging
        # epoch falls back to (the later one may already give non-finite outputs)
        finished = [net.snapshot()] if self.loss_curve_ else []
        n_before = len(self.loss_curve_)
        try:
            for _ in range(1 if incremental else self.max_iter):
                tic = time.perf_counter()
                idx = take.order(rng, self.shuffle)
                transforms = draw_transforms(augment, n_samples, net.input_shape, aug_rng)
                per_batch = callbacks.begin_epoch(len(batches), streamed)
                epoch_loss, stop = self._train_epoch(
                    take, y, sample_weight, idx, batches, loss_function, transforms,
                    callbacks if per_batch else None)
                diverged = not (np.isfinite(epoch_loss) and np.isfinite(net.params).all())
                score = None
                if early_stopping and not diverged:
                    score = self._validation_score(X_val, y_val, sw_val)
                    diverged = score is None
                if diverged:
                    self._diverged(finished, best, (_data.subset(X, train_rows), X_val))
                    return
                # what the last epoch's record replaces, should it be forgotten
                before = (self.best_loss_, self._no_improvement_count)
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_ = epoch_loss
                self.loss_curve_.append(self.loss_)
                self.learning_rate_curve_.append(float(opt.scheduled_rate))
                # the oldest goes before the new one is taken: two copies of the
                # parameters at a time, not three
                del finished[:-1]
                finished.append(net.snapshot())
                line = "Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_)
                if early_stopping:
                    self.validation_scores_.append(score)
                    improved = score >= self.best_validation_score_ + self.tol
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best = finished[-1]
                    line += ", validation score = %.6f" % score
                else:
                    improved = self.loss_ <= self.best_loss_ - self.tol
                    self.best_loss_ = min(self.best_loss_, self.loss_)
                self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
                if self.verbose:
                    print(line + ", time = %.2fs" % (time.perf_counter() - tic))
                opt.iteration_ends(self.t_)
                if callbacks.end_epoch() or stop:
                    if self.verbose:
                        print("A callback stopped training.")
                    break
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if opt.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if not incremental and self.n_iter_ == self.max_iter:
                    _warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                    )
            completed = True
        except KeyboardInterrupt:
            completed = False
            _warn("Training interrupted by user; the model keeps the weights reached so far.")
        if best is not None:
            net.restore(best)
        elif completed and len(self.loss_curve_) > n_before:
            # an epoch's loss is that of its batches before their updates: the
            # last epoch's updates (a partial_fit call's one) can take the
            # outputs past the dtype's range, or a Poisson model's past exp's,
            # with no later batch to see it, and predict would give NaN or inf.
            # Checked on the first batch's rows: weights that overflow do so on
            # typical rows, and all of X would cost an inference epoch a fit (a
            # read of the store, for data on disk)
            rows = _data.subset(X, np.arange(batch_size))
            if not self._outputs_finite(rows):
                self._forget_last_epoch(n_samples, before)
                self._diverged(finished[:-1], None, (rows,))

    def _epoch_batches(self, n_samples, batch_size):
        """The slices of an epoch's batches: ``gen_batches``', except that a
        last batch of one row joins the batch before where a batch norm sees one
        value per channel in each row (``Network.one_row_norm``): over one row
        its statistics are that row's values, its output its shift whatever the
        input, and its running variance would move towards 0. Batches that are
        all of one row are refused."""
        batches = list(gen_batches(n_samples, batch_size))
        norm = self._network.one_row_norm
        if norm is None or batches[-1].stop - batches[-1].start > 1:
            return batches
        if batch_size == 1:
            what = "1 sample to train on" if n_samples == 1 else f"batch_size={self.batch_size!r}"
            raise ValueError(
                f"{what} gives batches of one row, and the batch norm {norm!r} normalises "
                "each of its channels over the rows of a batch: over one row its output "
                "is its shift whatever the input. Train on batches of 2 rows or more "
                "(batch_size >= 2, and 2 training rows at least), or set batch_norm=False."
            )
        return batches[:-2] + [slice(batches[-2].start, batches[-1].stop)]

    def _train_epoch(self, take, y, sample_weight, idx, batches, loss_function, transforms,
                     callbacks):
        """One pass over the rows in the order ``idx``, batch by batch (``batches``,
        slices of ``idx`` from :meth:`_epoch_batches`).

        ``transforms`` are the epoch's augmentations (None for none);
        ``callbacks`` the fit's callbacks when its batches report to them, else
        None. Returns the epoch's mean loss over the rows of the batches that
        trained, or NaN at the first batch whose loss is not finite (that
        batch's update is not applied), and whether a batch's callback asked to
        stop.
        """
        net, opt = self._network, self._optimizer
        total = 0.0
        trained = 0
        stop = False
        for batch in batches:
            rows = idx[batch]
            # a batch whose rows all weigh 0 has no loss to normalise by their sum:
            # it trains nothing (not even the L2 step, which Adam would make a full
            # one), as rows of weight 0 do in any other batch
            if sample_weight[rows].any():
                loss = net.loss_and_grad(take(rows, transforms), y[rows], sample_weight[rows],
                                         self.alpha, loss_function)
                if not np.isfinite(loss):
                    return np.nan, stop
                opt.update_params(net.params, net.grads)
                total += loss * len(rows)
                trained += len(rows)
            if callbacks is not None:
                stop = callbacks.batch() or stop
        return (total / trained if trained else 0.0), stop

    def _forget_last_epoch(self, n_samples, before):
        """Take the last finished epoch off the record, as a diverging one never enters
        it: ``before`` is ``(best_loss_, _no_improvement_count)`` as they were before it
        (without early stopping, the only mode that forgets an epoch)."""
        self.best_loss_, self._no_improvement_count = before
        self.n_iter_ -= 1
        self.t_ -= n_samples
        self.loss_curve_.pop()
        self.learning_rate_curve_.pop()
        if self.loss_curve_:
            self.loss_ = self.loss_curve_[-1]

    def _validation_score(self, X, y, sample_weight):
        """Early stopping's score on the validation rows; None if a prediction is not finite."""
        outputs = self._forward_fast(X)
        if not np.isfinite(self._predictions(outputs)).all():
            return None
        return float(self._score_outputs(outputs, y, sample_weight))

    def _outputs_finite(self, X):
        """Whether the predictions of X are all finite (True for no X)."""
        return X is None or bool(np.isfinite(self._predictions(self._forward_fast(X))).all())

    def _diverged(self, finished, best, row_sets):
        """Stop training on a non-finite loss, weight or validation prediction.

        Falls back, in this order, to the weights of the best validation epoch
        (early stopping), of the last finished epoch, or of the one before, the
        first whose predictions on the training and validation rows are all finite.
        ``finished`` and ``best`` are network snapshots. With no such weights
        (divergence before any epoch finished), raise ``ValueError`` as
        ``MLPClassifier`` does, and leave the estimator unfitted.
        """
        epoch = self.n_iter_ + 1
        net = self._network
        candidates = ([("the best validation epoch", best)] if best is not None else [])
        candidates += [(f"the end of epoch {self.n_iter_ - i}" if self.n_iter_ > i
                        else "the end of the previous fit", snap)
                       for i, snap in enumerate(reversed(finished))]
        for where, snapshot in candidates:
            net.restore(snapshot)
            if all(self._outputs_finite(rows) for rows in row_sets):
                break
        else:
            # no finished epoch (or none with finite predictions): nothing worth keeping
            self._forget_fit()
            raise ValueError(
                _NON_FINITE_MESSAGE.format(self.learning_rate_init)
                + f" Training diverged in epoch {epoch}, before any epoch with finite "
                "predictions finished; lower learning_rate_init or scale the inputs."
            )
        # the optimizer's moments may hold inf/NaN too: start them afresh
        self._optimizer = self._make_optimizer()
        _warn(
            f"Training diverged in epoch {epoch}: the loss or the predictions are not finite "
            f"(learning_rate_init={self.learning_rate_init}, solver={self.solver!r}). "
            f"Training stopped and the model keeps the weights from {where}; "
            "lower learning_rate_init or scale the inputs.",
            ConvergenceWarning,
        )
        self._stopped_diverged = True

    def _diagnose_loss_curve(self, y, sample_weight):
        """After a fit: warn, naming ``learning_rate_init``, when the loss curve of
        this fit says the steps were too large.

        Three shapes: the loss never fell below its first epoch's; it started
        over 10 times above a constant prediction's loss (``_constant_loss``)
        and ended no better than it (Adam at 10 on digits: 3.3e8 down to 27,
        accuracy 0.1); it rose to over 10 times its lowest value, ending worse
        than a constant prediction. A fit that ended no better than a constant
        prediction where its first outputs, about 0, left it (``_untrained_loss``:
        a regressor's unscaled targets) is told to scale y instead. Training
        that diverged has its own message (:meth:`_diverged`) and is not
        diagnosed again.
        """
        curve = self.loss_curve_[len(self.loss_curve_) - self.n_iter_:]
        if len(curve) < 2:
            return
        constant = self._constant_loss(y, sample_weight)
        # below 0.1 a loss says a good fit whatever a constant prediction reaches:
        # with one class that is 0, which the L2 penalty alone exceeds
        bar = None if constant is None else max(constant, 0.1)
        first, last, lowest = curve[0], curve[-1], min(curve)
        untrained = self._untrained_loss(y, sample_weight)
        # the fit ended no better than predicting y's mean, and its first outputs,
        # about 0, are where it started (far above the mean's loss) or, for
        # targets of a large root mean square, about where it stayed: the targets
        # lie far from 0 for the steps, which are fine
        if untrained is not None and bar is not None and last >= bar and (
                10 * bar < first <= 10 * untrained
                or (untrained > 0.5 * _RAW_TARGET_RMS ** 2 and max(curve) <= 2 * untrained
                    and last >= untrained / 2)):
            _warn(
                f"The training loss started at {first:.6g}, about what predicting 0 gives "
                f"({untrained:.4g}), and ended at {last:.6g}, no better than a constant "
                f"prediction ({constant:.4g}): the targets lie far from 0 for their spread "
                "or for the network's steps. Scale y (e.g. TransformedTargetRegressor("
                "regressor=..., transformer=StandardScaler())), or train for more epochs.",
                ConvergenceWarning,
            )
            return
        # two epochs' losses can rise by noise alone (augmented batches)
        if len(curve) > 2 and min(curve[1:]) >= first:
            what = (f"never fell below its first epoch's value ({first:.6g}; "
                    f"{min(curve[1:]):.6g} at best later)")
        elif bar is not None and first > 10 * bar and last >= bar:
            what = (f"started at {first:.6g}, over 10 times the loss of a constant "
                    f"prediction ({constant:.4g}), and ended at {last:.6g}, no better "
                    "than a constant prediction")
        elif bar is not None and last > max(10 * lowest, bar):
            what = (f"rose from {lowest:.6g} to {last:.6g}, worse than a constant "
                    f"prediction ({constant:.4g})")
        else:
            return
        default = type(self)().learning_rate_init
        _warn(
            f"The training loss {what}: learning_rate_init={self.learning_rate_init} is "
            f"likely too large for solver={self.solver!r}. Lower it (the default is "
            f"{default}), and scale X if it holds raw values.",
            ConvergenceWarning,
        )

    def _constant_loss(self, y, sample_weight):
        """The loss of the best constant prediction of the encoded y, or None
        when a subclass has none; the yardstick of :meth:`_diagnose_loss_curve`."""
        return None

    def _untrained_loss(self, y, sample_weight):
        """The loss of the outputs an untrained network gives, about 0, where
        they can be far from every target (a regressor's); else None."""
        return None

    # ------------------------------------------------------------------ prediction

    def _forward_fast(self, X, stop=None, width=None):
        """Outputs (before the output activation) of validated X (2D rows, sparse,
        ``_data.Rows`` or ``_data.Subset``): the inference path, no caches for
        backward. With ``stop`` (a cut point), that node's outputs, ``width``
        values a row.

        :meth:`_rows_per_pass` rows per forward pass at most, so memory stays
        bounded, and each row's outputs depend on that row only (no batch
        effects): passes run at once on the available threads
        (``_engine.run_passes``), the bits the same as one after the other.
        """
        try:
            return self._forward_passes(X, stop, width)
        except MemoryError as error:
            rows = min(X.shape[0], self._rows_per_pass())
            threads = min(_engine.effective_n_threads(), -(-X.shape[0] // rows))
            raise MemoryError(
                f"Out of memory predicting {self._describe_samples()}: {threads} pass(es) "
                f"of {rows} rows at once, each holding "
                f"{rows * self._network.activation_bytes / 2**20:.4g} MiB of activations at "
                "most. " + ("Run on fewer threads (threadpoolctl) or use" if threads > 1
                            else "Use") + " a smaller network."
            ) from error

    def _forward_passes(self, X, stop, width):
        """:meth:`_forward_fast`'s body."""
        n = X.shape[0]
        passes = -(-n // self._rows_per_pass())
        plain = type(X) is np.ndarray and X.dtype in _FLOAT_DTYPES

        def outputs(where, images):
            if images is None:  # plain rows: each pass converts (and checks) its own
                images = self._row_images(X[where])
                if images is None:  # NaN or infinity: validation says where, in the user's terms
                    self._validate_input(X, reset=False)
                    _data.check_block(X[where], where.start, dtype=self._model_dtype())
            return self._network.forward_fast(images, stop=stop)

        if passes == 1 and plain:  # a row or two: the fewest steps
            return outputs(slice(0, n), None)
        threads = min(_engine.effective_n_threads(), passes)
        # as many passes for each thread, as even as rows allow
        passes = -(-passes // threads) * threads
        chunk = -(-n // passes)
        if plain:
            items = ((slice(a, min(a + chunk, n)), None) for a in range(0, n, chunk))
        else:
            items = self._images(X, chunk, fresh=threads > 1)
        if passes == 1:
            where, images = next(items)
            if isinstance(where, slice):  # every row, in order
                return outputs(where, images)
            items = iter([(where, images)])
        out = np.empty((n, self.n_outputs_ if width is None else width),
                       dtype=self._model_dtype())

        def forward(where, images):
            out[where] = outputs(where, images)

        _engine.run_passes(forward, items, threads)
        return out

    def _images(self, X, chunk, fresh=False):
        """Yield ``(where, images)``: X's rows as the network's images, ``chunk``
        at a time; ``where`` places them in the answer (a slice, or an array of
        positions). With ``fresh``, each ``images`` is an array of its own."""
        if sp.issparse(X):
            for start in range(0, X.shape[0], chunk):
                rows = X[start:start + chunk].toarray()
                # validated as float64, it may hold values the model's float32 cannot
                _data.check_block(rows, start, dtype=self._model_dtype())
                yield slice(start, start + chunk), self._to_nchw(rows)
            return
        h, w, c = self._hwc
        rows, positions = (X.rows, X.positions) if isinstance(X, _data.Subset) else (X, None)
        yield from _data.images(_data.as_rows(rows), chunk, (c, h, w), self._model_dtype(),
                                self.input_scale, positions, fresh)

    def _check_finite_block(self, block, start):
        """Raise the error that names the rows of ``block``, rows ``start`` on of
        X, holding NaN or infinity (in series terms for a model of series) or
        values beyond the model dtype's range: a Dask block, whose prediction
        numbered its rows from 0."""
        if self._signal() and block.dtype.kind == "f":
            check_finite_series(block, self._hwc, offset=start)
        _data.check_block(np.ascontiguousarray(block).reshape(len(block), -1), start,
                          dtype=self._model_dtype())

    def _rows_per_pass(self):
        """Rows per forward pass in prediction (see ``_PASS_BYTES``)."""
        return self._network.rows_per_pass(_PASS_BYTES)

    def _checked_outputs(self, X):
        """``check_is_fitted``, validate X against the fit, and forward it."""
        # check_is_fitted's tag lookup costs a third of a one-row prediction;
        # a model with a network is fitted (fit sets it after every other
        # fitted attribute), so only a model without one needs the check
        if "_network" not in self.__dict__:
            check_is_fitted(self)
        rows = self._plain_rows(X)
        if rows is None:
            rows, _ = self._validate_input(X, reset=False)
        with series_terms(X, self._hwc if self._signal() else None):
            return self._forward_fast(rows)

    def _plain_rows(self, X):
        """X's rows (2-D) if X is a float ndarray of the fitted shape, else None.

        scikit-learn's validation costs more than the network itself on a row
        or two (~0.2 ms of a one-row ``predict_proba``), and numpy's finite
        check and layout conversion several calls more. This accepts the
        common case, whose rows :meth:`_forward_fast` copies into images and
        checks finite in one pass (:meth:`_row_images`; it validates X only
        to say where a NaN is), and never raises:
        anything else (a DataFrame, a list, sparse, another shape) returns None
        and goes through the full validation, which says what is wrong.
        """
        if (type(X) is not np.ndarray or X.dtype not in _FLOAT_DTYPES
                or not 2 <= X.ndim <= 4 or X.shape[0] == 0
                or "feature_names_in_" in self.__dict__):
            return None
        if X.ndim > 2:
            if len(self.input_shape_) == 2:  # series: 3D X (n, length, channels) only
                sample = (1,) + X.shape[1:] if X.ndim == 3 else None
            else:
                sample = X.shape[1:] + (1,) * (4 - X.ndim)
            if sample != self._hwc:
                return None
        rows = X.reshape(X.shape[0], -1)
        return rows if rows.shape[1] == self.n_features_in_ else None

    def _row_images(self, rows):
        """Float rows as the network's images, what :meth:`_to_nchw` gives, or
        None if one holds NaN or infinity (checked while copying)."""
        h, w, c = self._hwc
        images = np.empty((rows.shape[0], c, h, w), dtype=self._model_dtype())
        if not _boundary.rows_to_images(np.ascontiguousarray(rows), images):
            return None
        if self.input_scale is not None:
            images /= images.dtype.type(self.input_scale)
        return images

    # ------------------------------------------------------------------ embeddings

    def _embedding_stop(self):
        """The node whose output ``transform`` returns, for ``embedding_layer``.

        The embedding layers are the flattened (or globally pooled) conv
        output (0) and each hidden dense layer after its activation (1, 2,
        ...); dropout after it is the identity at inference, so it is left out.
        """
        nodes = self._network.nodes
        first = next(i for i, node in enumerate(nodes) if node.layer.op in ("flatten",
                                                                           "global_pool"))
        stops = [nodes[first].name] + [node.name for node in nodes[first + 1:]
                                       if isinstance(node.layer, Activation)]
        n = len(stops)
        k = self.embedding_layer
        # read at transform time, so a value set after fit is checked here, not by fit
        if not isinstance(k, Integral) or not -n <= k < n:
            hidden = (f"1 .. {n - 1} for the hidden dense layers" if n > 1
                      else "no hidden dense layer")
            raise ValueError(
                f"embedding_layer={k!r} must be an int in [{-n}, {n - 1}]: the network "
                f"has {n} embedding layer(s), 0 for the conv blocks' output and {hidden} "
                f"(hidden_layer_sizes={self.hidden_layer_sizes!r})"
            )
        return stops[int(k)]

    @property
    def _n_features_out(self):
        """Features ``transform`` returns (read by ``get_feature_names_out``)."""
        network = self._network
        return int(np.prod(network.nodes[network.index(self._embedding_stop())]
                           .layer.output_shape))

    @_data.blockwise
    def transform(self, X):
        """Activations of the layer ``embedding_layer`` (the last hidden layer by default).

        The inference path (batch norm's running statistics, no dropout, no
        augmentation), so each row's features depend on that row only. Feed
        them to another estimator, e.g. ``make_pipeline(ConvNetClassifier(),
        LogisticRegression())``, or to PCA or t-SNE for a plot.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
            Also a memory map, h5py dataset or Zarr array, read a block at a
            time, or a Dask array, for which a Dask array is returned.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out)
            In the model dtype. For ``embedding_layer=0``, the last conv
            block's feature maps flattened in (c, h, w) order, or globally
            pooled (one value per channel) with ``global_pool``.
        """
        check_is_fitted(self)
        X, image_shape = self._validate_input(X, reset=False)
        self._check_image_shape(image_shape)
        with series_terms(X.data if isinstance(X, _data.Rows) else X,
                           self._hwc if self._signal() else None):
            return self._forward_fast(X, self._embedding_stop(), self._n_features_out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # images (n, h, w) are X as much as flat rows are (4D too, which no tag names)
        tags.input_tags.three_d_array = True
        # transform returns the model dtype whatever the input's
        dtype = self.dtype if self.dtype in ("float32", "float64", np.float32, np.float64) \
            else "float32"
        tags.transformer_tags.preserves_dtype = [np.dtype(dtype).name]
        return tags

    # ------------------------------------------------------------------ fitted weights

    def _params_named(self, name, attribute):
        if "_network" not in self.__dict__:  # unfitted: the attribute is missing, as MLP's
            raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                 f"{attribute!r} (not fitted yet)")
        return [view for _, n, view in self._network.param_arrays() if n == name]

    @property
    def coefs_(self):
        """Weights of each layer that has them; see the class docstring."""
        return self._params_named("w", "coefs_")

    @property
    def intercepts_(self):
        """Biases of each layer that has them; see the class docstring."""
        return self._params_named("b", "intercepts_")

    # ------------------------------------------------------------------ persistence

    def __getstate__(self):
        from . import __version__

        state = super().__getstate__()
        state["_skconv_version"] = __version__
        return state

    def __setstate__(self, state):
        from . import __version__

        pickled = state.pop("_skconv_version", "pre-0.1")
        if pickled != __version__:
            _warn(InconsistentVersionWarning(
                estimator_name=type(self).__name__, current_version=__version__,
                original_version=pickled,
            ))
        # skconv 0.1 had no global pooling and read X whole: its models flatten
        # (their network, a list of layers, becomes a graph in
        # skconv._network.Sequential), divide by nothing and would shuffle a
        # chunked store with the default buffer
        state.setdefault("global_pool", None)
        state.setdefault("input_scale", None)
        state.setdefault("shuffle_buffer", 10_000)
        super().__setstate__(state)
        if "_optimizer" in state:
            self._optimizer.check_state(self._network.params)

"""ConvNetClassifier: the scikit-learn estimator. Parameters, validation, the
training loop's bookkeeping and prediction; the numerics live in the network."""

import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, compute_class_weight, gen_batches
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from ._layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from ._losses import log_softmax
from ._network import Sequential
from ._normalization import BatchNorm1d, BatchNorm2d, Dropout
from ._optimizers import AdamOptimizer, SGDOptimizer
from .exceptions import InconsistentVersionWarning

# rows per forward pass in predict: bounds memory for any number of rows
_PREDICT_CHUNK = 256

_BLOCK_KEYS = {"filters", "kernel_size", "stride", "padding", "dilation", "pool", "pool_size",
               "batch_norm"}


def _as_pair(value, name, block, minimum):
    """Check an int or pair of ints >= minimum; ``name=value`` appear in the error."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= minimum for v in pair
    ):
        raise ValueError(
            f"{name}={value!r} in {block} must be an int >= {minimum} or a pair of them"
        )
    return value


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional neural network classifier.

    The network is ``len(conv_layers)`` conv blocks (convolution -> [batch
    norm ->] activation -> pooling), a flatten, ``len(hidden_layer_sizes)``
    dense layers each followed by [batch norm,] the activation [and dropout],
    and a dense output layer with a softmax. It is trained on the softmax cross-entropy (fused, log-sum-exp
    stable) plus an L2 penalty, with Adam or SGD, as ``MLPClassifier``.

    As for ``MLPClassifier``, scale the inputs: pixel values in [0, 1] (e.g.
    ``X / 255``) train faster and generalise better than raw intensities.

    Parameters
    ----------
    conv_layers : sequence, default=(32, 64)
        One entry per conv block: an int (number of filters), a tuple
        ``(filters, kernel_size)``, or a dict with the key ``filters`` and any
        of ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``pool``,
        ``pool_size``, ``batch_norm``. Unset values come from the block-wide
        defaults below (``stride=1``, ``dilation=1``). An empty sequence gives a plain MLP.
    hidden_layer_sizes : array-like of int, default=(128,)
        Units of the dense layers between the conv blocks and the output.
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
        variance.
    dropout : float in [0, 1), default=0.0
        Dropout rate after each hidden dense layer's activation (inverted
        dropout: kept values are scaled by ``1 / (1 - dropout)`` in training;
        nothing is dropped at prediction). The masks are drawn from
        ``random_state``.
    input_shape : (height, width) or (height, width, channels), default=None
        Image shape of each sample. None infers it: from X's shape for 3D
        ``(n, h, w)`` and 4D ``(n, h, w, c)`` input; for 2D X with
        ``n_features = s * s`` it is ``(s, s, 1)``, otherwise ``(1, n_features, 1)``.
        2D rows are images flattened row-major in (h, w, c) order.
    solver : {'adam', 'sgd'}, default='adam'
    alpha : float, default=1e-4
        L2 penalty on the weights (not the biases), scaled as in ``MLPClassifier``.
    batch_size : int or 'auto', default='auto'
        ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for ``solver='sgd'``, as in ``MLPClassifier``.
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
        Start ``fit`` from the previous solution.
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop
        when its accuracy stops improving; the best weights are restored.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float
        Adam's parameters.
    n_iter_no_change : int, default=10
    dtype : {'float32', 'float64'}, default='float32'
        Precision of the weights and of all computation.
    class_weight : dict, 'balanced' or None, default=None
        Weights multiplied into ``sample_weight`` per class, as in
        scikit-learn's linear models. Not ``'balanced'`` in ``partial_fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
        Features per sample, ``h * w * c``.
    feature_names_in_ : ndarray of str
        Only when X is a DataFrame with string column names.
    input_shape_ : (h, w, c)
    n_iter_ : int
        Epochs run by the last ``fit`` (``partial_fit`` calls add up).
    t_ : int
        Samples seen by the optimizer.
    loss_, best_loss_ : float
        Last epoch's training loss and the best (``best_loss_`` is None with
        early stopping).
    loss_curve_ : list of float
    validation_scores_ : list of float or None
        Validation accuracy per epoch with early stopping.
    best_validation_score_ : float or None
    n_layers_ : int
        Number of layers with weights plus one (the input), as ``MLPClassifier``.
    n_outputs_ : int
        Units of the output layer (``n_classes``; a softmax even for two classes).
    out_activation_ : str
        ``'softmax'``.
    coefs_ : list of ndarray
        Weights, layer by layer: conv layers ``(filters, in_channels, kh, kw)``
        (NCHW, as ``torch.nn.Conv2d``), then dense layers ``(n_in, n_out)``
        (as ``MLPClassifier``). The first dense layer's inputs are the last
        feature maps flattened in (c, h, w) order. These are views of the
        model's parameters: writing to them changes the model.
    intercepts_ : list of ndarray
        Biases, one ``(n_out,)`` array per entry of ``coefs_`` whose layer has
        a bias: with batch norm, a conv or dense layer followed by it has none.
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
        "batch_norm": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "input_shape": [tuple, list, None],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
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
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "dtype": [StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
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
        dtype="float32",
        class_weight=None,
    ):
        self.conv_layers = conv_layers
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.kernel_size = kernel_size
        self.padding = padding
        self.pool = pool
        self.pool_size = pool_size
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
        self.dtype = dtype
        self.class_weight = class_weight

    # ------------------------------------------------------------------ architecture

    def _conv_blocks(self):
        """Resolve ``conv_layers`` into one dict of block settings per block."""
        blocks = []
        for i, entry in enumerate(self.conv_layers, start=1):
            name = f"conv block {i}"
            block = {"kernel_size": self.kernel_size, "stride": 1, "padding": self.padding,
                     "dilation": 1, "pool": self.pool, "pool_size": self.pool_size,
                     "batch_norm": self.batch_norm}
            if isinstance(entry, dict):
                unknown = set(entry) - _BLOCK_KEYS
                if unknown or "filters" not in entry:
                    raise ValueError(
                        f"conv_layers entry {entry!r} of {name} must have the key 'filters' "
                        f"and only keys from {sorted(_BLOCK_KEYS)}; got {sorted(entry)}"
                    )
                block.update(entry)
            elif isinstance(entry, (tuple, list)) and len(entry) == 2:
                block["filters"], block["kernel_size"] = entry
            else:
                block["filters"] = entry
            filters = block["filters"]
            if not isinstance(filters, Integral) or isinstance(filters, bool) or filters < 1:
                raise ValueError(
                    f"filters={filters!r} in {name} must be a positive int "
                    f"(conv_layers entries are an int, (filters, kernel_size) or a dict)"
                )
            _as_pair(block["kernel_size"], "kernel_size", name, 1)
            _as_pair(block["stride"], "stride", name, 1)
            _as_pair(block["dilation"], "dilation", name, 1)
            _as_pair(block["pool_size"], "pool_size", name, 1)
            if block["padding"] not in ("same", "valid"):
                if isinstance(block["padding"], str):
                    raise ValueError(
                        f"padding={block['padding']!r} in {name} must be 'same', 'valid', "
                        "an int >= 0 or a pair of them"
                    )
                _as_pair(block["padding"], "padding", name, 0)
            if block["pool"] not in ("max", "avg", None):
                raise ValueError(
                    f"pool={block['pool']!r} in {name} must be 'max', 'avg' or None"
                )
            if not isinstance(block["batch_norm"], (bool, np.bool_)):
                raise ValueError(
                    f"batch_norm={block['batch_norm']!r} in {name} must be True or False"
                )
            block["name"] = name
            blocks.append(block)
        return blocks

    def _build_network(self, n_classes):
        init = "he" if self.activation == "relu" else "glorot"
        layers = []
        for block in self._conv_blocks():
            # batch norm's shift makes the conv bias redundant
            layers.append(Conv2D(block["filters"], block["kernel_size"], block["stride"],
                                 block["padding"], block["dilation"], init=init,
                                 name=block["name"], bias=not block["batch_norm"]))
            if block["batch_norm"]:
                layers.append(BatchNorm2d())
            if block["pool"] == "max":
                # max pooling commutes with a non-decreasing activation, outputs and
                # gradients alike: pooling first runs the activation on 4x fewer values
                layers += [MaxPool2D(block["pool_size"]), Activation(self.activation)]
            elif block["pool"] == "avg":
                layers += [Activation(self.activation), AvgPool2D(block["pool_size"])]
            else:
                layers.append(Activation(self.activation))
        layers.append(Flatten())
        hidden = list(np.atleast_1d(self.hidden_layer_sizes))
        if not all(isinstance(u, Integral) and u >= 1 for u in hidden):
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} must hold positive ints"
            )
        for units in hidden:
            layers.append(Dense(units, init=init, bias=not self.batch_norm))
            if self.batch_norm:
                layers.append(BatchNorm1d())
            layers.append(Activation(self.activation))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_classes, init="glorot"))
        h, w, c = self.input_shape_
        return Sequential(layers, (c, h, w), self._dtype())

    def _dtype(self):
        return np.dtype(self.dtype)

    # ------------------------------------------------------------------ input handling

    def _validate_input(self, X, y="no_validation", reset=True):
        """Validate X (2D, 3D or 4D) and y; return X as 2D rows and the image shape.

        The image shape is ``(h, w, c)`` for 3D/4D X, None for 2D X. In fit X is
        cast to the model dtype once; in predict float X keeps its dtype and
        chunks are cast one at a time.
        """
        dtype = self._dtype() if reset else [np.float64, np.float32]
        image_shape = None
        if not (hasattr(X, "ndim") or hasattr(X, "iloc") or sp.issparse(X)):
            X = np.asarray(X)
        if getattr(X, "ndim", 2) > 2:
            X = check_array(X, allow_nd=True, dtype=dtype)
            if X.ndim > 4:
                raise ValueError(
                    f"X must be 2D (n_samples, n_features), 3D (n, height, width) or 4D "
                    f"(n, height, width, channels); got X.ndim={X.ndim}"
                )
            image_shape = X.shape[1:] + (1,) * (4 - X.ndim)
            X = X.reshape(X.shape[0], -1)
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, reset=reset, dtype=dtype)
            return X, image_shape
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype)
        check_classification_targets(y)
        return X, y, image_shape

    def _resolve_input_shape(self, n_features, image_shape):
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if len(shape) not in (2, 3) or not all(
                isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in shape
            ):
                raise ValueError(
                    f"input_shape={self.input_shape!r} must be (height, width) or "
                    "(height, width, channels) of positive ints"
                )
            shape = tuple(int(v) for v in shape) + (1,) * (3 - len(shape))
            if math.prod(shape) != n_features:
                raise ValueError(
                    f"input_shape={self.input_shape!r} has {math.prod(shape)} values per "
                    f"sample but X has n_features={n_features}"
                )
            if image_shape is not None and image_shape != shape:
                raise ValueError(
                    f"input_shape={self.input_shape!r} does not match the image shape "
                    f"{image_shape} of X"
                )
            return shape
        if image_shape is not None:
            return tuple(int(v) for v in image_shape)
        side = math.isqrt(n_features)
        return (side, side, 1) if side * side == n_features else (1, n_features, 1)

    def _check_image_shape(self, image_shape):
        if image_shape is not None and tuple(image_shape) != self.input_shape_:
            raise ValueError(
                f"X has images of shape {tuple(image_shape)} but {type(self).__name__} "
                f"was fitted on input_shape_={self.input_shape_}"
            )

    def _to_nchw(self, X):
        """Rows in (h, w, c) order -> contiguous (n, c, h, w) in the model dtype."""
        h, w, c = self.input_shape_
        x = X.reshape(X.shape[0], h, w, c).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self._dtype())

    # ------------------------------------------------------------------ training

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to images X and labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetClassifier
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All the classes; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetClassifier
        """
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class "
                "frequencies of one batch are not those of the data; pass a dict"
            )
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        if not first and classes is not None and not np.array_equal(
            np.sort(unique_labels(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={classes!r} is not the same as on the first call to "
                f"partial_fit: {self.classes_!r}"
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        continuing = hasattr(self, "_network") and (incremental or self.warm_start)
        X, y, image_shape = self._validate_input(X, y, reset=not continuing)
        if continuing:
            self._check_image_shape(image_shape)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        rng = check_random_state(self.random_state)

        if not continuing:
            self.input_shape_ = self._resolve_input_shape(X.shape[1], image_shape)
            self.classes_ = unique_labels(y if classes is None else classes)
            self._network = self._build_network(len(self.classes_))
            self._network.init_params(rng)
            self.n_outputs_ = len(self.classes_)
            self.n_layers_ = len(self.coefs_) + 1
            self.out_activation_ = "softmax"
            self.t_ = 0
            self.n_iter_ = 0
            self.loss_curve_ = []
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

        unseen = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y has labels {unseen!r} not in classes_={self.classes_!r} (set by the "
                "first fit or by partial_fit's classes; warm_start and partial_fit keep them)"
            )
        if self._network.needs_rng:
            # dropout masks: their own stream, seeded from the same random state
            self._network.set_rng(np.random.default_rng(rng.randint(np.iinfo(np.int32).max)))
        y_idx = np.searchsorted(self.classes_, y)
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            sample_weight = sample_weight * cw[y_idx]
        self._fit_epochs(X, y_idx, sample_weight, rng, incremental)
        if not np.isfinite(self._network.params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                f"large values and need to be preprocessed, or learning_rate_init="
                f"{self.learning_rate_init} is too large."
            )
        return self

    def _make_optimizer(self):
        params = self._network.params
        if self.solver == "adam":
            return AdamOptimizer(params, self.learning_rate_init, self.beta_1, self.beta_2,
                                 self.epsilon)
        return SGDOptimizer(params, self.learning_rate_init, self.learning_rate,
                            self.momentum, self.nesterovs_momentum, self.power_t)

    def _fit_epochs(self, X, y, sample_weight, rng, incremental):
        """The epoch loop: batches, stopping rules, early stopping, Ctrl-C."""
        net, opt = self._network, self._optimizer
        early_stopping = self.early_stopping and not incremental
        # a warm start may switch early stopping on or off
        if early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
        if early_stopping:
            X, X_val, y, y_val, sample_weight, sw_val = train_test_split(
                X, y, sample_weight, random_state=rng, test_size=self.validation_fraction,
                stratify=y,
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves "
                    f"{X_val.shape[0]} validation sample(s); increase it or add data"
                )
            best = net.snapshot()
        x_all = self._to_nchw(X)
        n_samples = x_all.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the number of samples "
                    f"{n_samples}; it is clipped to {n_samples}"
                )
            batch_size = min(self.batch_size, n_samples)
        x_batch = np.empty((batch_size,) + x_all.shape[1:], dtype=x_all.dtype)
        idx = np.arange(n_samples)
        try:
            for _ in range(1 if incremental else self.max_iter):
                tic = time.perf_counter()
                # the weights at the start of the epoch: what a diverging epoch falls back to
                epoch_start = net.snapshot()
                if self.shuffle:
                    rng.shuffle(idx)
                total = 0.0
                for batch in gen_batches(n_samples, batch_size):
                    rows = idx[batch]
                    xb = np.take(x_all, rows, axis=0, out=x_batch[:len(rows)])
                    loss = net.loss_and_grad(xb, y[rows], sample_weight[rows], self.alpha)
                    if not np.isfinite(loss):
                        self._diverged(epoch_start)
                        return
                    opt.update_params(net.params, net.grads)
                    total += loss * len(rows)
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_ = total / n_samples
                self.loss_curve_.append(self.loss_)
                line = "Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_)
                if early_stopping:
                    score = self._accuracy(X_val, y_val, sw_val)
                    self.validation_scores_.append(score)
                    improved = score >= self.best_validation_score_ + self.tol
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best = net.snapshot()
                    line += ", validation score = %.6f" % score
                else:
                    improved = self.loss_ <= self.best_loss_ - self.tol
                    self.best_loss_ = min(self.best_loss_, self.loss_)
                self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
                if self.verbose:
                    print(line + ", time = %.2fs" % (time.perf_counter() - tic))
                opt.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if opt.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if not incremental and self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user; the model keeps the weights "
                          "reached so far.")
        if early_stopping and self.validation_scores_:
            net.restore(best)

    def _diverged(self, last_finite):
        """Stop training on a non-finite loss, keeping the last finite weights
        (and running statistics): ``last_finite`` is a network snapshot."""
        self._network.restore(last_finite)
        # the optimizer's moments may hold inf/NaN too: start them afresh
        self._optimizer = self._make_optimizer()
        warnings.warn(
            f"Training diverged in epoch {self.n_iter_ + 1}: the loss is not finite "
            f"(learning_rate_init={self.learning_rate_init}, solver={self.solver!r}). "
            "Training stopped and the model keeps the weights from the start of that "
            "epoch; lower learning_rate_init or scale the inputs.",
            ConvergenceWarning,
        )

    def _accuracy(self, X, y_idx, sample_weight):
        pred = np.argmax(self._forward_fast(X), axis=1)
        return float(np.average(pred == y_idx, weights=sample_weight))

    # ------------------------------------------------------------------ prediction

    def _forward_fast(self, X):
        """Logits of validated 2D rows X: the inference path, no caches for backward.

        ``_PREDICT_CHUNK`` rows per forward pass, so memory stays bounded, and
        each row's logits depend on that row only (no batch effects).
        """
        out = np.empty((X.shape[0], self.n_outputs_), dtype=self._dtype())
        for batch in gen_batches(X.shape[0], _PREDICT_CHUNK):
            out[batch] = self._network.forward_fast(self._to_nchw(X[batch]))
        return out

    def _checked_logits(self, X):
        check_is_fitted(self)
        X, image_shape = self._validate_input(X, reset=False)
        self._check_image_shape(image_shape)
        return self._forward_fast(X)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels of the type given to ``fit``.
        """
        logits = self._checked_logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably from the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), float64
            Columns in the order of ``classes_``.
        """
        return log_softmax(self._checked_logits(X).astype(np.float64))

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Columns in the order of ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    # ------------------------------------------------------------------ fitted weights

    def _params_named(self, name):
        return [view for _, n, view in self._network.param_arrays() if n == name]

    @property
    def coefs_(self):
        """Weights of each layer that has them; see the class docstring."""
        return self._params_named("w")

    @property
    def intercepts_(self):
        """Biases of each layer that has them; see the class docstring."""
        return self._params_named("b")

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
            warnings.warn(InconsistentVersionWarning(
                estimator_name=type(self).__name__, current_version=__version__,
                original_version=pickled,
            ))
        super().__setstate__(state)

"""ConvNetClassifier: its loss, output activation, target encoding and
predictions. Everything else is BaseConvNet's."""

import math

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import compute_class_weight
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from ._data import blockwise
from ._base import BaseConvNet, _warn, fill_doc
from ._losses import (log_logistic, log_softmax, logistic, sigmoid_binary_cross_entropy,
                      softmax, softmax_cross_entropy)


@fill_doc
class ConvNetClassifier(ClassifierMixin, BaseConvNet):
    """Convolutional neural network classifier.

    The network is ``len(conv_layers)`` conv blocks (convolution -> [batch
    norm ->] activation -> pooling), a flatten, ``len(hidden_layer_sizes)``
    dense layers each followed by [batch norm,] the activation [and dropout],
    and a dense output layer. For one label per sample the output is a
    softmax trained on the cross-entropy (fused, log-sum-exp stable); for a
    0/1 indicator matrix y (multilabel, as ``MLPClassifier``) each output is
    a sigmoid trained on the binary cross-entropy. Both add an L2 penalty and
    train with Adam or SGD, as ``MLPClassifier``.

    As for ``MLPClassifier``, scale the inputs: pixel values in [0, 1] (e.g.
    ``X / 255``) train faster and generalise better than raw intensities.

    Parameters
    ----------
    {shared_parameters}
    class_weight : dict, 'balanced' or None, default=None
        Weights multiplied into ``sample_weight`` per class, as in
        scikit-learn's linear models: ``'balanced'`` gives every class the
        same total weight, ``sum(sample_weight) / (n_classes * the class's
        sum of sample_weight)`` (over the classes whose samples weigh more
        than 0). Not ``'balanced'`` in ``partial_fit``, and not for
        multilabel y.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels; for multilabel y, ``arange(n_labels)`` (as ``MLPClassifier``).
    {shared_attributes}
    n_outputs_ : int
        Units of the output layer: ``n_classes`` (a softmax even for two
        classes), or ``n_labels`` for multilabel y.
    out_activation_ : str
        ``'softmax'``, or ``'logistic'`` for multilabel y.

    Examples
    --------
    Digits as 8x8 images with pixel values in [0, 1], a small network and a
    few epochs (seconds; more epochs reach about 0.98):

    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skconv import ConvNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X.reshape(-1, 8, 8) / 16
    >>> clf = ConvNetClassifier(conv_layers=(16,), hidden_layer_sizes=(64,),
    ...                         batch_size=32, max_iter=10, random_state=0)
    >>> clf.fit(X[:1000], y[:1000]).input_shape_
    (8, 8, 1)
    >>> bool(clf.score(X[1000:], y[1000:]) > 0.85)
    True

    One image needs its batch axis:

    >>> clf.predict(X[1000][np.newaxis])
    array([1])
    >>> clf.predict_proba(X[1000:1003]).shape
    (3, 10)
    """

    _parameter_constraints = {
        **BaseConvNet._parameter_constraints,
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
        class_weight=None,
    ):
        super().__init__(
            conv_layers, hidden_layer_sizes, activation=activation, kernel_size=kernel_size,
            padding=padding, pool=pool, pool_size=pool_size, global_pool=global_pool,
            batch_norm=batch_norm,
            dropout=dropout, input_shape=input_shape, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dtype=dtype, augment=augment, lr_warmup_epochs=lr_warmup_epochs,
            lr_step_size=lr_step_size, lr_gamma=lr_gamma, embedding_layer=embedding_layer,
            input_scale=input_scale, shuffle_buffer=shuffle_buffer,
        )
        self.class_weight = class_weight

    # ------------------------------------------------------------------ training

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to images X and labels y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Labels, or a 0/1 indicator matrix for multilabel classification
            (dense or sparse; ``predict`` returns it dense).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetClassifier
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over (X, y).

        The training scratch (about a batch's activations and gradients) is
        kept from one call to the next, where a new one for each call would
        cost the zeroing of its fresh pages (ResNet-20, epochs of 1,024
        images: 3-5%); :meth:`fit`, and pickling, drop it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default=None
            All the classes; required on the first call. For multilabel y,
            the label indices ``0 .. n_labels - 1``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetClassifier
        """
        self._check_partial_fit()
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
                f"classes={classes!r} are not those the model was fitted with (by fit "
                f"or the first partial_fit), classes_={self.classes_!r}: partial_fit "
                "continues that model, with its classes; fit a clone for others"
            )
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _check_targets(self, y):
        if y.ndim == 2 and y.shape[1] == 1:
            # column_or_1d(y, warn=True)'s message, attributed to the user's line
            _warn(DataConversionWarning(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples, ), for example using ravel()."
            ))
            y = y.ravel()
        if type_of_target(y) == "multiclass-multioutput":
            raise ValueError(
                f"{type(self).__name__} takes one label per sample or a 0/1 indicator "
                "matrix (multilabel); y is multiclass-multioutput, with values "
                f"{np.unique(y)!r} in {y.shape[1]} columns"
            )
        check_classification_targets(y)
        return y

    def _is_multilabel(self):
        return self.out_activation_ == "logistic"

    def _init_targets(self, y, classes):
        if y.ndim == 2:
            self.classes_ = np.arange(y.shape[1])
            if classes is not None and not np.array_equal(unique_labels(classes),
                                                          self.classes_):
                raise ValueError(
                    f"classes={classes!r} must be the label indices 0 .. {y.shape[1] - 1} "
                    f"of the multilabel y with {y.shape[1]} columns"
                )
            self.out_activation_ = "logistic"
        else:
            self.classes_ = unique_labels(y if classes is None else classes)
            self.out_activation_ = "softmax"
            if len(self.classes_) == 1:
                # valid for scikit-learn (its checks fit one-class y), and a silent
                # dead end: a softmax over one class is 1 whatever the input
                (only,) = self.classes_.tolist()
                _warn(
                    f"y has one class only, {only!r}: the model learns nothing and every "
                    f"prediction will be {only!r}, with probability 1. Check how y was made "
                    "(a slice of data sorted by label?)"
                )
        self.n_outputs_ = len(self.classes_)

    def _encode_targets(self, y):
        """Class indices for single-label y; the indicator matrix in the model
        dtype for multilabel y."""
        if self._is_multilabel():
            if y.ndim != 2 or y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y must be a 0/1 indicator matrix with {self.n_outputs_} columns, as "
                    f"in the first fit (multilabel); got y of shape {y.shape}"
                )
            return np.ascontiguousarray(y, dtype=self._dtype())
        if y.ndim != 1:
            raise ValueError(
                f"y must be one label per sample, as in the first fit; got a multilabel "
                f"indicator matrix of shape {y.shape}"
            )
        unseen = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y has labels {unseen!r} not in classes_={self.classes_!r} (set by the "
                "first fit or by partial_fit's classes; warm_start and partial_fit keep them)"
            )
        return np.searchsorted(self.classes_, y)

    def _weight_samples(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        if self._is_multilabel():
            raise ValueError(
                f"class_weight={self.class_weight!r} is not supported for multilabel y; "
                "pass sample_weight instead"
            )
        # 'balanced' gives each class the same share of the sample weights, as
        # LogisticRegression's: it weighs the classes whose rows hold weight
        # (a warm start keeps classes_, which y need not all hold, and rows of
        # weight 0 add nothing to the loss), the others have nothing to weigh
        if isinstance(self.class_weight, str):
            held = np.bincount(y, weights=sample_weight, minlength=len(self.classes_)) > 0
            rows = held[y]
        else:
            held, rows = np.ones(len(self.classes_), dtype=bool), slice(None)
        cw = np.zeros(len(self.classes_))
        if held.any():
            cw[held] = compute_class_weight(self.class_weight, classes=self.classes_[held],
                                            y=self.classes_[y[rows]],
                                            sample_weight=sample_weight[rows])
        if not (np.isfinite(cw).all() and (cw >= 0).all()):
            bad = int(np.argmax(~(np.isfinite(cw) & (cw >= 0))))
            raise ValueError(
                f"class_weight={self.class_weight!r} gives class "
                f"{self.classes_[bad].tolist()!r} the weight {cw[bad]}: class weights must be "
                "finite and >= 0, as sample weights"
            )
        weights = sample_weight * cw[y]
        if not weights.any():
            raise ValueError(
                f"class_weight={self.class_weight!r} leaves every sample a weight of 0 (with "
                "sample_weight): the loss would be the L2 penalty alone"
            )
        return weights

    def _loss(self):
        if self._is_multilabel():
            return sigmoid_binary_cross_entropy
        return softmax_cross_entropy

    def _constant_loss(self, y, sample_weight):
        """Cross-entropy of predicting the weighted class frequencies (per label
        for multilabel y): what a model that learned nothing from X reaches."""
        if sample_weight.sum() <= 0:
            return None
        if self._is_multilabel():
            p = np.clip(np.average(y, axis=0, weights=sample_weight), 1e-12, 1 - 1e-12)
            return float(-np.sum(p * np.log(p) + (1 - p) * np.log(1 - p)))
        p = np.bincount(y, weights=sample_weight, minlength=self.n_outputs_)
        p = p[p > 0] / p.sum()
        return float(-np.sum(p * np.log(p)))

    def _stratify(self, y):
        # stratified where every class can be in both parts (two rows of it at
        # least, as many rows on each side as classes); else a plain split, as
        # MLPClassifier's for many classes, rather than train_test_split's error
        if self._is_multilabel():
            return None
        counts = np.bincount(y)
        counts = counts[counts > 0]
        n_val = math.ceil(self.validation_fraction * len(y))
        if counts.min() < 2 or min(n_val, len(y) - n_val) < len(counts):
            return None
        return y

    def _score_outputs(self, outputs, y, sample_weight):
        """Accuracy (subset accuracy for multilabel) of the outputs."""
        if self._is_multilabel():
            correct = ((outputs > 0) == (y > 0.5)).all(axis=1)
        else:
            correct = np.argmax(outputs, axis=1) == y
        return np.average(correct, weights=sample_weight)

    # ------------------------------------------------------------------ prediction

    @blockwise
    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels of the type given to ``fit``; for multilabel, the 0/1
            indicator matrix of the labels whose probability exceeds 0.5.
        """
        logits = self._checked_outputs(X)
        if self._is_multilabel():
            return (logits > 0).astype(int)
        return self.classes_[np.argmax(logits, axis=1)]

    @blockwise
    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably from the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), float64
            Columns in the order of ``classes_``; for multilabel, each label's
            own log-probability (rows do not sum to one in probability).
        """
        logits = self._checked_outputs(X)
        if self._is_multilabel():
            return log_logistic(logits)
        return log_softmax(logits)

    @blockwise
    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Columns in the order of ``classes_``; for multilabel, each label's
            probability.
        """
        logits = self._checked_outputs(X)
        if self._is_multilabel():
            return logistic(logits)
        return softmax(logits)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

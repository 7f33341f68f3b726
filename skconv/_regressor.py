"""ConvNetRegressor: squared error on an identity output, or half the Poisson
deviance on an exponential one, as MLPRegressor. Everything else is
BaseConvNet's."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from scipy.special import xlogy

from ._data import blockwise
from ._base import BaseConvNet, fill_doc
from ._losses import exponential, half_poisson_deviance, squared_error

# loss -> the output activation it is fused with (MLPRegressor's names)
_OUT_ACTIVATIONS = {"squared_error": "identity", "poisson": "exp"}


@fill_doc
class ConvNetRegressor(RegressorMixin, BaseConvNet):
    """Convolutional neural network regressor.

    The network of :class:`ConvNetClassifier` (``len(conv_layers)`` conv
    blocks, a flatten, ``len(hidden_layer_sizes)`` dense layers) ending in a
    dense layer of one unit per target with the identity as output
    activation (the exponential for ``loss='poisson'``). It is trained on half
    the mean squared error (or half the Poisson deviance) plus an L2 penalty,
    with Adam or SGD, as ``MLPRegressor``; ``score`` is R².

    Scale the inputs as for the classifier, and with squared error scale the
    targets too when they are far from unit size (for instance with
    ``TransformedTargetRegressor(regressor=ConvNetRegressor(...),
    transformer=StandardScaler())``): the default learning rate suits
    targets of about unit variance. ``loss='poisson'`` needs no scaling of
    the targets (its output starts at their mean), and a standardized y,
    negative in places, is refused by it.

    Parameters
    ----------
    {shared_parameters}
    loss : {'squared_error', 'poisson'}, default='squared_error'
        ``'squared_error'``: half the mean squared error, on an identity
        output. ``'poisson'``: half the Poisson deviance, on an exponential
        output (a log link), for counts and other non-negative targets whose
        spread grows with their mean; y must be >= 0, and the output layer's
        biases start at the log of each target's (weighted) mean and its
        weights at 0, so that the untrained model predicts the mean on every
        row rather than about 1 (a target that is 0 in every row, whose mean
        has no log, as if one row held a count of 1, or the smallest positive
        value of y where that is less). A prediction is ``exp`` of the
        network's output, in float64: inf where that output passes 709.78, as
        ``MLPRegressor``'s; a fit whose last step leaves such outputs on its
        training rows falls back as from a divergence. Both losses as
        ``MLPRegressor``'s (the losses it reports are these halves).

    Attributes
    ----------
    {shared_attributes}
    n_outputs_ : int
        Number of targets: 1 for 1-D y, ``y.shape[1]`` for 2-D y.
    out_activation_ : str
        ``'identity'``, or ``'exp'`` for ``loss='poisson'``.

    Examples
    --------
    The digit shown in each 8x8 image, as a number: pixel values scaled to
    [0, 1], targets standardized by ``TransformedTargetRegressor``.

    >>> from sklearn.compose import TransformedTargetRegressor
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skconv import ConvNetRegressor
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X.reshape(-1, 8, 8) / 16
    >>> net = ConvNetRegressor(conv_layers=(16,), hidden_layer_sizes=(64,),
    ...                        batch_size=32, max_iter=10, random_state=0)
    >>> reg = TransformedTargetRegressor(net, transformer=StandardScaler())
    >>> reg.fit(X[:1000], y[:1000]).regressor_.input_shape_
    (8, 8, 1)
    >>> bool(reg.score(X[1000:], y[1000:]) > 0.6)
    True
    >>> reg.predict(X[1000:1003]).shape
    (3,)
    """

    _y_numeric = True

    _parameter_constraints = {
        **BaseConvNet._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
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
        loss="squared_error",
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
        self.loss = loss

    # ------------------------------------------------------------------ training

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to images X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetRegressor
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over (X, y).

        The training scratch (about a batch's activations and gradients) is
        kept from one call to the next, where a new one for each call would
        cost the zeroing of its fresh pages (ResNet-20, epochs of 1,024
        images: 3-5%); :meth:`fit`, and pickling, drop it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : ConvNetRegressor
        """
        self._check_partial_fit()
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_targets(self, y):
        if self.loss == "poisson" and (y < 0).any():
            rows = np.flatnonzero((y < 0).reshape(len(y), -1).any(axis=1))
            raise ValueError(
                f"loss='poisson' takes targets >= 0 (a Poisson mean is never negative); y "
                f"has negative values in {len(rows)} row(s), the first at row {rows[0]}: "
                f"{y[rows[0]].tolist()!r}. Use loss='squared_error' for signed targets."
            )
        return y

    def _init_targets(self, y, classes):
        self._y_ndim = y.ndim
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        self.out_activation_ = _OUT_ACTIVATIONS[self.loss]

    def _init_output(self, y, sample_weight, incremental):
        """Poisson: the output biases at the log of each target's weighted mean
        (the log link's baseline, as HistGradientBoostingRegressor's), where the
        initial 0 predicts 1 and leaves counts in the hundreds to many epochs of
        climbing at Adam's step of about ``learning_rate_init``; the output
        weights at 0, whose random start would spread the log predictions by
        about 1 around it (a deviance of half the mean, and more, a row)."""
        if self.out_activation_ != "exp":
            return
        mean = np.average(y, axis=0, weights=sample_weight) if sample_weight.any() else None
        if mean is None or not (mean > 0).any():
            if incremental:
                # the first batch of a stream, not all of y: the biases keep
                # their random start, as MLPRegressor's
                return
            raise ValueError(
                "loss='poisson' needs targets that are not all 0 (with their sample "
                "weights): a Poisson model of them would predict exp(-inf)"
            )
        # a target that is 0 in every weighted row has no log of its mean: it starts as if
        # one row held a count of 1, or the smallest positive value of y where that is
        # less, rather than at its random bias's exp(about 0) = 1, which would take
        # many epochs to climb down from
        floor = min(1.0, y[y > 0].min()) / len(y)
        params = self._network.named_params()
        params["output.b"][:] = np.log(np.where(mean > 0, mean, floor))
        # the first steps train these from the hidden layers' random start; the
        # gradients reach the hidden layers once they are not 0
        params["output.w"][:] = 0

    def _check_architecture_kept(self, incremental):
        super()._check_architecture_kept(incremental)
        fitted = {v: k for k, v in _OUT_ACTIVATIONS.items()}[self.out_activation_]
        if self.loss != fitted:
            how = "partial_fit" if incremental else "fit with warm_start=True"
            raise ValueError(
                f"{how} continues the fitted network, trained with loss={fitted!r} (its "
                f"output activation {self.out_activation_!r}); the parameters now say "
                f"loss={self.loss!r}. Fit with warm_start=False (or a clone) for the new "
                "loss, or set it back to continue."
            )

    def _encode_targets(self, y):
        """y as an (n, n_outputs) array in the model dtype."""
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} output(s) but {type(self).__name__} was fitted with "
                f"n_outputs_={self.n_outputs_} (warm_start and partial_fit keep them)"
            )
        encoded = np.ascontiguousarray(y.reshape(len(y), -1), dtype=self._dtype())
        # the squared error of targets past the root of the dtype's largest value
        # is infinite (a quarter of it: a few outputs' squares are summed)
        info = np.finfo(encoded.dtype)
        top = float(np.abs(encoded).max(initial=0))
        if self.out_activation_ == "identity" and np.sqrt(info.max) / 4 < top < np.inf:
            raise ValueError(
                f"y holds values up to {top:.3g} in magnitude, whose squared errors pass "
                f"{info.dtype.name}'s range ({float(info.max):.3g}), in which the model "
                "computes: scale y (e.g. TransformedTargetRegressor(regressor=..., "
                "transformer=StandardScaler())) or fit with dtype='float64'."
            )
        return encoded

    def _loss(self):
        return half_poisson_deviance if self.out_activation_ == "exp" else squared_error

    def _constant_loss(self, y, sample_weight):
        """The loss of predicting the weighted mean of each target: what a model
        that learned nothing from X reaches."""
        if sample_weight.sum() <= 0:
            return None
        mean = np.average(y, axis=0, weights=sample_weight)
        if self.out_activation_ == "exp":
            # a target that is 0 throughout has a mean of 0, and no deviance from it
            safe = np.where(mean > 0, mean, 1)
            deviance = xlogy(y, y / safe) - y + mean
            return float(np.average(deviance, axis=0, weights=sample_weight).sum())
        return float(0.5 * np.average((y - mean) ** 2, axis=0, weights=sample_weight).mean())

    def _untrained_loss(self, y, sample_weight):
        """Half the mean squared error of predicting 0 for every target (None for
        Poisson, whose untrained model predicts the means)."""
        if sample_weight.sum() <= 0 or self.out_activation_ == "exp":
            return None
        return float(0.5 * np.average(y ** 2, axis=0, weights=sample_weight).mean())

    def _predictions(self, outputs):
        """The network's outputs through the output activation, in float64."""
        if self.out_activation_ == "exp":
            return exponential(outputs)
        return outputs.astype(np.float64)

    def _score_outputs(self, outputs, y, sample_weight):
        """R² of the predictions, averaged over the targets."""
        return r2_score(y, self._predictions(outputs), sample_weight=sample_weight)

    # ------------------------------------------------------------------ prediction

    @blockwise
    def predict(self, X):
        """Predict the targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, h, w, c)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
            The shape ``y`` had in ``fit``: 1-D for 1-D y.
        """
        outputs = self._predictions(self._checked_outputs(X))
        return outputs.ravel() if self._y_ndim == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # as PoissonRegressor's: y < 0 is refused, and scikit-learn's checks
        # (and tools reading the tags) give such an estimator y >= 0 only
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags

"""Saving and loading models without trusting the file: skops.io.

``pickle`` and ``joblib`` files can run arbitrary code when loaded, so a model
file from someone you do not trust must never be unpickled. ``skops.io``
(``pip install skops``) stores a model as data and, on loading, refuses every
type that is not explicitly trusted. :func:`load` trusts the types a fitted
``ConvNetClassifier`` or ``ConvNetRegressor`` is made of, :data:`TRUSTED_TYPES`,
besides those skops trusts by default (builtins, numpy arrays, scikit-learn's
estimators, so that a ``Pipeline`` of scikit-learn steps ending in a skconv
estimator loads), and refuses a file that names any other.
"""

__all__ = ["TRUSTED_TYPES", "dump", "load"]

#: Every type a fitted ConvNetClassifier or ConvNetRegressor is made of besides
#: numpy arrays and builtins, as ``skops.io.get_untrusted_types`` names them.
TRUSTED_TYPES = (
    "skconv._classifier.ConvNetClassifier",
    "skconv._layers.Activation",
    "skconv._layers.Add",
    "skconv._layers.AvgPool2D",
    "skconv._layers.Conv2D",
    "skconv._layers.Dense",
    "skconv._layers.Flatten",
    "skconv._layers.GlobalPool2D",
    "skconv._layers.MaxPool2D",
    "skconv._network.Network",
    "skconv._network.Node",
    "skconv._network.Sequential",  # the network of a model saved by skconv 0.1
    "skconv._regressor.ConvNetRegressor",
    "skconv._normalization.BatchNorm1d",
    "skconv._normalization.BatchNorm2d",
    "skconv._normalization.Dropout",
    "skconv._optimizers.AdamOptimizer",
    "skconv._optimizers.SGDOptimizer",
)


def _skops_io():
    try:
        import skops.io
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skconv.persistence needs skops: pip install skops (or skconv[secure])"
        ) from exc
    return skops.io


def _estimators(model):
    """``model`` and the objects among its parameters (a Pipeline's steps, ...),
    each once."""
    params = model.get_params(deep=True).values() if hasattr(model, "get_params") else ()
    return list({id(obj): obj for obj in (model, *params)}.values())


def dump(model, file):
    """Save ``model`` with ``skops.io.dump`` (no pickle inside).

    Callbacks set with ``set_callbacks`` (on ``model`` or on a step of it) are
    not saved: they observe a fit and hold its run (a ``ScoringMonitor``'s
    log, a ``ProgressBar``'s listeners), which is not the model, and their
    types are not skconv's, so :func:`load` would refuse the file. ``model``
    keeps them.
    """
    held = [est for est in _estimators(model) if "_skl_callbacks" in getattr(est, "__dict__", {})]
    callbacks = [est.__dict__.pop("_skl_callbacks") for est in held]
    try:
        _skops_io().dump(model, file)
    finally:
        for est, kept in zip(held, callbacks):
            est._skl_callbacks = kept


def load(file):
    """Load a model saved by :func:`dump`, trusting skconv's types and skops' defaults.

    Raises
    ------
    ValueError
        If the file names any type that is neither in :data:`TRUSTED_TYPES`
        nor trusted by skops by default (``skops.io.get_untrusted_types``
        lists it); nothing from the file is executed in that case.
    """
    sio = _skops_io()
    untrusted = sio.get_untrusted_types(file=file)
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise ValueError(
            f"refusing to load {file!r}: it names types that are neither skconv's own "
            f"(skconv.persistence.TRUSTED_TYPES) nor trusted by skops by default: {unknown}. "
            "Loading them could run their code; if you trust the file, load it with "
            "skops.io.load(file, trusted=skops.io.get_untrusted_types(file=file))"
        )
    return sio.load(file, trusted=untrusted)

"""Look inside a fitted network: displays in scikit-learn's convention.

Each display follows ``sklearn.metrics.ConfusionMatrixDisplay``: build it with
``from_estimator`` (which computes, then plots), or compute once and call
:meth:`plot` again on other axes. ``plot(ax=None, ...)`` returns the display
and keeps ``figure_`` and ``ax_`` (one panel) or ``axes_`` (a grid of tiles);
what was computed stays on the display as attributes ending in ``_``.

A grid display given one Axes as ``ax`` splits that Axes' place in its figure
into the tiles (as ``PartialDependenceDisplay`` does) and keeps it as
``bounding_ax_``; given an array of Axes, it draws one tile in each.

Works for any fitted skconv estimator (its network is read, never changed) and
for a ``Pipeline`` ending in one (X goes through the steps before it).
``layer`` counts the conv layers (conv blocks) from 0; negative values count
from the end. matplotlib is needed for plotting only, and imported only here.
"""

from collections import namedtuple
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import zoom
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils.validation import check_array, check_is_fitted

from . import _data
from ._network import Network

# rows per forward/backward pass: bounds memory for any number of images
_CHUNK = 256

__all__ = ["FeatureMapDisplay", "FilterDisplay", "SaliencyDisplay", "TrainingHistoryDisplay"]


# ---------------------------------------------------------------------- estimator side

def _fitted_network(estimator, display):
    """Return ``(steps, estimator, network)``: a Pipeline's steps before its last, and the last.

    ``steps`` is None for an estimator on its own. ``display``, the class that
    will draw them, needs matplotlib: without it, it says so before any work
    (a SmoothGrad of many images takes a while), as scikit-learn's displays do.
    """
    _pyplot(display.__name__)
    check_is_fitted(estimator)
    steps = None
    if isinstance(estimator, Pipeline):
        steps, estimator = estimator[:-1], estimator[-1]
        check_is_fitted(estimator)
    network = getattr(estimator, "_network", None)
    if not isinstance(network, Network):
        raise TypeError(
            f"estimator={type(estimator).__name__} is not a fitted skconv estimator "
            "(ConvNetClassifier or ConvNetRegressor, alone or last in a Pipeline)"
        )
    return steps, estimator, network


def _forward(network, x):
    """The prediction function's outputs for NCHW ``x`` (inference mode)."""
    return network.forward_fast(x)


def _input_gradient(network, x, dy, start=None):
    """Gradient of ``sum(dy * outputs)`` with respect to ``x``: the network's
    input, or the output of node ``start`` (a cut point of the graph).

    Every gradient the displays draw comes through here: the one place that
    knows how the network carries a gradient down to its input.
    """
    return network.input_gradient(x, dy, start=start)


def _images(steps, estimator, network, X):
    """X (rows in (h, w, c) order, or images) -> (images (n, h, w, c), NCHW in the net's dtype).

    With a Pipeline, X first goes through the steps before the estimator.
    """
    if steps is not None:
        X = steps.transform(X)
    h, w, c = _hwc(estimator)
    if hasattr(estimator, "_validate_input"):
        # predict's checks, which say what is wrong in image or series terms: one
        # sample without its batch axis, channels-first samples, where a NaN is,
        # values beyond the range of a float32 model
        X, _ = estimator._validate_input(X, reset=False)
        if isinstance(X, _data.Rows):
            X = X.read(0, X.shape[0])
        if sp.issparse(X):
            X = X.toarray()
        _data.check_block(X, dtype=network.dtype)
    X = check_array(X, allow_nd=True, dtype=[np.float64, np.float32])
    per_row = int(np.prod(X.shape[1:]))
    if per_row != h * w * c:
        what = (f"series of length {w} with {c} channel(s)" if _is_series(estimator)
                else "images")
        raise ValueError(
            f"X has {per_row} values per sample (shape {X.shape}) but the estimator was "
            f"fitted on {what}, input_shape_={estimator.input_shape_}"
        )
    images = X.reshape(X.shape[0], h, w, c)
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=network.dtype)
    scale = getattr(estimator, "input_scale", None)
    if scale is not None:  # what predict feeds the network
        # not in place: for one channel in the net's dtype, x is a view of the caller's X
        x = x / x.dtype.type(scale)
    return images, x


def _is_series(estimator):
    """Whether the estimator reads series: ``input_shape_`` is ``(length, channels)``."""
    return len(estimator.input_shape_) == 2


def _hwc(estimator):
    """The estimator's samples as the network's images ``(h, w, c)`` (a series is an
    image of one row)."""
    shape = tuple(estimator.input_shape_)
    return (1,) + shape if len(shape) == 2 else shape


def _one_image(x):
    """One image as a flat row, (h, w), (h, w, c) or a batch of one -> a batch of one.

    A DataFrame's row stays a DataFrame of one row: its column names are what a
    model fitted on a DataFrame, and a Pipeline's steps that select columns, read.
    """
    if hasattr(x, "to_frame") and hasattr(x, "index"):  # a pandas Series: one row
        return x.to_frame().T
    if hasattr(x, "columns"):
        return x
    x = np.asarray(x)
    return x if x.ndim >= 2 and x.shape[0] == 1 else x[None]


class _Block(namedtuple("_Block", "conv stop pool last")):
    """A conv block of the network: the position of the convolution whose
    filters it shows, the name of the node whose output is the block's (a cut
    point of the graph), the position of its pooling node (or None) and of
    its last node."""


def _conv_blocks(network):
    """The network's conv blocks, as :class:`_Block`.

    The estimators name a block's nodes ``block<k>.*`` (a residual block's
    branches and their addition included); a network without such names (a
    model saved by skconv 0.1, a chain of layers) has a block run from a
    ``Conv2D`` up to the next one or to the first layer whose output is no
    longer feature maps (the flatten), so that it holds the batch norm,
    pooling and activation after the convolution.
    """
    nodes = network.nodes
    groups = {}
    for i, node in enumerate(nodes):
        prefix, dot, _ = node.name.partition(".")
        if dot and prefix.startswith("block"):
            groups.setdefault(prefix, []).append(i)
    if not groups:
        starts = [i for i, node in enumerate(nodes) if node.layer.op == "conv"]
        for start in starts:
            stop = start + 1
            while (stop < len(nodes) and nodes[stop].layer.op != "conv"
                   and len(nodes[stop].layer.output_shape) == 3):
                stop += 1
            groups[start] = list(range(start, stop))
    blocks = []
    for members in groups.values():
        conv = next((i for i in members if nodes[i].layer.op == "conv"), None)
        if conv is None:
            continue
        pool = next((i for i in members if nodes[i].layer.op in ("max_pool", "avg_pool")),
                    None)
        blocks.append(_Block(conv, nodes[members[-1]].name, pool, members[-1]))
    return blocks


def _check_layer(layer, network):
    """Resolve ``layer`` (conv layers counted from 0, negative from the end) to a block index."""
    n = len(_conv_blocks(network))
    if not isinstance(layer, Integral) or isinstance(layer, bool):
        raise TypeError(f"layer={layer!r} must be an int: conv layers are counted from 0")
    if n == 0:
        raise ValueError(f"layer={layer} cannot be shown: the network has no conv layers")
    if not -n <= layer < n:
        raise ValueError(
            f"layer={layer} is out of range: the network has {n} conv layer(s), "
            f"numbered 0 to {n - 1} (or -{n} to -1 from the end)"
        )
    return int(layer) % n


def _block_maps(network, x, block, pooled=True):
    """Feature maps of one conv block for NCHW ``x``, in inference mode.

    ``pooled=False`` runs the block without its pooling layers: the maps at
    the convolution's resolution, after batch norm and activation (max
    pooling commutes with the activation, so this is what was pooled).
    """
    if pooled or block.pool is None:
        return network.forward_fast(x, stop=block.stop)
    # the block's output less its pooling: up to the node before it, then the rest
    x = network.forward_fast(x, stop=network.nodes[block.pool - 1].name)
    for node in network.nodes[block.pool + 1:block.last + 1]:
        x = node.layer.forward_fast(x)
    return x


# ---------------------------------------------------------------------- plotting side

def _pyplot(caller):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib: pip install matplotlib (or skconv[examples])"
        ) from exc
    return plt


def _grid(ax, nrows, ncols, caller, tile=1.0):
    """A grid of tiles: ``(figure, bounding_ax, axes of shape (nrows, ncols), title_holder)``.

    ``title_holder`` is the (sub)figure whose ``suptitle`` names the grid, or
    None when the caller gave the Axes one by one.
    """
    plt = _pyplot(caller)
    from matplotlib.axes import Axes

    if ax is None:
        fig = plt.figure(figsize=(max(2.5, tile * ncols), max(2.0, tile * nrows + 0.5)),
                         layout="constrained")
        return fig, None, fig.subplots(nrows, ncols, squeeze=False), fig
    if isinstance(ax, Axes):
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError(
                f"ax is an Axes placed outside a grid (by add_axes, or an inset): {caller} "
                f"splits the grid cell of the Axes given into its {nrows} x {ncols} tiles; "
                "pass an Axes of plt.subplots or add_subplot, one Axes per tile, or None"
            )
        # a subfigure in the Axes' place: the figure's layout makes room for its title
        ax.set_axis_off()
        sub = ax.figure.add_subfigure(spec)
        axes = sub.subplots(nrows, ncols, squeeze=False)
        return _root_figure(ax), ax, axes, sub
    axes = np.asarray(ax, dtype=object)
    if axes.size != nrows * ncols:
        raise ValueError(
            f"ax holds {axes.size} Axes but {caller} draws {nrows} x {ncols} = "
            f"{nrows * ncols} tiles; pass one Axes (split into the tiles) or None"
        )
    axes = axes.reshape(nrows, ncols)
    return _root_figure(axes.flat[0]), None, axes, None


def _root_figure(ax):
    """The Figure that ``ax`` is drawn in, through any subfigures.

    ``ax.get_figure(root=True)`` says it from matplotlib 3.10 on, and is a
    TypeError before; a (sub)figure's ``figure`` is that Figure in every version.
    """
    return ax.figure.figure


def _wrap(n):
    """(rows, cols) of a near-square grid of n tiles."""
    ncols = int(np.ceil(np.sqrt(n)))
    return -(-n // ncols), ncols


def _title(holder, text):
    if holder is not None:
        holder.suptitle(text, fontsize="medium")


def _show_image(ax, image, **kwargs):
    """Draw an (h, w, c) input image: RGB for 3 channels, else grey (the channels' mean)."""
    if image.shape[2] == 3:
        lo, hi = image.min(), image.max()
        return ax.imshow((image - lo) / (hi - lo if hi > lo else 1.0), **kwargs)
    return ax.imshow(image.mean(axis=2), cmap="gray_r", **kwargs)


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------- displays

class TrainingHistoryDisplay:
    """How training went: the loss per epoch, and the validation score and
    learning rate per epoch where the model recorded them.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
    validation_scores : array-like of shape (n_epochs,), default=None
    learning_rates : array-like of shape (n_epochs,), default=None

    Attributes
    ----------
    loss_curve_, validation_scores_, learning_rates_ : ndarray or None
        The curves given (None where absent or empty).
    axes_ : ndarray of Axes of shape (n_panels,)
        One panel per curve: loss, then validation score, then learning rate.
    ax_ : Axes
        The loss panel.
    lines_ : ndarray of Line2D of shape (n_panels,)
    figure_ : Figure
    bounding_ax_ : Axes or None
        The Axes given as ``ax`` and split into the panels.
    """

    def __init__(self, loss_curve, validation_scores=None, learning_rates=None):
        def curve(values):
            return None if values is None or len(values) == 0 else np.asarray(values, float)

        self.loss_curve_ = curve(loss_curve)
        self.validation_scores_ = curve(validation_scores)
        self.learning_rates_ = curve(learning_rates)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the training history of a fitted estimator.

        Reads ``loss_curve_``, ``validation_scores_`` (with early stopping)
        and, when the estimator records it, ``learning_rate_curve_``.

        Parameters
        ----------
        estimator : fitted skconv estimator or Pipeline ending in one
        ax : Axes, array of Axes or None, default=None

        Returns
        -------
        display : TrainingHistoryDisplay
        """
        _, estimator, _ = _fitted_network(estimator, cls)
        if not estimator.loss_curve_:
            raise ValueError(
                "the estimator has no training history to show: no epoch of its fit "
                "finished (loss_curve_ is empty; was the fit interrupted in its first epoch?)"
            )
        return cls(estimator.loss_curve_, getattr(estimator, "validation_scores_", None),
                   getattr(estimator, "learning_rate_curve_", None)).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the curves, one panel each, against the epoch (from 1).

        Parameters
        ----------
        ax : Axes, array of Axes or None, default=None

        Returns
        -------
        self : TrainingHistoryDisplay
        """
        panels = [(values, label) for values, label in (
            (self.loss_curve_, "training loss"),
            (self.validation_scores_, "validation score"),
            (self.learning_rates_, "learning rate"),
        ) if values is not None]
        if not panels:
            raise ValueError(
                "TrainingHistoryDisplay has no curve to draw: loss_curve, validation_scores "
                "and learning_rates are all None or empty"
            )
        fig, self.bounding_ax_, axes, _ = _grid(ax, 1, len(panels), "TrainingHistoryDisplay",
                                                tile=3.2)
        self.figure_, self.axes_ = fig, axes[0]
        self.ax_ = self.axes_[0]
        self.lines_ = np.empty(len(panels), dtype=object)
        for k, (a, (values, label)) in enumerate(zip(self.axes_, panels)):
            (self.lines_[k],) = a.plot(np.arange(1, len(values) + 1), values, marker=".")
            a.set_xlabel("epoch")
            a.set_title(label)
        if self.learning_rates_ is not None:
            self.axes_[-1].set_yscale("log")
        return self


class FilterDisplay:
    """The filters of one conv layer as a grid of images.

    One tile per filter and input channel: for a layer with one input channel
    (or three, drawn as RGB) one tile per filter, wrapped into a near-square
    grid; otherwise one row per filter and one column per input channel.

    Parameters
    ----------
    weights : ndarray of shape (n_filters, in_channels, kh, kw)
    layer : int, default=0
        The conv layer they come from (for the title).
    series : bool, default=False
        Whether they are the filters of a model of series (kernels of one
        row, over time), drawn as one image.

    Attributes
    ----------
    weights_ : ndarray of shape (n_filters, in_channels, kh, kw)
    layer_ : int
    series_ : bool
    rgb_ : bool
        Whether the tiles are RGB images (three input channels).
    tiles_ : ndarray of AxesImage of shape (n_filters, n_tiles_per_filter)
        ``n_tiles_per_filter`` is 1 for RGB, else ``in_channels``. Filters of
        a series (kernels of one row): shape (1, 1), one image with a row per
        filter and its input channels side by side.
    axes_ : ndarray of Axes of shape (rows, cols)
    figure_ : Figure
    bounding_ax_ : Axes or None
    """

    def __init__(self, weights, layer=0, *, series=False):
        self.weights_ = np.asarray(weights)
        self.layer_ = layer
        self.series_ = series

    @classmethod
    def from_estimator(cls, estimator, layer=0, *, filters=None, ax=None, cmap="RdBu_r"):
        """Plot the filters of conv layer ``layer`` of a fitted estimator.

        Parameters
        ----------
        estimator : fitted skconv estimator or Pipeline ending in one
        layer : int, default=0
            Conv layers count from 0; -1 is the last.
        filters : array-like of int, default=None
            Which filters to show (all by default: a deep layer has
            ``filters * in_channels`` tiles).
        ax : Axes, array of Axes or None, default=None
        cmap : str, default='RdBu_r'
            Colour map of single-channel tiles.

        Returns
        -------
        display : FilterDisplay
        """
        _, estimator, network = _fitted_network(estimator, cls)
        block = _check_layer(layer, network)
        conv = network.nodes[_conv_blocks(network)[block].conv].layer
        weights = np.array(conv._w)
        if filters is not None:
            filters = np.asarray(filters)
            if filters.ndim != 1 or not np.issubdtype(filters.dtype, np.integer) or (
                filters.size and not (-len(weights) <= filters.min() <= filters.max()
                                      < len(weights))
            ):
                raise ValueError(
                    f"filters={filters!r} must be indices of the {len(weights)} filters "
                    f"of conv layer {block}"
                )
            weights = weights[filters]
        # an image model's kernel of one row, (1, 3), is still an image's
        return cls(weights, block, series=_is_series(estimator)).plot(ax=ax, cmap=cmap)

    def plot(self, ax=None, *, cmap="RdBu_r"):
        """Draw the filters.

        Single-channel tiles share one symmetric colour scale,
        ``(-max|w|, max|w|)``, so that zero is the colour map's centre; RGB
        tiles are each scaled from their own minimum to maximum.

        Parameters
        ----------
        ax : Axes, array of Axes or None, default=None
        cmap : str, default='RdBu_r'

        Returns
        -------
        self : FilterDisplay
        """
        w = self.weights_
        n_filters, channels = w.shape[:2]
        if self.series_:
            return self._plot_series(ax, cmap)
        self.rgb_ = channels == 3
        per_filter = 1 if self.rgb_ else channels
        if per_filter == 1:
            rows, cols = _wrap(n_filters)
        else:
            rows, cols = n_filters, channels
        fig, self.bounding_ax_, axes, holder = _grid(ax, rows, cols, "FilterDisplay", tile=0.8)
        self.figure_, self.axes_ = fig, axes
        self.tiles_ = np.empty((n_filters, per_filter), dtype=object)
        vmax = float(np.abs(w).max()) or 1.0
        for f in range(n_filters):
            for c in range(per_filter):
                a = axes.flat[f * per_filter + c]
                if self.rgb_:
                    rgb = w[f].transpose(1, 2, 0)
                    lo, hi = rgb.min(), rgb.max()
                    self.tiles_[f, c] = a.imshow((rgb - lo) / (hi - lo if hi > lo else 1.0))
                else:
                    self.tiles_[f, c] = a.imshow(w[f, c], cmap=cmap, vmin=-vmax, vmax=vmax)
        for a in axes.flat:
            _bare(a)
        for a in axes.flat[n_filters * per_filter:]:
            a.set_axis_off()
        kh, kw = w.shape[2:]
        what = "RGB" if self.rgb_ else ("filter per tile" if per_filter == 1
                                       else "row: filter, column: input channel")
        _title(holder,
               f"conv layer {self.layer_}: {n_filters} filters {kh}x{kw} ({what})")
        return self


    def _plot_series(self, ax, cmap):
        """Filters over time (kernels of one row): one image, a row per filter and its
        input channels side by side, each ``kw`` steps wide."""
        w = self.weights_[:, :, 0]
        n_filters, channels, k = w.shape
        self.rgb_ = False
        fig, self.bounding_ax_, axes, holder = _grid(ax, 1, 1, "FilterDisplay", tile=5.0)
        self.figure_, self.axes_ = fig, axes
        vmax = float(np.abs(w).max()) or 1.0
        a = axes[0, 0]
        self.tiles_ = np.array([[a.imshow(w.reshape(n_filters, channels * k), cmap=cmap,
                                          vmin=-vmax, vmax=vmax, aspect="auto",
                                          interpolation="nearest")]], dtype=object)
        for c in range(1, channels):
            a.axvline(c * k - 0.5, color="k", lw=0.8)
        a.set_xticks([c * k + (k - 1) / 2 for c in range(channels)],
                     [f"channel {c}" for c in range(channels)], fontsize="x-small")
        a.set_ylabel("filter", fontsize="small")
        _title(holder, f"conv layer {self.layer_}: {n_filters} filters of {k} time steps")
        return self


class FeatureMapDisplay:
    """One image's feature maps after a conv block, one tile per channel.

    Parameters
    ----------
    feature_maps : ndarray of shape (channels, h, w)
    layer : int, default=0
    pooled : bool, default=True
        Whether the maps are after the block's pooling (for the title).
    series : bool, default=False
        Whether they are the maps of a series (h = 1), drawn over time.

    Attributes
    ----------
    feature_maps_ : ndarray of shape (channels, h, w)
    layer_ : int
    pooled_ : bool
    series_ : bool
    tiles_ : ndarray of AxesImage of shape (channels,)
        For a series' maps (h = 1): one image, a row per channel over time.
    axes_ : ndarray of Axes of shape (rows, cols)
    figure_ : Figure
    bounding_ax_ : Axes or None
    """

    def __init__(self, feature_maps, layer=0, pooled=True, *, series=False):
        self.feature_maps_ = np.asarray(feature_maps)
        self.layer_ = layer
        self.pooled_ = pooled
        self.series_ = series

    @classmethod
    def from_estimator(cls, estimator, x, layer=0, *, pooled=True, ax=None, cmap="viridis"):
        """Plot the feature maps of image ``x`` after conv layer ``layer``.

        The maps are those of prediction (inference mode: batch norm with its
        running statistics).

        Parameters
        ----------
        estimator : fitted skconv estimator or Pipeline ending in one
        x : array-like of shape (n_features,), (h, w), (h, w, c) or a batch of one
            Also a DataFrame of one row, or one row of it as a pandas Series.
        layer : int, default=0
            Conv layers count from 0; -1 is the last.
        pooled : bool, default=True
            After the block's pooling (what the next block sees), or before it
            (at the convolution's resolution, after batch norm and activation).
        ax : Axes, array of Axes or None, default=None
        cmap : str, default='viridis'

        Returns
        -------
        display : FeatureMapDisplay
        """
        steps, estimator, network = _fitted_network(estimator, cls)
        block = _check_layer(layer, network)
        x = _one_image(x)
        if x.shape[0] != 1 or (steps is None
                               and np.prod(x.shape) != np.prod(estimator.input_shape_)):
            one = "series" if _is_series(estimator) else "image"
            raise ValueError(
                f"x must be one {one} of input_shape_={estimator.input_shape_} (or a flat "
                f"row of it); got an array of shape {x.shape[1:] if len(x) == 1 else x.shape}"
            )
        _, nchw = _images(steps, estimator, network, x)
        maps = _block_maps(network, nchw, _conv_blocks(network)[block], pooled)
        # an image model's maps of one row (1x1 after the last pooling) are still images
        return cls(maps[0], block, pooled, series=_is_series(estimator)).plot(ax=ax, cmap=cmap)

    def plot(self, ax=None, *, cmap="viridis"):
        """Draw the maps on one colour scale, from their minimum to their maximum.

        Parameters
        ----------
        ax : Axes, array of Axes or None, default=None
        cmap : str, default='viridis'

        Returns
        -------
        self : FeatureMapDisplay
        """
        maps = self.feature_maps_
        channels, h, w = maps.shape
        if self.series_:
            return self._plot_series(ax, cmap)
        rows, cols = _wrap(channels)
        fig, self.bounding_ax_, axes, holder = _grid(ax, rows, cols, "FeatureMapDisplay",
                                                     tile=0.9)
        self.figure_, self.axes_ = fig, axes
        lo, hi = float(maps.min()), float(maps.max())
        if hi <= lo:
            hi = lo + 1.0
        self.tiles_ = np.empty(channels, dtype=object)
        for c in range(channels):
            self.tiles_[c] = axes.flat[c].imshow(maps[c], cmap=cmap, vmin=lo, vmax=hi)
        for a in axes.flat:
            _bare(a)
        for a in axes.flat[channels:]:
            a.set_axis_off()
        when = "after pooling" if self.pooled_ else "before pooling"
        _title(holder,
               f"conv layer {self.layer_}: {channels} feature maps {h}x{w} ({when})")
        return self

    def _plot_series(self, ax, cmap):
        """A series' maps (one row each): one image, a row per channel over time."""
        maps = self.feature_maps_[:, 0]
        channels, length = maps.shape
        fig, self.bounding_ax_, axes, holder = _grid(ax, 1, 1, "FeatureMapDisplay", tile=6.0)
        self.figure_, self.axes_ = fig, axes
        self.tiles_ = np.array([axes[0, 0].imshow(maps, cmap=cmap, aspect="auto",
                                                  interpolation="nearest")], dtype=object)
        axes[0, 0].set_xlabel("time step", fontsize="small")
        axes[0, 0].set_ylabel("channel", fontsize="small")
        when = "after pooling" if self.pooled_ else "before pooling"
        _title(holder, f"conv layer {self.layer_}: {channels} feature maps over {length} "
                       f"time steps ({when})")
        return self


def _targets(estimator, outputs, target):
    """Per image: the output column and sign whose score is explained, and the target itself.

    A classifier's target is a class label (None: the predicted class) and its
    score the class's logit; a regressor's target is an output index (None: 0).
    """
    n, n_outputs = outputs.shape
    if is_classifier(estimator):
        classes = np.asarray(estimator.classes_)
        if target is None:
            if n_outputs == 1:  # one logistic unit for two classes
                idx = (outputs[:, 0] > 0).astype(int)
            else:
                idx = np.argmax(outputs, axis=1)
        else:
            # looked up as given: cast to classes_' dtype first, "yesss" would be
            # "yes" and 1.7 would be 1
            position = {label: i for i, label in enumerate(classes.tolist())}
            try:
                idx = np.array([position[label] for label in
                                np.broadcast_to(np.asarray(target), (n,)).tolist()], dtype=int)
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"target={target!r} must be a class label (or one per image) from "
                    f"classes_={classes!r}"
                ) from None
        if n_outputs == 1 and len(classes) == 2:
            # the logit of class 1 is the output, that of class 0 its negative
            return np.zeros(n, dtype=int), np.where(idx == 1, 1.0, -1.0), classes[idx]
        return idx, np.ones(n), classes[idx]
    cols = np.asarray(0 if target is None else target)
    if (cols.ndim > 1 or cols.size not in (1, n) or not np.issubdtype(cols.dtype, np.integer)
            or cols.min() < 0 or cols.max() >= n_outputs):
        raise ValueError(
            f"target={target!r} must be an output index from 0 to {n_outputs - 1} (or one "
            f"per image, {n} of them) for a regressor"
        )
    cols = np.broadcast_to(cols.reshape(-1), (n,)).astype(int)
    return cols, np.ones(n), cols


METHODS = ("gradient", "smoothgrad", "integrated_gradients")

_METHOD_TITLES = {"gradient": "saliency (gradient)", "smoothgrad": "SmoothGrad",
                  "integrated_gradients": "Integrated Gradients"}

# each method's own parameters and their defaults
_METHOD_PARAMS = {
    "gradient": {},
    "smoothgrad": {"n_samples": 50, "noise_level": 0.15},
    "integrated_gradients": {"baseline": 0.0, "steps": 50},
}


def _check_method(method, given, image_shape, dtype):
    """Validate ``method`` and its parameters; return them with the defaults filled in.

    ``given`` holds the parameters the caller set (None means unset). A
    parameter of another method is refused rather than ignored, so that
    ``steps=200`` with the default method does not silently do nothing.
    """
    if method not in _METHOD_PARAMS:
        raise ValueError(f"method={method!r} must be one of {', '.join(map(repr, METHODS))}")
    for name, value in given.items():
        if value is not None and name not in _METHOD_PARAMS[method]:
            owner = next(m for m, params in _METHOD_PARAMS.items() if name in params)
            raise ValueError(
                f"{name}={value!r} applies to method={owner!r} only, not to method={method!r}"
            )
    params = {name: (default if given[name] is None else given[name])
              for name, default in _METHOD_PARAMS[method].items()}
    if method == "smoothgrad":
        n_samples, noise_level = params["n_samples"], params["noise_level"]
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(
                f"n_samples={n_samples!r} must be a positive int: the noisy copies of each "
                "image whose gradients are averaged"
            )
        if not isinstance(noise_level, Real) or not 0 < noise_level < np.inf:
            raise ValueError(
                f"noise_level={noise_level!r} must be a positive number: the noise's standard "
                "deviation as a fraction of each image's value range (0.1 to 0.2 is usual)"
            )
    if method == "integrated_gradients":
        steps = params["steps"]
        if not isinstance(steps, Integral) or isinstance(steps, bool) or steps < 1:
            raise ValueError(
                f"steps={steps!r} must be a positive int: the points of the path from the "
                "baseline to the image at which the gradient is taken"
            )
        h, w, c = image_shape
        baseline = np.asarray(params["baseline"], dtype=float)
        shapes = [(h * w * c,), (h, w), (h, w, c), (1, h * w * c), (1, h, w), (1, h, w, c)]
        if h == 1:  # one series: (length, channels)
            shapes += [(w, c), (w,)] if c == 1 else [(w, c)]
        # one value is a number, also where the input is a single value
        if baseline.size != 1 and (baseline.size != h * w * c or baseline.shape not in shapes):
            shape = (w, c) if h == 1 else image_shape  # a series' own (length, channels)
            raise ValueError(
                f"baseline of shape {baseline.shape} must be a number or one "
                f"{'series' if h == 1 else 'image'} of input_shape_={shape} (or a flat row "
                "of it)"
            )
        if not np.all(np.isfinite(baseline)):
            raise ValueError("baseline must be finite")
        # NCHW, one image, broadcast over the batch
        baseline = np.broadcast_to(baseline.reshape(-1), (h * w * c,)).reshape(h, w, c)
        params["baseline"] = np.ascontiguousarray(baseline.transpose(2, 0, 1)[None], dtype=dtype)
    return params


def _attributions(network, x, dy, method, params, rng):
    """Per pixel and channel, what ``method`` credits to ``x`` for the score ``sum(dy * outputs)``.

    gradient: the gradient at x. smoothgrad: the mean gradient at ``n_samples``
    copies of x with Gaussian noise of standard deviation ``noise_level``
    times each image's value range (drawn by ``n_samples`` calls of
    ``standard_normal(x.shape)``, which is the bits of one call of shape
    ``(n_samples,) + x.shape``). integrated_gradients: ``(x - baseline)``
    times the mean gradient at ``steps`` points of the straight path from the
    baseline to x, at the midpoints ``(k + 1/2) / steps`` of its segments.
    """
    if method == "gradient":
        return _input_gradient(network, x, dy)
    total = np.zeros_like(x, dtype=np.float64)
    if method == "smoothgrad":
        n_samples = params["n_samples"]
        span = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))).astype(np.float64)
        sigma = params["noise_level"] * span[:, None, None, None]
        for _ in range(n_samples):
            # one copy's noise at a time: the memory of one batch, not n_samples of them
            noise = rng.standard_normal(x.shape)
            total += _input_gradient(network, (x + sigma * noise).astype(x.dtype), dy)
        return (total / n_samples).astype(x.dtype)
    steps, baseline = params["steps"], params["baseline"]
    delta = x - baseline
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += _input_gradient(network, (baseline + alpha * delta).astype(x.dtype), dy)
    return (delta * total / steps).astype(x.dtype)


class SaliencyDisplay:
    """Which pixels (or time steps) drive a prediction: a saliency map and Grad-CAM of
    each image or series.

    The saliency map shows, per pixel, how much the target's score owes to
    it, by one of three methods:

    - ``'gradient'`` (Simonyan et al., 2014): the gradient of the score with
      respect to the pixels. Cheap, and noisy: a ReLU network's gradient
      jumps from pixel to pixel.
    - ``'smoothgrad'`` (Smilkov et al., 2017, "SmoothGrad: removing noise by
      adding noise"): the gradient averaged over ``n_samples`` copies of the
      image with Gaussian noise added, whose standard deviation is
      ``noise_level`` times the image's value range. The jumps average out.
    - ``'integrated_gradients'`` (Sundararajan et al., 2017, "Axiomatic
      attribution for deep networks"): the gradient averaged along the
      straight path from a ``baseline`` image (all zeros by default: no ink)
      to the image, in ``steps`` points, times the image minus the
      baseline. The attributions add up to the score of the image minus
      that of the baseline, up to the path's discretisation.

    The map drawn is the absolute attribution, the maximum over channels.
    Grad-CAM (Selvaraju et al., 2017) weights the feature maps of a conv
    block by the mean gradient of the score with respect to them and keeps
    the positive part of the sum: where in the image that block found
    evidence for the target. All are taken on the prediction function
    (inference mode).

    For a model of series (``input_shape=(length, channels)``) each row of the
    figure is one series: its channels over time, each time step coloured by
    the Grad-CAM of the last conv layer (the class activation map over time
    that Wang, Yan and Oates 2017 draw for FCN: with global average pooling
    and no hidden layer, Grad-CAM is their CAM up to a positive factor),
    then the saliency over time, one curve per channel. The arrays then have
    no height: ``images_`` ``(n, length, channels)``, ``saliency_`` and
    ``gradcam_`` ``(n, length)``.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, c), or (n, length, channels) for series
    saliency : ndarray of shape (n, h, w), or (n, length)
    gradcam : ndarray of shape (n, h, w), (n, length) or None, default=None
    target : ndarray of shape (n,), default=None
    layer : int or None, default=None
        The conv layer of the Grad-CAM (for the title).
    y : ndarray of shape (n,), default=None
        The true labels (classifier) or values (regressor), for the titles.
    method : str, default='gradient'
        How the saliency was computed (for the title).
    regressor : bool, default=False
        Whether ``target`` holds a regressor's output indices (for the titles).
    series : bool, default=False
        Whether the samples are series, drawn over time.

    Attributes
    ----------
    images_ : ndarray of shape (n, h, w, c)
        The images (after a Pipeline's steps).
    saliency_ : ndarray of shape (n, h, w)
        ``max_c |attributions_[:, :, :, c]|`` per image.
    attributions_ : ndarray of shape (n, h, w, c) or None
        The signed attributions of ``method`` (set by ``from_estimator``).
    input_gradient_ : ndarray of shape (n, h, w, c) or None
        The gradient of the score at each image (set by ``from_estimator``):
        the attributions of ``'gradient'``. It is taken with respect to X as
        given (after a Pipeline's steps), in X's units: with ``input_scale``,
        the network's input gradient divided by it.
    gradcam_ : ndarray of shape (n, h, w) or None
        Grad-CAM at the input's resolution (bilinear upsampling), scaled to
        [0, 1] per image (all zeros where no evidence); None for a network
        without conv layers.
    target_ : ndarray of shape (n,)
        The class label (classifier) or output index (regressor) explained.
    y_ : ndarray of shape (n,) or None
        The true labels or values given.
    method_ : str
    layer_ : int or None
    axes_ : ndarray of Axes of shape (n, 3), or (n, 2) without Grad-CAM
        Per image: the image, its saliency, the image under its Grad-CAM.
        Series: (n, 2), the series coloured by its Grad-CAM and the saliency.
    image_tiles_, saliency_tiles_, gradcam_tiles_ : ndarray of AxesImage of shape (n,)
        ``gradcam_tiles_`` is None without Grad-CAM. Series: per series the
        list of its channels' lines, the list of its saliency curves, and the
        scatter of its time steps coloured by Grad-CAM.
    series_ : bool
    figure_ : Figure
    bounding_ax_ : Axes or None

    Notes
    -----
    Each method shows what the score is sensitive to, and a network's score
    is often sensitive to pixels that carry no evidence. On 12x16 images of
    noise where a bright blob in one corner decides the class (the tests'
    task), the plain gradient put about a third of its mass in the deciding
    quarter of the image, SmoothGrad about 0.43 (the noise's own influence
    on the logits stays), and Integrated Gradients from a blank baseline more
    than half of it for every image: it weighs each pixel's gradient by how
    far the pixel is from the baseline, and the noise is close to it. With
    no dense layer to read the background (``global_pool='max'``,
    ``hidden_layer_sizes=()``), SmoothGrad and Integrated Gradients both put
    more than half of it there for every image.
    """

    def __init__(self, images, saliency, gradcam=None, target=None, layer=None, *, y=None,
                 method="gradient", regressor=False, series=False):
        self.series_ = series
        self.images_ = np.asarray(images)
        self.saliency_ = np.asarray(saliency)
        self.gradcam_ = None if gradcam is None else np.asarray(gradcam)
        self.target_ = None if target is None else np.asarray(target)
        self.layer_ = layer
        self.y_ = None if y is None else np.asarray(y)
        self.method_ = method
        self.regressor_ = regressor
        self.input_gradient_ = None
        self.attributions_ = None

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, target=None, method="gradient",
                       n_samples=None, noise_level=None, baseline=None, steps=None,
                       random_state=None, layer=-1, ax=None, alpha=0.5):
        """Compute and plot the saliency and Grad-CAM of images X.

        Parameters
        ----------
        estimator : fitted skconv estimator or Pipeline ending in one
        X : array-like of shape (n, n_features), (n, h, w) or (n, h, w, c)
            A few images: one row of tiles each. Series: (n, length * channels),
            (n, length) or (n, length, channels).
        y : array-like of shape (n,) or (n, n_outputs), default=None
            The true labels (or regression targets) of X, shown beside the
            explained class: "explains 5 (true 0)". A multi-output
            regressor's targets or a multilabel indicator matrix may be given
            whole: each image shows its explained output's column.
        target : label, int, array-like of shape (n,) or None, default=None
            Classifier: the class whose logit is explained (None: the predicted
            class). Regressor: the output index (None: 0), whose network output
            is explained: for ``loss='poisson'`` the log of the prediction, so
            that Integrated Gradients' attributions add up to a log ratio.
        method : {'gradient', 'smoothgrad', 'integrated_gradients'}, default='gradient'
            How the saliency is computed; see the class description.
        n_samples : int, default=None
            ``'smoothgrad'``: the noisy copies of each image (50 if None).
        noise_level : float, default=None
            ``'smoothgrad'``: the noise's standard deviation as a fraction of
            each image's value range, ``max - min`` (0.15 if None; Smilkov et
            al. found 0.1 to 0.2 best).
        baseline : float or array-like of one image, default=None
            ``'integrated_gradients'``: the image the path starts from, in X's
            units after a Pipeline's steps (divided by ``input_scale`` as X is);
            a number fills every pixel (0.0 if None).
        steps : int, default=None
            ``'integrated_gradients'``: the points of the path at which the
            gradient is taken (50 if None).
        random_state : int, RandomState instance or None, default=None
            ``'smoothgrad'``: draws the noise; an int makes the maps
            reproducible.
        layer : int, default=-1
            The conv layer of the Grad-CAM; the last by default. A network
            without conv layers has no Grad-CAM: any other value is refused.
        ax : Axes, array of Axes or None, default=None
        alpha : float, default=0.5
            Opacity of the Grad-CAM over its image.

        Returns
        -------
        display : SaliencyDisplay
        """
        steps_before, estimator, network = _fitted_network(estimator, cls)
        params = _check_method(
            method, {"n_samples": n_samples, "noise_level": noise_level, "baseline": baseline,
                     "steps": steps}, _hwc(estimator), network.dtype)
        if random_state is not None and method != "smoothgrad":
            raise ValueError(
                f"random_state={random_state!r} applies to method='smoothgrad' only, not to "
                f"method={method!r}"
            )
        rng = check_random_state(random_state)
        blocks = _conv_blocks(network)
        # without conv layers there is no Grad-CAM, only the default layer's None
        block = _check_layer(layer, network) if blocks or layer != -1 else None
        images, x = _images(steps_before, estimator, network, X)
        n, h, w = len(x), images.shape[1], images.shape[2]
        scale = getattr(estimator, "input_scale", None)
        if scale is not None and method == "integrated_gradients":
            # given in X's units, as the images; the path runs in the network's
            params["baseline"] = params["baseline"] / params["baseline"].dtype.type(scale)
        grad = np.empty_like(x)
        attributions = grad if method == "gradient" else np.empty_like(x)
        gradcam = np.zeros((n, h, w)) if blocks else None
        outputs = np.concatenate([_forward(network, x[b]) for b in gen_batches(n, _CHUNK)])
        # a row of y per image: its true label, or the row of a multi-output
        # regressor's targets or of a multilabel indicator matrix (the explained
        # output's column is shown)
        rows_of_outputs = (not is_classifier(estimator)
                           or getattr(estimator, "out_activation_", None) == "logistic")
        if y is not None:
            y = np.asarray(y)
            per_output = (rows_of_outputs and y.ndim == 2
                          and y.shape == (n, outputs.shape[1]))
            if not (per_output or (y.ndim == 1 and len(y) == n)):
                shapes = (f"({n},) or ({n}, {outputs.shape[1]})" if rows_of_outputs
                          else f"({n},)")
                raise ValueError(
                    f"y must hold one true label per image, or one row of targets: {n} "
                    f"images, so y of shape {shapes}; got {y.shape}"
                )
        cols, signs, target_ = _targets(estimator, outputs, target)
        if y is not None and y.ndim == 2:
            y = y[np.arange(n), cols]
        dy = np.zeros_like(outputs)
        dy[np.arange(n), cols] = signs
        for b in gen_batches(n, _CHUNK):
            grad[b] = _input_gradient(network, x[b], dy[b])
            if method != "gradient":
                attributions[b] = _attributions(network, x[b], dy[b], method, params, rng)
            if blocks:
                gradcam[b] = _gradcam(network, x[b], dy[b], blocks[block], (h, w))
        if scale is not None:
            # gradients with respect to X, not X / input_scale (the attributions of
            # Integrated Gradients, a gradient times a difference, are the same in both)
            grad /= scale
            if method == "smoothgrad":
                attributions /= scale
        saliency = np.abs(attributions).max(axis=1)
        grad, attributions = grad.transpose(0, 2, 3, 1), attributions.transpose(0, 2, 3, 1)
        series = _is_series(estimator)
        if series:  # images of one row: the series themselves
            images, saliency, grad, attributions = (a[:, 0] for a in (images, saliency, grad,
                                                                      attributions))
            gradcam = None if gradcam is None else gradcam[:, 0]
        display = cls(images, saliency, gradcam, target_, block, y=y, method=method,
                      regressor=not is_classifier(estimator), series=series)
        display.input_gradient_ = grad
        display.attributions_ = attributions
        return display.plot(ax=ax, alpha=alpha)

    def _label(self, i):
        """The row's label: "explains 5 (true 0)", "explains 5", "explains output 1 (true 2.5)"."""
        what = f"output {self.target_[i]}" if self.regressor_ else f"{self.target_[i]}"
        if self.y_ is None:
            return f"explains {what}"
        true = self.y_[i]
        if self.regressor_ and isinstance(true, (Real, np.floating)):
            true = f"{true:.3g}"
        return f"explains {what} (true {true})"

    def plot(self, ax=None, *, alpha=0.5, cmap="hot"):
        """Draw one row per image: the image, its saliency, the image under its Grad-CAM.

        Each saliency tile has the colour scale ``(0, its maximum)``; the
        Grad-CAM ``(0, 1)`` with the ``'jet'`` colour map.

        Parameters
        ----------
        ax : Axes, array of Axes or None, default=None
        alpha : float, default=0.5
            Opacity of the Grad-CAM over its image.
        cmap : str, default='hot'
            Colour map of the saliency.

        Returns
        -------
        self : SaliencyDisplay
        """
        if getattr(self, "series_", False):
            return self._plot_series(ax, alpha)
        n = len(self.images_)
        cols = 2 if self.gradcam_ is None else 3
        fig, self.bounding_ax_, axes, _ = _grid(ax, n, cols, "SaliencyDisplay", tile=1.6)
        self.figure_, self.axes_ = fig, axes
        self.image_tiles_ = np.empty(n, dtype=object)
        self.saliency_tiles_ = np.empty(n, dtype=object)
        self.gradcam_tiles_ = None if self.gradcam_ is None else np.empty(n, dtype=object)
        for i in range(n):
            self.image_tiles_[i] = _show_image(axes[i, 0], self.images_[i])
            if self.target_ is not None:
                axes[i, 0].set_ylabel(self._label(i), fontsize="small")
            vmax = float(self.saliency_[i].max()) or 1.0
            self.saliency_tiles_[i] = axes[i, 1].imshow(self.saliency_[i], cmap=cmap,
                                                        vmin=0, vmax=vmax)
            if self.gradcam_ is not None:
                _show_image(axes[i, 2], self.images_[i])
                self.gradcam_tiles_[i] = axes[i, 2].imshow(self.gradcam_[i], cmap="jet",
                                                           alpha=alpha, vmin=0, vmax=1)
        for a in axes.flat:
            _bare(a)
        titles = ["image", _METHOD_TITLES[self.method_]]
        if self.gradcam_ is not None:
            titles.append("Grad-CAM" if self.layer_ is None
                          else f"Grad-CAM, conv layer {self.layer_}")
        for a, title in zip(axes[0], titles):
            a.set_title(title, fontsize="small")
        return self


    def _plot_series(self, ax, alpha):
        """One row per series: its channels over time with each step coloured by
        Grad-CAM (``'jet'``, 0 to 1), and the saliency of each channel over time."""
        n, length, channels = self.images_.shape
        fig, self.bounding_ax_, axes, _ = _grid(ax, n, 2, "SaliencyDisplay", tile=3.0)
        self.figure_, self.axes_ = fig, axes
        self.image_tiles_ = np.empty(n, dtype=object)
        self.saliency_tiles_ = np.empty(n, dtype=object)
        self.gradcam_tiles_ = None if self.gradcam_ is None else np.empty(n, dtype=object)
        steps = np.arange(length)
        attributions = (np.abs(self.attributions_) if self.attributions_ is not None
                        else self.saliency_[:, :, None])
        for i in range(n):
            series = self.images_[i]
            self.image_tiles_[i] = axes[i, 0].plot(steps, series, color="0.3", lw=0.8)
            if self.gradcam_ is not None:
                self.gradcam_tiles_[i] = axes[i, 0].scatter(
                    np.repeat(steps, channels), series.ravel(),
                    c=np.repeat(self.gradcam_[i], channels), cmap="jet", vmin=0, vmax=1,
                    s=6, alpha=max(alpha, 0.8), zorder=3)
            self.saliency_tiles_[i] = axes[i, 1].plot(steps, attributions[i], lw=0.9)
            axes[i, 1].set_ylim(bottom=0)
            if self.target_ is not None:
                axes[i, 0].set_ylabel(self._label(i), fontsize="small")
            for a in axes[i]:
                a.tick_params(labelsize="x-small")
                a.set_xlim(0, length - 1)
        axes[-1, 0].set_xlabel("time step", fontsize="small")
        axes[-1, 1].set_xlabel("time step", fontsize="small")
        cam = ("series" if self.gradcam_ is None else
               "Grad-CAM over time" + ("" if self.layer_ is None
                                       else f", conv layer {self.layer_}"))
        axes[0, 0].set_title(cam, fontsize="small")
        axes[0, 1].set_title(_METHOD_TITLES[self.method_] + (" per channel" if channels > 1
                                                             else ""), fontsize="small")
        return self


def _gradcam(network, x, dy, block, size):
    """Grad-CAM of conv ``block`` for NCHW ``x`` and output gradient ``dy``, shape (n,) + size.

    The feature maps are the block's before pooling (its convolution's
    resolution); each channel's weight is the mean gradient of the score with
    respect to the block's output. Pooling routes or spreads each output's
    gradient over its window without changing the sum, so this is Grad-CAM of
    the pre-pooling maps up to a constant factor, which the scaling to [0, 1]
    removes.
    """
    maps = _block_maps(network, x, block, pooled=False)
    out = _block_maps(network, x, block, pooled=True)
    weights = _input_gradient(network, out, dy, start=block.stop).mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkhw->nhw", weights, maps, dtype=np.float64), 0)
    cam = zoom(cam, (1, size[0] / cam.shape[1], size[1] / cam.shape[2]), order=1,
               mode="nearest", grid_mode=True)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)

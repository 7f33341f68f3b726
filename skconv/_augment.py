"""Random transforms for training batches: shifts, rotations, zooms and flips of
images; shifts, amplitude scaling and noise of series.

Three steps, each for the estimator to call:

1. :func:`check_augment` validates the ``augment`` parameter once per fit and
   returns it normalised (or None when it changes nothing).
2. :func:`draw_transforms` draws one transform per training image, once per
   epoch, from the fit's random state (all decisions and all randomness are
   here, in Python).
3. :func:`augment_batch` writes the transformed batch, fused with the batch
   gather: ``out[b] = T_k(x[k])`` for ``k = rows[b]``, in one pass of a Cython
   kernel (nogil, one image per OpenMP thread). Each output value comes from
   one thread and a fixed formula, so a seed gives the same bits for any
   number of threads.

A transform maps an image in this order: mirror left-right (``flip``), rotate
by ``angle`` degrees (counter-clockwise as displayed, rows pointing down) and
zoom by ``zoom`` about the image centre, then shift by ``(dy, dx)`` pixels
(down, right). Rotations and zooms sample bilinearly; every pixel that comes
from outside the image is zero. A transform without rotation or zoom copies
pixels exactly.

A series (an image of one row whose width is time) is shifted along time by
``dx`` steps (zero fill, as images), then multiplied by its ``amplitude``,
then gets Gaussian noise: these last two are numpy operations on the gathered
batch (:meth:`Transforms.finish`), the noise drawn from one generator per
epoch, batch after batch, so a seed gives the same bits.
"""

import numbers
import math

import numpy as np

from ._kernels import _augment
from ._engine import effective_n_threads

__all__ = ["check_augment", "draw_transforms", "augment_batch", "gather_images", "Transforms"]

AUGMENT_KEYS = ("shift", "rotate", "scale", "flip")
SERIES_AUGMENT_KEYS = ("shift", "scale", "noise")

# Shifts and flips are copies, bound by memory bandwidth: one more thread per
# this many bytes of the batch. A 64-image batch of 28x28 float32 (200 KB) is
# copied by one thread, so no parallel region is opened for ~20 us of copying.
_COPY_BYTES_PER_THREAD = 1 << 20


def check_augment(augment, image_shape=None, series=False, dtype=None):
    """Validate the ``augment`` parameter.

    Parameters
    ----------
    augment : None or dict
        For images, any of ``shift`` (int >= 0: the largest shift in pixels
        along each axis), ``rotate`` (real in [0, 180]: the largest rotation
        in degrees), ``scale`` (real in [0, 1): the largest relative zoom,
        e.g. 0.1 for zooms in [0.9, 1.1]) and ``flip`` (bool: mirror half of
        the images left-right). For series, any of ``shift`` (int >= 0: the
        largest shift in time steps, zero fill), ``scale`` (real in [0, 1):
        the largest relative change of amplitude) and ``noise`` (real >= 0:
        the standard deviation of Gaussian noise relative to each channel's
        own, over time).
    image_shape : tuple of int (c, h, w), optional
        When given, ``shift`` must be smaller than the height and the width
        (the length of a series), so that no sample can be shifted out of
        view entirely.
    series : bool, default=False
        The samples are series: images of one row whose width is time.
    dtype : numpy dtype, optional
        The model's: when given, ``noise`` must be finite in it, in which the
        noise is drawn and added.

    Returns
    -------
    spec : dict or None
        ``{"shift": int, "rotate": float, "scale": float, "flip": bool}``
        (series: ``{"shift": int, "scale": float, "noise": float, "series":
        True}``) with every key present, or None when ``augment`` is None or
        changes nothing (e.g. ``{}`` or ``{"shift": 0}``).

    Raises
    ------
    ValueError
        Naming the key and the value, for an unknown key or a bad value.
    """
    if augment is None:
        return None
    keys = SERIES_AUGMENT_KEYS if series else AUGMENT_KEYS
    what = "series" if series else "images"
    if not isinstance(augment, dict):
        raise ValueError(
            f"augment must be None or a dict with keys among {list(keys)}, got {augment!r}"
        )
    unknown = sorted(set(augment) - set(keys), key=repr)
    if unknown:
        other = "images" if series else "series"
        elsewhere = unknown[0] in (AUGMENT_KEYS if series else SERIES_AUGMENT_KEYS)
        raise ValueError(
            f"augment has unknown key {unknown[0]!r} (value {augment[unknown[0]]!r}) for "
            f"{what}; the keys are {list(keys)}"
            + (f" ({unknown[0]!r} is for {other})" if elsewhere else "")
        )
    nothing = ({"shift": 0, "scale": 0.0, "noise": 0.0, "series": True} if series
               else {"shift": 0, "rotate": 0.0, "scale": 0.0, "flip": False})
    spec = dict(nothing)
    unit = "time steps" if series else "pixels"

    shift = augment.get("shift", 0)
    if not _is_int(shift) or shift < 0:
        raise ValueError(f"augment['shift']={shift!r} must be an int >= 0 ({unit})")
    spec["shift"] = int(shift)
    if image_shape is not None and spec["shift"] > 0:
        h, w = image_shape[-2:]
        if series and spec["shift"] >= w:
            raise ValueError(
                f"augment['shift']={shift!r} can move a series of length {w} out of view; "
                f"it must be < {w}"
            )
        if not series and spec["shift"] >= min(h, w):
            raise ValueError(
                f"augment['shift']={shift!r} can move a {h}x{w} image out of view; "
                f"it must be < {min(h, w)}"
            )

    if not series:
        rotate = augment.get("rotate", 0.0)
        if not _is_real(rotate) or not 0 <= rotate <= 180:
            raise ValueError(
                f"augment['rotate']={rotate!r} must be a number of degrees in [0, 180]")
        spec["rotate"] = float(rotate)

    scale = augment.get("scale", 0.0)
    if not _is_real(scale) or not 0 <= scale < 1:
        largest = "change of amplitude" if series else "zoom"
        raise ValueError(
            f"augment['scale']={scale!r} must be a number in [0, 1) (the largest "
            f"relative {largest}, e.g. 0.1)"
        )
    spec["scale"] = float(scale)

    if series:
        noise = augment.get("noise", 0.0)
        if not _is_real(noise) or noise < 0:
            raise ValueError(
                f"augment['noise']={noise!r} must be a number >= 0 (the noise's standard "
                "deviation relative to each channel's, e.g. 0.05)"
            )
        if dtype is not None and noise > np.finfo(dtype).max:
            # cast to the model's dtype, the noise is infinite: every series NaN
            raise ValueError(
                f"augment['noise']={noise!r} is beyond {np.dtype(dtype).name}'s range, in "
                "which the noise is drawn (it is relative to each channel's standard "
                "deviation, e.g. 0.05)"
            )
        spec["noise"] = float(noise)
    else:
        flip = augment.get("flip", False)
        if not isinstance(flip, (bool, np.bool_)):
            raise ValueError(f"augment['flip']={flip!r} must be a bool")
        spec["flip"] = bool(flip)

    return None if spec == nothing else spec


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


class Transforms:
    """One random transform per image, as drawn by :func:`draw_transforms`.

    Attributes
    ----------
    shift : ndarray of shape (n, 2), dtype intp
        ``(dy, dx)`` of each image, in ``[-shift, shift]``.
    angle : ndarray of shape (n,)
        Degrees, in ``[-rotate, rotate]``.
    zoom : ndarray of shape (n,)
        In ``[1 - scale, 1 + scale]``; above 1 magnifies.
    flip : ndarray of shape (n,), dtype bool
    coef : ndarray of shape (n, 6) or None
        The affine map from output pixel ``(i, j)`` to its source point
        ``(r, q)``: ``r = coef[:, 0] * i + coef[:, 1] * j + coef[:, 2]``,
        ``q = coef[:, 3] * i + coef[:, 4] * j + coef[:, 5]``. None when no
        image is rotated or zoomed: then shifts and flips are exact copies.
    amplitude : ndarray of shape (n,) or None
        Series: the factor of each series' values (after the shift).
    noise : float
        Series: the noise's standard deviation relative to each channel's.
    noise_rng : numpy.random.Generator or None
        Draws the noise, batch after batch (shared by :meth:`take`'s batches).
    """

    amplitude, noise, noise_rng = None, 0.0, None

    def __init__(self, shift, angle, zoom, flip, image_shape):
        self.shift = np.ascontiguousarray(shift, dtype=np.intp)
        self.angle = np.asarray(angle, dtype=np.float64)
        self.zoom = np.asarray(zoom, dtype=np.float64)
        self.flip = np.asarray(flip, dtype=bool)
        self._flip_u8 = np.ascontiguousarray(self.flip, dtype=np.uint8)
        n = len(self.shift)
        if not (self.shift.shape == (n, 2) and self.angle.shape == self.zoom.shape
                == self.flip.shape == (n,)):
            raise ValueError(
                f"transform parameters of different lengths: shift {self.shift.shape}, "
                f"angle {self.angle.shape}, zoom {self.zoom.shape}, flip {self.flip.shape}"
            )
        if not (np.isfinite(self.angle).all() and (self.zoom > 0).all()
                and np.isfinite(self.zoom).all()):
            raise ValueError("transform angles must be finite and zooms finite and > 0")
        self.image_shape = tuple(image_shape)
        if (self.angle == 0).all() and (self.zoom == 1).all():
            self.coef = None
        else:
            self.coef = _affine_coefficients(self.shift, self.angle, self.zoom, self.flip,
                                             self.image_shape[-2:])

    def __len__(self):
        return len(self.shift)

    def take(self, positions):
        """The transforms of images ``positions``, in that order (a batch's own)."""
        batch = object.__new__(Transforms)
        batch.shift = np.ascontiguousarray(self.shift[positions])
        batch.angle, batch.zoom = self.angle[positions], self.zoom[positions]
        batch.flip = self.flip[positions]
        batch._flip_u8 = np.ascontiguousarray(self._flip_u8[positions])
        batch.image_shape = self.image_shape
        batch.coef = None if self.coef is None else np.ascontiguousarray(self.coef[positions])
        if self.amplitude is not None:
            batch.amplitude = self.amplitude[positions]
        batch.noise, batch.noise_rng = self.noise, self.noise_rng
        return batch

    def finish(self, out):
        """A series batch's amplitudes, then its noise, on the gathered ``out``
        (batch, c, 1, length): ``out * amplitude + noise * sigma * N(0, 1)``,
        sigma each channel's standard deviation over time."""
        if self.amplitude is not None:
            out *= self.amplitude.astype(out.dtype)[:, None, None, None]
        if self.noise:
            sigma = out.std(axis=(2, 3), keepdims=True)
            # float32 draws whatever the model's dtype: a float64 draw takes other
            # bits of the stream, and a float64 fit would add other noise than
            # the float32 fit it should reproduce
            draw = self.noise_rng.standard_normal(out.shape, dtype=np.float32)
            out += out.dtype.type(self.noise) * sigma * draw
        return out


def _affine_coefficients(shift, angle, zoom, flip, hw):
    """Per image, the affine map from an output pixel to its source point.

    The output pixel p = (i, j) comes from p - d before the shift, from
    c + M (p - d - c) before the rotation and zoom about the centre c, with
    M = R(-angle) / zoom, and from column w - 1 - q before the flip.
    """
    h, w = hw
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta) / zoom, np.sin(theta) / zoom
    # M = [[cos, sin], [-sin, cos]] (row, col): the inverse of a
    # counter-clockwise rotation on screen, rows pointing down
    py = cy + shift[:, 0]
    px = cx + shift[:, 1]
    coef = np.empty((len(shift), 6))
    coef[:, 0] = cos
    coef[:, 1] = sin
    coef[:, 2] = cy - (cos * py + sin * px)
    coef[:, 3] = -sin
    coef[:, 4] = cos
    coef[:, 5] = cx - (-sin * py + cos * px)
    # un-flip: q -> w - 1 - q
    coef[flip, 3:5] *= -1
    coef[flip, 5] = (w - 1) - coef[flip, 5]
    return coef


def draw_transforms(spec, n_images, image_shape, random_state):
    """Draw one transform per image from ``random_state``.

    Parameters
    ----------
    spec : dict or None
        As returned by :func:`check_augment`.
    n_images : int
        The number of training images: transform ``k`` is for image ``k``.
    image_shape : tuple of int (c, h, w)
    random_state : numpy.random.RandomState or numpy.random.Generator

    Returns
    -------
    transforms : Transforms or None
        None when ``spec`` is None (nothing is drawn).

    Notes
    -----
    The draws, in this order and only for the keys that are set: the shifts
    ``(dy, dx)`` (n_images x 2 integers in [-shift, shift]), the angles
    (uniform in [-rotate, rotate]), the zooms (uniform in [1 - scale,
    1 + scale]) and the flips (a uniform draw < 0.5 per image). So setting a
    key to 0 draws the same as leaving it out.
    """
    if spec is None:
        return None
    n = int(n_images)
    rng = random_state
    if not isinstance(rng, (np.random.RandomState, np.random.Generator)):
        raise ValueError(
            f"random_state must be a numpy RandomState or Generator, got {random_state!r}"
        )
    if spec.get("series"):
        return _draw_series_transforms(spec, n, image_shape, rng)
    shift = np.zeros((n, 2), dtype=np.intp)
    angle = np.zeros(n)
    zoom = np.ones(n)
    flip = np.zeros(n, dtype=bool)
    if spec["shift"]:
        s = spec["shift"]
        if isinstance(rng, np.random.Generator):
            shift[:] = rng.integers(-s, s + 1, size=(n, 2))
        else:
            shift[:] = rng.randint(-s, s + 1, size=(n, 2))
    if spec["rotate"]:
        angle = rng.uniform(-spec["rotate"], spec["rotate"], size=n)
    if spec["scale"]:
        zoom = rng.uniform(1 - spec["scale"], 1 + spec["scale"], size=n)
    if spec["flip"]:
        flip = rng.random(n) < 0.5
    return Transforms(shift, angle, zoom, flip, image_shape)


def _draw_series_transforms(spec, n, image_shape, rng):
    """:func:`draw_transforms` for series: the shifts along time (n integers in
    [-shift, shift]), the amplitudes (uniform in [1 - scale, 1 + scale]), then
    the seed of the epoch's noise, each only when its key is set."""
    def integers(low, high, size=None):
        if isinstance(rng, np.random.Generator):
            return rng.integers(low, high, size=size)
        return rng.randint(low, high, size=size)

    shift = np.zeros((n, 2), dtype=np.intp)
    if spec["shift"]:
        shift[:, 1] = integers(-spec["shift"], spec["shift"] + 1, size=n)
    transforms = Transforms(shift, np.zeros(n), np.ones(n), np.zeros(n, dtype=bool),
                            image_shape)
    if spec["scale"]:
        transforms.amplitude = rng.uniform(1 - spec["scale"], 1 + spec["scale"], size=n)
    if spec["noise"]:
        transforms.noise = spec["noise"]
        transforms.noise_rng = np.random.default_rng(int(integers(0, 2**31 - 1)))
    return transforms


def augment_batch(x, rows, transforms, out, n_threads=None):
    """Gather images ``rows`` of ``x`` into ``out``, each transformed.

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w), float32 or float64
        The training images; may be read-only or memory-mapped. Should be
        C-contiguous: otherwise it is copied at every call.
    rows : ndarray of shape (batch,), integer
        Images of ``x`` to take, each in ``[0, n)``.
    transforms : Transforms or None
        From :func:`draw_transforms` for the ``n`` images of ``x`` (image ``k``
        gets transform ``k``). None: a plain gather, ``np.take(x, rows, 0)``.
    out : ndarray of shape (batch, c, h, w), same dtype as ``x``, C-contiguous
        Written in full.
    n_threads : int, optional
        OpenMP threads; by default the OpenMP runtime's current maximum (so
        ``threadpoolctl`` limits apply), and for shifts and flips alone
        (copies) at most one per MiB of ``out``. Never more than ``batch``.

    Returns
    -------
    out : ndarray of shape (batch, c, h, w)
    """
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D array (n, c, h, w), got shape {np.shape(x)}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} of shape "
                         f"{rows.shape}")
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    n = x.shape[0]
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"rows must be in [0, {n}), got values in "
                         f"[{rows.min()}, {rows.max()}]")
    expected = (len(rows),) + x.shape[1:]
    if not (isinstance(out, np.ndarray) and out.shape == expected and out.dtype == x.dtype
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(
            f"out must be a writeable C-contiguous {x.dtype} array of shape {expected}, got "
            + (f"{out.dtype} of shape {out.shape}" if isinstance(out, np.ndarray)
               else repr(type(out)))
        )
    if transforms is None:
        return np.take(x, rows, axis=0, out=out)
    if len(transforms) != n or tuple(transforms.image_shape) != x.shape[1:]:
        raise ValueError(
            f"transforms were drawn for {len(transforms)} images of shape "
            f"{transforms.image_shape}; x has {n} of shape {x.shape[1:]}"
        )
    if len(rows) == 0:
        return out
    if transforms.coef is not None and max(x.shape[2:]) >= 2**31 - 1:
        # the bilinear kernel holds pixel coordinates in C ints
        raise ValueError(f"images of shape {x.shape[2:]} are too large to rotate or zoom")
    x = np.ascontiguousarray(x)
    if n_threads is None:
        n_threads = effective_n_threads()
        if transforms.coef is None:
            n_threads = min(n_threads, -(-out.nbytes // _COPY_BYTES_PER_THREAD))
    n_threads = max(1, min(int(n_threads), len(rows)))
    if transforms.coef is None:
        _augment.shift_flip_gather(x, rows, transforms.shift, transforms._flip_u8, out,
                                   n_threads)
    else:
        _augment.affine_gather(x, rows, transforms.coef, out, n_threads)
    if transforms.amplitude is not None or transforms.noise:
        transforms.take(rows).finish(out)  # transform k is image k's, finish's b is out[b]'s
    return out


# the dtypes the gather kernels read as stored; float16 is widened per batch
# (exactly) since C has no portable half type
_STORED_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float64))


def gather_images(src, rows, out, transforms=None, scale=None, n_threads=None):
    """Rows of X as stored -> a batch of transformed images, in one pass.

    Parameters
    ----------
    src : ndarray of shape (m, h * w * c), C-contiguous
        Rows in (h, w, c) order (flat images, or channels-last images
        flattened), uint8, uint16, float16, float32 or float64; may be a
        read-only memory map.
    rows : ndarray of shape (batch,), integer
        Rows of ``src`` to take, each in ``[0, m)``.
    out : ndarray of shape (batch, c, h, w), float32 or float64, C-contiguous
        Written in full: ``out[b]`` is row ``rows[b]`` cast to ``out.dtype``,
        divided by ``scale`` and transformed by entry ``b`` of ``transforms``.
    transforms : Transforms or None
        The batch's transforms (``Transforms.take``), one per image of ``out``.
    scale : float or None
        Each value is cast, then divided by ``out.dtype.type(scale)``; None
        divides by nothing.
    n_threads : int, optional
        As for :func:`augment_batch`.

    Returns
    -------
    out : ndarray of shape (batch, c, h, w)
        The same bits as :func:`augment_batch` on the images cast (and
        divided) as a whole first.
    """
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    if src.dtype == np.float16:
        src, rows = src[rows].astype(np.float32), np.arange(len(rows))
    if (not isinstance(src, np.ndarray) or src.ndim != 2 or src.dtype not in _STORED_DTYPES
            or not src.flags.c_contiguous):
        raise ValueError(f"src must be C-contiguous 2-D rows of {[str(t) for t in _STORED_DTYPES]}"
                         f" (or float16), got {getattr(src, 'dtype', type(src))} of shape "
                         f"{np.shape(src)}")
    n_c, h, w = out.shape[1:]
    if src.shape[1] != n_c * h * w or out.shape[0] != len(rows):
        raise ValueError(f"{len(rows)} rows of {src.shape[1]} values do not fill out of "
                         f"shape {out.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= src.shape[0]):
        raise ValueError(f"rows must be in [0, {src.shape[0]}), got values in "
                         f"[{rows.min()}, {rows.max()}]")
    if len(rows) == 0:
        return out
    if n_threads is None:
        n_threads = effective_n_threads()
        if transforms is None or transforms.coef is None:
            n_threads = min(n_threads, -(-out.nbytes // _COPY_BYTES_PER_THREAD))
    n_threads = max(1, min(int(n_threads), len(rows)))
    scale = 0.0 if scale is None else float(scale)
    if transforms is None:
        _augment.gather_rows(src, rows, scale, out, n_threads)
    elif transforms.coef is None:
        _augment.gather_shift_flip_rows(src, rows, scale, transforms.shift, transforms._flip_u8,
                                        out, n_threads)
    else:
        _augment.gather_affine_rows(src, rows, scale, transforms.coef, out, n_threads)
    return out if transforms is None else transforms.finish(out)

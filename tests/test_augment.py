"""Training-time augmentation: the parameter check, the draws and the fused gather kernel.

Oracles: numpy slicing for shifts and flips (exact), scipy.ndimage.affine_transform
(order=1, mode='grid-constant': bilinear, zeros outside) and a plain per-pixel loop
for rotations and zooms.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.ndimage import affine_transform

from skconv._augment import Transforms, augment_batch, check_augment, draw_transforms


def _images(n=6, c=2, h=9, w=11, dtype=np.float64, seed=0):
    return np.random.RandomState(seed).standard_normal((n, c, h, w)).astype(dtype)


def _run(x, rows, transforms, n_threads=None):
    out = np.full((len(rows),) + x.shape[1:], np.nan, dtype=x.dtype)
    return augment_batch(x, np.asarray(rows), transforms, out, n_threads=n_threads)


def _shift_flip_reference(img, dy, dx, flip):
    """img (c, h, w) mirrored left-right if flip, then shifted by (dy, dx), zero fill."""
    src = img[:, :, ::-1] if flip else img
    h, w = img.shape[1:]
    out = np.zeros_like(img)
    if abs(dy) < h and abs(dx) < w:
        out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            src[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _scipy_reference(img, dy, dx, angle, zoom, flip):
    """The documented transform through scipy: flip, rotate/zoom about the centre, shift."""
    h, w = img.shape[1:]
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    t = np.deg2rad(angle)
    m = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) / zoom
    offset = centre - m @ (centre + np.array([dy, dx]))
    src = img[:, :, ::-1] if flip else img
    return np.stack([affine_transform(ch, m, offset, order=1, mode="grid-constant", cval=0)
                     for ch in src])


def _loop_reference(img, coef):
    """Bilinear sampling at source (r, q) = affine(i, j), pixels outside read as zero."""
    c, h, w = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            r = coef[0] * i + coef[1] * j + coef[2]
            q = coef[3] * i + coef[4] * j + coef[5]
            r0, q0 = int(np.floor(r)), int(np.floor(q))
            fr, fq = r - r0, q - q0
            for rr, qq, wt in [(r0, q0, (1 - fr) * (1 - fq)), (r0, q0 + 1, (1 - fr) * fq),
                               (r0 + 1, q0, fr * (1 - fq)), (r0 + 1, q0 + 1, fr * fq)]:
                if 0 <= rr < h and 0 <= qq < w:
                    out[:, i, j] += wt * img[:, rr, qq]
    return out


# ------------------------------------------------------------------ the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flip", [False, True])
def test_shifts_and_flips_copy_pixels_exactly_with_zero_fill(dtype, flip):
    x = _images(n=1, h=5, w=7, dtype=dtype)
    pairs = [(dy, dx) for dy in range(-5, 6) for dx in range(-7, 8)]
    n = len(pairs)
    xs = np.repeat(x, n, axis=0)
    transforms = Transforms(pairs, np.zeros(n), np.ones(n), np.full(n, flip), xs.shape[1:])
    assert transforms.coef is None  # the exact-copy path
    out = _run(xs, np.arange(n)[::-1], transforms)
    for b, k in enumerate(np.arange(n)[::-1]):
        assert_array_equal(out[b], _shift_flip_reference(xs[k], *pairs[k], flip))


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("dy, dx", [(0, 0), (2, -1), (-3, 3)])
def test_rotations_and_zooms_match_scipy_bilinear_affine_transform(flip, dy, dx):
    x = _images(n=4)
    angle = np.array([0.0, 17.0, -33.5, 90.0])
    zoom = np.array([1.3, 1.0, 0.8, 1.1])
    n = len(x)
    transforms = Transforms(np.tile([dy, dx], (n, 1)), angle, zoom, np.full(n, flip),
                            x.shape[1:])
    rows = [2, 0, 3, 1, 2]
    out = _run(x, rows, transforms)
    for b, k in enumerate(rows):
        expected = _scipy_reference(x[k], dy, dx, angle[k], zoom[k], flip)
        assert_allclose(out[b], expected, rtol=1e-12, atol=1e-12)


def test_bilinear_kernel_matches_a_plain_loop_on_random_affine_maps():
    x = _images(n=3, c=3, h=6, w=5)
    rng = np.random.RandomState(1)
    transforms = Transforms(rng.randint(-2, 3, (3, 2)), rng.uniform(-40, 40, 3),
                            rng.uniform(0.7, 1.3, 3), [True, False, True], x.shape[1:])
    out = _run(x, [0, 1, 2], transforms)
    for k in range(3):
        assert_allclose(out[k], _loop_reference(x[k], transforms.coef[k]), rtol=1e-12,
                        atol=1e-13)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 6), (6, 1), (2, 2), (3, 8), (9, 4)])
def test_bilinear_kernel_matches_a_plain_loop_at_the_image_edges(h, w):
    # the kernel skips the tests for the columns whose four neighbours are all
    # inside: maps that put source points exactly on the last row or column
    # (quarter turns, zooms by 1 and 2), or on none of the grid, find its ends
    x = _images(n=1, c=2, h=h, w=w)
    rng = np.random.RandomState(h * 10 + w)
    angle = np.r_[0.0, 90.0, 180.0, -90.0, 0.0, 0.0, rng.uniform(-180, 180, 10)]
    zoom = np.r_[1.0, 1.0, 1.0, 1.0, 2.0, 0.5, rng.uniform(0.3, 3.0, 10)]
    n = len(angle)
    shift = rng.randint(-1, 2, (n, 2))
    shift[:4] = 0
    flip = rng.rand(n) < 0.5
    xs = np.repeat(x, n, axis=0)
    transforms = Transforms(shift, angle, zoom, flip, xs.shape[1:])
    out = _run(xs, np.arange(n), transforms)
    for k in range(n):
        assert_allclose(out[k], _loop_reference(xs[k], transforms.coef[k]), rtol=1e-12,
                        atol=1e-12)


def test_float32_bilinear_agrees_with_float64():
    x = _images(n=4, dtype=np.float64)
    rng = np.random.RandomState(2)
    transforms = Transforms(rng.randint(-2, 3, (4, 2)), rng.uniform(-20, 20, 4),
                            rng.uniform(0.9, 1.1, 4), [False] * 4, x.shape[1:])
    out32 = _run(x.astype(np.float32), [3, 2, 1, 0], transforms)
    out64 = _run(x, [3, 2, 1, 0], transforms)
    assert out32.dtype == np.float32
    assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)


def test_rotation_by_90_degrees_turns_the_image_counter_clockwise():
    x = _images(n=1, c=1, h=7, w=7)
    transforms = Transforms([[0, 0]], [90.0], [1.0], [False], x.shape[1:])
    out = _run(x, [0], transforms)
    assert_allclose(out[0, 0], np.rot90(x[0, 0]), atol=1e-12)


def test_zoom_above_one_magnifies_about_the_centre():
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 4, 5] = 1.0  # one pixel right of the centre
    out = _run(x, [0], Transforms([[0, 0]], [0.0], [2.0], [False], x.shape[1:]))
    assert out[0, 0, 4, 6] == 1.0  # twice as far from the centre
    assert out[0, 0, 4, 4] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_transforms_return_the_gathered_batch_exactly(dtype):
    x = _images(n=5, dtype=dtype)
    rows = [4, 0, 0, 2]
    identity = Transforms(np.zeros((5, 2)), np.zeros(5), np.ones(5), np.zeros(5, bool),
                          x.shape[1:])
    assert_array_equal(_run(x, rows, identity), x[rows])
    # image 1 rotated puts every image on the bilinear path; the others stay exact
    angle = np.zeros(5)
    angle[1] = 10.0
    mixed = Transforms(np.zeros((5, 2)), angle, np.ones(5), np.zeros(5, bool), x.shape[1:])
    assert mixed.coef is not None
    assert_array_equal(_run(x, rows, mixed), x[rows])
    assert_array_equal(_run(x, rows, None), x[rows])


@pytest.mark.parametrize("augment", [{"shift": 3, "flip": True},
                                     {"shift": 2, "rotate": 25, "scale": 0.2, "flip": True}])
def test_the_batch_is_the_same_bits_for_any_number_of_threads(augment):
    x = _images(n=64, c=3, h=12, w=10, dtype=np.float32)
    transforms = draw_transforms(check_augment(augment), 64, x.shape[1:],
                                 np.random.RandomState(3))
    rows = np.random.RandomState(4).permutation(64)[:37]
    results = [_run(x, rows, transforms, n_threads=t) for t in (1, 2, 3, 8)]
    for other in results[1:]:
        assert_array_equal(other, results[0])


def test_read_only_and_memory_mapped_inputs_are_accepted(tmp_path):
    x = _images(n=5, dtype=np.float32)
    transforms = draw_transforms(check_augment({"shift": 2, "rotate": 10}), 5, x.shape[1:],
                                 np.random.RandomState(0))
    expected = _run(x, [1, 3], transforms)
    read_only = x.copy()
    read_only.flags.writeable = False
    assert_array_equal(_run(read_only, [1, 3], transforms), expected)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    assert_array_equal(_run(mapped, [1, 3], transforms), expected)
    shift_only = draw_transforms(check_augment({"shift": 1, "flip": True}), 5, x.shape[1:],
                                 np.random.RandomState(0))
    assert_array_equal(_run(mapped, [4, 0], shift_only), _run(x, [4, 0], shift_only))


def test_augment_batch_refuses_bad_buffers_and_rows():
    x = _images(n=3, dtype=np.float32)
    transforms = draw_transforms({"shift": 1, "rotate": 0.0, "scale": 0.0, "flip": False}, 3,
                                 x.shape[1:], np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"rows must be in \[0, 3\)"):
        augment_batch(x, np.array([0, 3]), transforms, np.empty((2, 2, 9, 11), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        augment_batch(x, np.array([0, 1]), transforms, np.empty((2, 2, 9, 11)))
    with pytest.raises(ValueError, match="drawn for 3 images"):
        augment_batch(x[:2], np.array([0, 1]), transforms, np.empty((2, 2, 9, 11), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        augment_batch(x.astype(np.float16), np.array([0]), None,
                      np.empty((1, 2, 9, 11), np.float16))


# ------------------------------------------------------------------ the draws


@pytest.mark.parametrize("make_rng", [np.random.RandomState, np.random.default_rng])
def test_draws_are_reproducible_from_the_seed_and_stay_in_range(make_rng):
    spec = check_augment({"shift": 2, "rotate": 15, "scale": 0.1, "flip": True})
    a = draw_transforms(spec, 2000, (1, 28, 28), make_rng(7))
    b = draw_transforms(spec, 2000, (1, 28, 28), make_rng(7))
    for name in ("shift", "angle", "zoom", "flip", "coef"):
        assert_array_equal(getattr(a, name), getattr(b, name))
    assert set(np.unique(a.shift)) == {-2, -1, 0, 1, 2}
    assert np.abs(a.angle).max() <= 15 and np.abs(a.angle).max() > 14
    assert 0.9 <= a.zoom.min() and a.zoom.max() <= 1.1
    assert 0.45 < a.flip.mean() < 0.55


def test_keys_set_to_zero_draw_the_same_as_keys_left_out():
    a = draw_transforms(check_augment({"shift": 2, "rotate": 0, "scale": 0.0}), 50,
                        (1, 8, 8), np.random.RandomState(0))
    b = draw_transforms(check_augment({"shift": 2}), 50, (1, 8, 8), np.random.RandomState(0))
    assert_array_equal(a.shift, b.shift)
    assert a.coef is None and b.coef is None
    assert draw_transforms(None, 50, (1, 8, 8), np.random.RandomState(0)) is None


# ------------------------------------------------------------------ the parameter


def test_check_augment_fills_every_key_and_returns_none_when_nothing_changes():
    assert check_augment({"shift": 2}) == {"shift": 2, "rotate": 0.0, "scale": 0.0,
                                           "flip": False}
    assert check_augment({"rotate": np.float32(5), "flip": np.True_}) == {
        "shift": 0, "rotate": 5.0, "scale": 0.0, "flip": True}
    assert check_augment({"shift": np.int64(1)})["shift"] == 1
    for nothing in (None, {}, {"shift": 0}, {"flip": False, "scale": 0.0}):
        assert check_augment(nothing) is None


@pytest.mark.parametrize("augment, message", [
    ({"shfit": 2}, r"unknown key 'shfit' \(value 2\)"),
    ({"shift": -1}, r"augment\['shift'\]=-1"),
    ({"shift": 1.5}, r"augment\['shift'\]=1.5"),
    ({"shift": True}, r"augment\['shift'\]=True"),
    ({"rotate": -5}, r"augment\['rotate'\]=-5"),
    ({"rotate": 181}, r"augment\['rotate'\]=181"),
    ({"rotate": float("nan")}, r"augment\['rotate'\]=nan"),
    ({"rotate": "10"}, r"augment\['rotate'\]='10'"),
    ({"scale": 1.0}, r"augment\['scale'\]=1.0"),
    ({"scale": -0.1}, r"augment\['scale'\]=-0.1"),
    ({"flip": 1}, r"augment\['flip'\]=1"),
    ({"flip": "yes"}, r"augment\['flip'\]='yes'"),
    ([("shift", 2)], r"augment must be None or a dict"),
])
def test_check_augment_names_the_bad_key_and_value(augment, message):
    with pytest.raises(ValueError, match=message):
        check_augment(augment)


def test_check_augment_refuses_a_shift_that_moves_an_image_out_of_view():
    assert check_augment({"shift": 7}, image_shape=(1, 8, 9))["shift"] == 7
    with pytest.raises(ValueError, match=r"augment\['shift'\]=8 can move a 8x9 image"):
        check_augment({"shift": 8}, image_shape=(1, 8, 9))

"""The same bits for a row whatever batch, order, thread count or SIMD path computes it.

skconv's GEMM (``skconv/_kernels/gemm.h``) makes every output element one chain of
fused multiply-adds over the inner axis in a fixed order. These tests check the
property, not an accident of this machine's CPU: CI runs them again under
``OPENBLAS_CORETYPE=Haswell`` and ``SkylakeX`` so that a BLAS call creeping back
into ``fit`` or ``predict`` shows, and under every SIMD path this CPU runs.
"""

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import skconv
from skconv import ConvNetClassifier, ops
from skconv._kernels import _gemm
from skconv import _engine

AVAILABLE_PATHS = [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)]


@pytest.fixture(scope="module")
def digits300():
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0), y[:300]


def _fit(X, y, **params):
    est = ConvNetClassifier(conv_layers=(4, 8), hidden_layer_sizes=(16,), max_iter=2,
                            batch_size=64, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _reference_product(a, b):
    """The oracle: the same FMA chain in float64 numpy, one column at a time."""
    return a.astype(np.float64) @ b.astype(np.float64)


# ---------------------------------------------------------------------------- the GEMM


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", [
    (1, 1, 1), (5, 3, 2), (6, 16, 9), (7, 17, 3), (13, 33, 300),  # edges of every tile size
    (121, 40, 257), (9, 1537, 5),                                   # past MC, KC and NC
    (1, 100, 300), (2, 129, 7), (3, 1600, 2),                       # the one-row kernels
])
def test_gemm_matches_float64_reference_on_every_edge_and_block(simd_path, path, dtype, m, n, k):
    simd_path(path)
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    y = ops.linear(a, b, bias)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, _reference_product(a, b) + bias, rtol=tol, atol=tol * np.sqrt(k))


def test_gemm_output_element_is_one_fma_chain_in_order(simd_path):
    # The oracle is the chain itself, one step at a time: a float32 product is
    # exact in float64, so float32(float64 product + acc) is a fused
    # multiply-add (up to double rounding, which these inputs never hit). A
    # multiply then an add, another order or a tree reduction differ in the
    # last bits of most elements.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 50)).astype(np.float32) * 1e3
    b = rng.standard_normal((50, 5)).astype(np.float32)
    expected = np.zeros((3, 5), dtype=np.float32)
    for i in range(3):
        for j in range(5):
            acc = np.float32(0)
            for p in range(50):
                # a fused multiply-add in float32: exact product, one rounding
                acc = np.float32(np.float64(a[i, p]) * np.float64(b[p, j]) + np.float64(acc))
            expected[i, j] = acc
    for path in AVAILABLE_PATHS:
        simd_path(path)
        assert_array_equal(ops.linear(a, b), expected, err_msg=path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_bits_are_identical_on_every_simd_path_and_for_any_row_subset(simd_path, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((37, 300)).astype(dtype)
    b = rng.standard_normal((300, 45)).astype(dtype)
    results = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        y = ops.linear(a, b)
        for i in (0, 5, 36):
            assert_array_equal(ops.linear(a[i:i + 1], b)[0], y[i])
        results.append(y)
    for other in results[1:]:
        assert_array_equal(results[0], other)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", [(64, 128, 300), (5, 200, 7), (33, 17, 40), (1, 1000, 3)])
def test_gemm_bits_do_not_depend_on_the_grid_of_blocks_or_the_threads(simd_path, dtype, m, n, k):
    # _matmul_plan splits the columns too when the rows run out (a dense layer
    # at a batch of 64 on 16 threads): every grid gives every element's chain
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    for path in AVAILABLE_PATHS:
        simd_path(path)
        expected = _engine.matmul(a, b, bias, relu=True, plan=(1, 1, (1, _gemm.work_size(m, n, k))))
        for row_blocks, col_blocks, n_threads in [(1, 3, 1), (4, 4, 2), (2, 7, 2), (m, 1, 2),
                                                  (3, 1000, 2)]:
            work_shape = (n_threads, _gemm.work_size(m, n, k))
            y = _engine.matmul(a, b, bias, relu=True, plan=(row_blocks, col_blocks, work_shape))
            assert_array_equal(y, expected, err_msg=f"{path} {row_blocks}x{col_blocks}")
    np.testing.assert_allclose(expected, np.maximum(_reference_product(a, b) + bias, 0),
                               rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_gemm_reads_strided_and_read_only_operands():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 30))
    b = rng.standard_normal((60, 50))
    a.flags.writeable = False
    dx, dw, db = ops.linear_backward(b[:, :30].copy(), b[:, 5:45], a[:, :30])
    np.testing.assert_allclose(dw, b[:, 5:45].T @ b[:, :30], rtol=1e-12)
    np.testing.assert_allclose(dx, b[:, :30] @ a[:, :30].T, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, padding, dilation, stride", [
    ((3, 1, 28, 28), (6, 5, 5), 0, 1, 1),       # LeNet's first layer
    ((2, 6, 12, 12), (16, 5, 5), 0, 1, 1),      # and its second
    ((2, 32, 14, 14), (64, 3, 3), 1, 1, 1),     # a 16x16 padded plane: the channel stride is moved
    ((2, 3, 16, 16), (8, 3, 3), 1, 1, 1),       # tiles that start at each output row
    ((2, 3, 32, 32), (32, 3, 3), 1, 1, 1),      # wide's first layer: a last panel of 2 rows
    ((1, 2, 5, 5), (7, 3, 3), 1, 1, 1),         # ... of 1 row, an odd number of tiles
    ((2, 4, 15, 15), (5, 3, 3), 1, 1, 1),       # the same, each row's tile in part
    # a last panel of more than half the rows: a kernel of its rows (AVX2's 4 and
    # 5 of 6, AVX-512's 5, 6 and 7 of 8), the product then written straight into
    # the output where its tiles are the output's rows (16 filters on AVX2)
    ((2, 16, 32, 32), (16, 3, 3), 1, 1, 1),     # ResNet's 16 -> 16
    ((2, 3, 10, 10), (6, 3, 3), 1, 1, 1),
    ((2, 3, 9, 9), (11, 3, 3), 1, 1, 1),
    ((2, 3, 12, 12), (14, 3, 3), 1, 1, 1),
    ((2, 3, 9, 7), (7, 3, 2), (2, 1), (2, 1), 1),  # non-square, dilated, padding past the kernel
    ((1, 2, 1, 1), (3, 1, 1), 0, 1, 1),         # one pixel
    # strides: the padded image split by phase
    ((2, 16, 32, 32), (32, 3, 3), 1, 1, 2),     # ResNet's first downsampling
    ((2, 16, 16, 16), (32, 1, 1), 0, 1, 2),     # its projection shortcut
    ((2, 32, 16, 16), (64, 3, 3), 1, 1, 2),     # an odd phase plane (17 wide)
    ((2, 3, 9, 7), (7, 3, 2), (2, 1), (2, 1), (2, 3)),  # dilated, non-square strides
    ((1, 2, 11, 10), (5, 4, 3), (1, 0), 1, 3),  # a stride of 3, planes of unequal use
    ((1, 2, 1, 9), (3, 1, 8), (0, 3), 1, (1, 2)),  # a series: stride along time only
    # narrow tiles (AVX-512): ResNet's 8 x 8 maps (split tiles of two rows in
    # floats, 5 narrow tiles, two pairs and one alone, in doubles); 13 filters (a
    # panel of padding rows); 12 x 12 maps, 11 tiles; split tiles of 6 x 8 maps,
    # 3 (the last computed alone), and of 4 x 4 maps in doubles
    ((2, 64, 8, 8), (64, 3, 3), 1, 1, 1),
    ((2, 5, 8, 8), (13, 3, 3), 1, 1, 1),
    ((1, 3, 12, 12), (8, 3, 3), 1, 1, 1),
    ((2, 5, 6, 8), (13, 3, 3), 1, 1, 1),
    ((2, 3, 4, 4), (9, 3, 3), 1, 1, 1),
])
def test_implicit_convolution_has_the_bits_of_the_im2col_product(simd_path, monkeypatch, dtype,
                                                                  shape, kernel, padding, dilation,
                                                                  stride):
    # Inference reads the taps from the padded image instead of forming
    # im2col; training forms it (backward needs it). Both must be one chain
    # over the taps in order, so a row predicts the same as it trains.
    # (Winograd's product, which 64 -> 64 on 8 x 8 would take, has bits of its
    # own: tests/test_winograd2d.py)
    monkeypatch.setattr(_engine, "WINOGRAD2D_MIN_CHANNELS", 10**9)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((kernel[0], shape[1]) + kernel[1:]).astype(dtype)
    b = rng.standard_normal(kernel[0]).astype(dtype)
    n, f = shape[0], kernel[0]
    cols = ops.im2col(x, kernel[1:], stride=stride, padding=padding, dilation=dilation)
    cols = cols.reshape(n, -1, cols.shape[1]).transpose(0, 2, 1)  # (n, taps, positions)
    results = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        implicit = ops.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
        for i in range(n):
            product = _engine.matmul(w.reshape(f, -1), cols[i])  # skconv's GEMM, B packed
            assert_array_equal(implicit[i].reshape(f, -1), product + b[:, None], err_msg=path)
            alone = ops.conv2d(x[i:i + 1], w, None, stride=stride, padding=padding,
                               dilation=dilation)
            assert_array_equal(alone[0].reshape(f, -1), product, err_msg=path)
        results.append(implicit)
    for other in results[1:]:
        assert_array_equal(results[0], other)


@pytest.mark.skipif("avx512" not in AVAILABLE_PATHS, reason="narrow tiles are AVX-512's")
def test_small_maps_take_narrow_or_split_tiles_where_they_compute_fewer_columns(simd_path):
    simd_path("avx512")
    for dtype, narrow in ((np.float32, 16), (np.float64, 8)):
        # 8 x 8 outputs in rows of 10: 78 positions. float32's in split tiles,
        # rows 2t and 2t + 1 in tile t (its halves 10 apart): 64 columns, none
        # dropped; float64's in a tile of 8 a row rather than 5 of 16
        g = _engine.geometry((1, 64, 8, 8), (3, 3), 1, (1, 1), 1)
        layout = _engine.padded_image(g, 64, dtype)[0]
        full = len(_engine.tiles(8, 8, 10, 2 * narrow)[0]) * 2 * narrow
        assert layout.width == narrow and len(layout.starts) * narrow < full
        if dtype == np.float32:
            assert (layout.gap, layout.tile_row, list(layout.starts)) == (10, 8, [0, 20, 40, 60])
        else:
            assert layout.gap == 0 and len(layout.starts) * narrow == 64
        # 4 x 4 maps: split tiles for float64 (two rows of 4), narrow for float32
        g = _engine.geometry((1, 8, 4, 4), (3, 3), 1, (1, 1), 1)
        assert _engine.padded_image(g, 8, dtype)[0].gap == (6 if dtype == np.float64 else 0)
        # 32 x 32 outputs: a full tile a row, none wasted
        g = _engine.geometry((1, 16, 32, 32), (3, 3), 1, (1, 1), 1)
        layout = _engine.padded_image(g, 16, dtype)[0]
        assert layout.width == 2 * narrow and layout.gap == 0


@pytest.mark.parametrize("dw_transposed", [False, True], ids=["filter-rows", "tap-rows"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, padding, dilation, stride", [
    ((3, 1, 28, 28), (6, 5, 5), 0, 1, 1),
    ((2, 32, 14, 14), (64, 3, 3), 1, 1, 1),
    ((2, 3, 9, 7), (7, 3, 2), (2, 1), (2, 1), 1),
    # 27 taps: a last panel of 3 taps on every path
    ((2, 3, 10, 10), (32, 3, 3), 1, 1, 1),
    # 37 samples in 16 chunks of 2 or 3: chains that go on from sample to sample
    ((37, 6, 12, 12), (16, 5, 5), 0, 1, 1),
    # filters that one vector holds (the one-vector tap-rows tiles), and one filter
    ((3, 2, 9, 9), (3, 3, 3), 1, 1, 1),
    ((2, 1, 6, 6), (1, 3, 3), 0, 1, 1),
    # taps in runs of three (3x3 kernels, one vector of filters: the runs'
    # tiles): rows of 7, 5 and 6 positions, whose blocks of four consecutive
    # ones cross rows' ends; 27 taps (a last tile of three runs of six); a
    # row of one tap less, a kernel of one row, a dilation (no runs)
    ((2, 16, 9, 7), (16, 3, 3), 1, 1, 1),
    ((3, 3, 7, 5), (8, 3, 3), 1, 1, 1),
    ((2, 5, 6, 6), (12, 3, 3), 0, 1, 1),
    ((2, 4, 6, 13), (16, 3, 2), 1, 1, 1),
    ((2, 7, 1, 19), (16, 1, 3), (0, 1), 1, 1),
    ((2, 5, 8, 8), (16, 3, 3), 1, 2, 1),
    # strides: the taps read from the padded image's phase planes
    ((2, 16, 33, 33), (32, 3, 3), 0, 1, 2),
    ((2, 16, 16, 16), (32, 1, 1), 0, 1, 2),
    ((1, 2, 11, 10), (5, 4, 3), (1, 0), 1, (3, 2)),
    ((2, 3, 9, 7), (7, 3, 2), (2, 1), (2, 1), (2, 3)),
])
def test_weight_gradient_without_im2col_has_the_bits_of_the_im2col_product(
        simd_path, monkeypatch, dtype, shape, kernel, padding, dilation, stride, dw_transposed):
    # backward reads the taps from the padded input, as the product's columns
    # or (tap-rows) its rows; each element must still be one chain over the
    # chunk's samples and positions in order, the chunks then added in order
    # (32 -> 64 would take Winograd's gradients: test_winograd2d.py)
    monkeypatch.setattr(_engine, "dw_is_transposed", lambda *args: dw_transposed)
    monkeypatch.setattr(_engine, "WINOGRAD2D_GRADIENT_MIN_PRODUCT", 10**9)
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((kernel[0], shape[1]) + kernel[1:]).astype(dtype)
    y = ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    dy = rng.standard_normal(y.shape).astype(dtype)
    n, f = shape[0], kernel[0]
    cols = ops.im2col(x, kernel[1:], stride=stride, padding=padding, dilation=dilation)
    cols = cols.reshape(n, -1, cols.shape[1])  # (n, positions, taps)
    n_chunks = min(n, _engine.MAX_REDUCTION_CHUNKS)
    chunks = [range(i * n // n_chunks, (i + 1) * n // n_chunks) for i in range(n_chunks)]
    for path in AVAILABLE_PATHS:
        simd_path(path)
        _, dw, _ = ops.conv2d_backward(dy, x, w, stride=stride, padding=padding,
                                       dilation=dilation)
        per_chunk = [_engine.matmul(np.concatenate([dy[i].reshape(f, -1) for i in chunk], axis=1),
                                 np.concatenate([cols[i] for i in chunk]))
                     for chunk in chunks]
        assert_array_equal(dw.reshape(f, -1), np.sum(per_chunk, axis=0), err_msg=path)


def test_weight_gradient_of_taps_in_runs_has_a_product_of_its_own(simd_path):
    # the cases above reach the runs' tiles (not only the narrow ones) where
    # the path has them: AVX-512's, one vector of filters
    g = _engine.geometry((1, 16, 9, 7), (3, 3), 1, 1, 1)
    assert _engine.tap_run(g) == 3
    assert _engine.tap_run(_engine.geometry((1, 16, 9, 7), (3, 3), 2, 1, 1)) == 1  # a stride
    assert _engine.tap_run(_engine.geometry((1, 16, 9, 7), (3, 3), 1, 1, 2)) == 1  # a dilation
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for char, lanes in (("f", 16), ("d", 8)):
            plain = _gemm.tap_rows_tile(lanes, char)
            runs = _gemm.tap_rows_tile(lanes, char, 3)
            assert runs == ((18, lanes) if path == "avx512" else plain), (path, char)
            # more filters than a vector: the full tile, runs or not
            assert _gemm.tap_rows_tile(lanes + 1, char, 3) == _gemm.tap_rows_tile(lanes + 1, char)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, padding, stride", [
    ((2, 16, 33, 33), (32, 3, 3), 0, 2),       # ResNet's downsampling, 'same' padded
    ((2, 16, 16, 16), (32, 1, 1), 0, 2),       # its shortcut: phases no tap reads
    ((2, 3, 11, 10), (5, 4, 3), (1, 0), (3, 2)),
    ((2, 2, 5, 6), (3, 2, 2), 2, 2),           # padding past the kernel
])
def test_strided_input_gradient_is_the_same_bits_on_every_path_and_batch(
        simd_path, dtype, shape, kernel, padding, stride):
    # phase by phase, a convolution of dy by that phase's taps: one chain per
    # dx element, whatever the path or the sample's batch; w^T @ dy folded by
    # col2im in float64 to rounding
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((kernel[0], shape[1]) + kernel[1:]).astype(dtype)
    kw = dict(stride=stride, padding=padding)
    dy = rng.standard_normal(ops.conv2d(x, w, **kw).shape).astype(dtype)
    n, f = shape[0], kernel[0]
    results = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        dx, _, _ = ops.conv2d_backward(dy, x, w, **kw)
        for i in range(n):
            alone, _, _ = ops.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, **kw)
            assert_array_equal(alone[0], dx[i], err_msg=path)
        results.append(dx)
    for other in results[1:]:
        assert_array_equal(results[0], other)
    columns = dy.reshape(n, f, -1).transpose(0, 2, 1).astype(np.float64) @ w.reshape(f, -1)
    reference = ops.col2im(columns.reshape(-1, columns.shape[2]), shape, kernel[1:], **kw)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[0], reference, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, padding, dilation", [
    ((3, 1, 28, 28), (6, 5, 5), 0, 1),
    ((2, 32, 16, 16), (64, 3, 3), 1, 1),
    ((2, 16, 16, 16), (16, 3, 3), 1, 1),        # 16 channels: a last panel of 4 on AVX2
    ((2, 3, 9, 7), (7, 3, 2), (2, 1), (2, 1)),
])
def test_input_gradient_is_the_turned_convolution_of_dy_on_every_path_and_batch(
        simd_path, monkeypatch, dtype, shape, kernel, padding, dilation):
    # a stride-1 dx is conv2d(dy, w turned by 180 degrees with its channel axes
    # swapped, padded by the kernel's span less the padding): the same bits as
    # that convolution by the implicit product (not by Winograd's, which a
    # forward of 64 -> 32 channels would take), for a sample alone or in its
    # batch, on every path
    monkeypatch.setattr(_engine, "WINOGRAD2D_MIN_CHANNELS", 10**9)
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((kernel[0], shape[1]) + kernel[1:]).astype(dtype)
    dy = rng.standard_normal(ops.conv2d(x, w, padding=padding, dilation=dilation).shape).astype(dtype)
    turned = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    (ph, pw), (dh, dw) = [(v, v) if np.isscalar(v) else v for v in (padding, dilation)]
    full = (dh * (kernel[1] - 1) - ph, dw * (kernel[2] - 1) - pw)
    results = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        dx, _, _ = ops.conv2d_backward(dy, x, w, padding=padding, dilation=dilation)
        assert_array_equal(dx, ops.conv2d(dy, turned, padding=full, dilation=dilation), err_msg=path)
        for i in range(shape[0]):
            alone, _, _ = ops.conv2d_backward(dy[i:i + 1], x[i:i + 1], w, padding=padding,
                                             dilation=dilation)
            assert_array_equal(alone[0], dx[i], err_msg=path)
        results.append(dx)
    for other in results[1:]:
        assert_array_equal(results[0], other)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3, 300), (2, 4, 7), (3, 2, 512), (4, 5, 49)])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("tasks", ["a thread's share", "a channel"])
def test_batch_norm_has_the_same_bits_on_every_path_and_thread_count(simd_path, monkeypatch,
                                                                     dtype, shape, relu, tasks):
    # batchnorm.h compiles its loops once per path: rows longer than its chunk of
    # masked gradient (300), shorter than a block of lanes (7), with a few elements
    # past the last block (49), values at ReLU's 0; a task takes a thread's share
    # of the channels (these small maps') or as many as fit in L2 (here one)
    if tasks == "a channel":
        monkeypatch.setattr(_engine, "BATCH_NORM_GROUP_BYTES", 1)
        monkeypatch.setattr(_engine, "BATCH_NORM_MIN_RUN_BYTES", 0)
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) + 3).astype(dtype)
    x[0, 0, :3] = 0
    dy = rng.standard_normal(shape).astype(dtype)
    scale = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    shift = rng.standard_normal(shape[1]).astype(dtype)
    residual = rng.standard_normal(shape).astype(dtype)
    residual.flat[::5] = -0.0  # a batch norm's output of -0.0 plus -0.0 stays -0.0
    residual[-1, -1, -1] = np.nan
    bits = f"u{x.itemsize}"
    results = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for threads in (1, 2, 3):
            with threadpool_limits(limits=threads):
                y, x_hat = np.empty_like(x), np.empty_like(x)
                mean, var = _engine.batch_norm(x, scale, shift, 1e-5, y, x_hat, relu=relu)
                y_alone = np.empty_like(x)  # without x_hat, as the layer runs it
                assert_array_equal(_engine.batch_norm(x, scale, shift, 1e-5, y_alone, relu=relu),
                                   (mean, var))
                assert_array_equal(y_alone, y)
                # plus a residual (a residual block's addition, then the ReLU after
                # it): the bits of the addition applied to the batch norm's output
                plain = np.empty_like(x)
                _engine.batch_norm(x, scale, shift, 1e-5, plain)
                with_residual = np.empty_like(x)
                assert_array_equal(_engine.batch_norm(x, scale, shift, 1e-5, with_residual,
                                                      relu=relu, residual=residual), (mean, var))
                assert_array_equal(with_residual.view(bits),
                                   _engine.add(plain, residual, np.empty_like(x),
                                               relu=relu).view(bits))
                dx, dscale, dshift = np.empty_like(x), np.empty_like(scale), np.empty_like(scale)
                _engine.batch_norm_backward(dy, x, mean, var, scale, shift, 1e-5, dx, dscale,
                                            dshift, relu=relu)
                # without dx: the same sums
                sums = np.empty_like(scale), np.empty_like(scale)
                _engine.batch_norm_backward(dy, x, mean, var, scale, shift, 1e-5, None, *sums,
                                            relu=relu)
                assert_array_equal(sums[0], dscale)
                assert_array_equal(sums[1], dshift)
                if not relu:
                    # the gradient of a ReLU after the batch norm's addition, masked in
                    # place as the batch norm reads it: the bits of relu_backward first
                    masked = dy.copy()
                    _engine.relu_backward(masked, with_residual)
                    want = np.empty_like(x), np.empty_like(scale), np.empty_like(scale)
                    _engine.batch_norm_backward(masked, x, mean, var, scale, shift, 1e-5, *want)
                    g, got = dy.copy(), (np.empty_like(x), np.empty_like(scale),
                                         np.empty_like(scale))
                    _engine.batch_norm_backward(g, x, mean, var, scale, shift, 1e-5, *got,
                                                after=with_residual)
                    assert_array_equal(g.view(bits), masked.view(bits))
                    for a, b in zip(got, want):
                        assert_array_equal(a.view(bits), b.view(bits))
                if not relu:  # from x_hat itself (ops.batch_norm_backward): the same bits
                    given_x_hat = np.empty_like(x), np.empty_like(scale), np.empty_like(scale)
                    _engine.batch_norm_backward(dy, x_hat, None, var, scale, None, 1e-5,
                                                *given_x_hat)
                    for a, b in zip(given_x_hat, (dx, dscale, dshift)):
                        assert_array_equal(a, b)
                results.append((path, threads, y, x_hat, mean, var, dx, dscale, dshift))
    # the closed forms in float64 numpy
    x64 = x.astype(np.float64)
    mu, v = x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))
    ref_hat = (x64 - mu[:, None]) / np.sqrt(v[:, None] + 1e-5)
    ref_y = scale[:, None] * ref_hat + shift[:, None]
    g = dy * (ref_y > 0) if relu else dy.astype(np.float64)
    ref_y = np.maximum(ref_y, 0) if relu else ref_y
    count = shape[0] * shape[2]
    ref_dshift, ref_dscale = g.sum(axis=(0, 2)), (g * ref_hat).sum(axis=(0, 2))
    ref_dx = (scale / np.sqrt(v + 1e-5))[:, None] / count * (
        count * g - ref_dshift[:, None] - ref_hat * ref_dscale[:, None])
    tol = 1e-4 if dtype == np.float32 else 1e-10
    first = results[0]
    np.testing.assert_allclose(first[2], ref_y, atol=tol)
    np.testing.assert_allclose(first[3], ref_hat, atol=tol)
    np.testing.assert_allclose(first[4:6], (mu, v), rtol=1e-12)
    np.testing.assert_allclose(first[6], ref_dx, atol=tol)
    np.testing.assert_allclose(first[7:], (ref_dscale, ref_dshift), rtol=tol, atol=tol * count)
    for other in results[1:]:
        for a, b in zip(first[2:], other[2:]):
            assert_array_equal(a, b, err_msg=f"{other[:2]} vs {first[:2]}")


def test_batch_norm_variance_of_values_far_from_zero():
    # the sums are of x less the channel's first value: E[x^2] - E[x]^2 in double
    # would lose the variance of values a million from zero to cancellation
    rng = np.random.default_rng(5)
    x = (1e6 + rng.standard_normal((64, 2, 50))).astype(np.float32)
    scale, shift = np.ones(2, np.float32), np.zeros(2, np.float32)
    mean, var = _engine.batch_norm(x, scale, shift, 1e-5, np.empty_like(x))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-9)


# ---------------------------------------------------------------------------- the estimator


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_predict_proba_is_identical_in_one_call_row_by_row_shuffled_threaded_and_limited(
    digits300, dtype, batch_norm
):
    X, y = digits300
    model = _fit(X, y, dtype=dtype, batch_norm=batch_norm)
    proba = model.predict_proba(X)
    assert_array_equal(np.vstack([model.predict_proba(X[i:i + 1]) for i in range(len(X))]), proba)
    order = np.random.default_rng(0).permutation(len(X))
    assert_array_equal(model.predict_proba(X[order]), proba[order])
    with threadpool_limits(1):
        assert_array_equal(model.predict_proba(X), proba)
    chunks = np.array_split(np.arange(len(X)), 8)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(2):
            got = list(pool.map(lambda idx: model.predict_proba(X[idx]), chunks))
            assert_array_equal(np.vstack(got), proba)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_passes_run_at_once_give_the_bits_of_one_pass(digits300, dtype, monkeypatch):
    # many rows are predicted in passes of a few rows, one a thread: each row's
    # outputs the bits of one pass over all rows, whatever the threads and passes
    from skconv import _base, _network
    X, y = digits300
    model = _fit(X, y, dtype=dtype, batch_norm=True)
    proba, embedding = model.predict_proba(X), model.transform(X)
    network = model._network
    monkeypatch.setattr(_network, "_MIN_USES_PER_WEIGHT", 0)
    network.__dict__.pop("_weight_rows", None)
    for rows in (1, 7, 64):
        monkeypatch.setattr(_base, "_PASS_BYTES",
                            rows * network.largest_activation * network.params.itemsize)
        assert model._rows_per_pass() == rows
        for threads in (1, 2, 3):
            with threadpool_limits(threads):
                assert_array_equal(model.predict_proba(X), proba)
                assert_array_equal(model.transform(X), embedding)
                assert_array_equal(model.predict_proba(X.reshape(-1, 8, 8)[::-1]), proba[::-1])
    # NaN in a late pass is refused with validation's words, naming the row
    X_bad = X.copy()
    X_bad[251, 3] = np.nan
    with threadpool_limits(2), pytest.raises(ValueError, match="NaN"):
        model.predict_proba(X_bad)


@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda pid: ())(0)) < 2,
                    reason="binds threads only where the OS says which CPUs the process has")
def test_pass_workers_are_bound_one_to_a_cpu_where_there_are_enough():
    allowed = os.sched_getaffinity(0)

    def cpus_of_workers(threads):
        _engine._POOL["pid"] = -1  # a pool of its own
        pool = _engine._worker_pool(threads)
        barrier = threading.Barrier(threads)  # each on a worker of its own

        def where():
            barrier.wait(timeout=30)
            return os.sched_getaffinity(0)

        return [f.result() for f in [pool.submit(where) for _ in range(threads)]]

    bound = cpus_of_workers(2)
    assert all(len(cpus) == 1 and cpus <= allowed for cpus in bound)
    assert bound[0] != bound[1]
    assert all(cpus == allowed for cpus in cpus_of_workers(len(allowed) + 1))  # too few CPUs
    assert os.sched_getaffinity(0) == allowed  # the caller's own are left alone
    _engine._POOL["pid"] = -1


def test_run_passes_stops_at_the_first_error_and_raises_it():
    done = []

    def call(k):
        if k == 3:
            raise ValueError("pass 3")
        done.append(k)

    def items():
        for k in range(1000):
            yield (k,)

    with pytest.raises(ValueError, match="pass 3"):
        _engine.run_passes(call, items(), 2)
    assert 3 not in done and len(done) < 999

    def failing_items():
        yield (0,)
        raise OSError("unreadable block")

    with pytest.raises(OSError, match="unreadable"):
        _engine.run_passes(call, failing_items(), 2)
    # the workers left are the pool's, ready for the next call; a child
    # process after a fork gets a pool of its own
    _engine.run_passes(call, iter([(5,), (6,)]), 2)
    assert {5, 6} <= set(done)
    # each pass's kernels on one thread; the caller's limit is its own
    seen = []
    with threadpool_limits(2):
        before = _engine.effective_n_threads()  # 1 in a build without OpenMP
        _engine.run_passes(lambda k: seen.append(_engine.effective_n_threads()),
                           iter([(k,) for k in range(50)]), 2)
        assert seen == [1] * 50
        assert _engine.effective_n_threads() == before
    pool = _engine._worker_pool(2)
    _engine._POOL["pid"] = -1  # as in a child: the parent's threads are not there
    assert _engine._worker_pool(2) is not pool
    assert _engine._POOL["pid"] == os.getpid()
    pool.shutdown()


def test_run_passes_interrupted_in_its_callers_thread_stops_its_workers():
    # Ctrl-C during a long prediction reaches the calling thread only: the
    # workers must stop too, not go on through the passes left after it returned
    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    done = []

    def call(k):
        if k == 3:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        time.sleep(0.001)
        done.append(k)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with pytest.raises(Interrupted):
            _engine.run_passes(call, iter([(k,) for k in range(1000)]), 2)
            time.sleep(10)  # the signal lands here if it missed the call
        ran = len(done)
        time.sleep(0.05)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert len(done) == ran < 1000


def test_run_passes_from_many_threads_that_grow_the_pool_all_finish():
    # a call needing more workers replaces the pool while others hold it,
    # about to submit theirs: none may find it shut down
    def job(i):
        done = []
        _engine.run_passes(done.append, iter([(k,) for k in range(8)]), 2 + i % 4)
        return sorted(done)

    _engine._POOL["pid"] = -1
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(done == list(range(8)) for done in pool.map(job, range(2000)))
    _engine._POOL["pid"] = -1


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fit_gives_identical_weights_with_1_and_2_threads(digits300, batch_norm):
    X, y = digits300
    with threadpool_limits(1):
        one = _fit(X, y, batch_norm=batch_norm)
    with threadpool_limits(2):
        two = _fit(X, y, batch_norm=batch_norm)
    assert_array_equal(one._network.params, two._network.params)
    assert one.loss_curve_ == two.loss_curve_


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_residual_net_fits_the_same_bits_with_1_and_2_threads_and_on_every_path(
        simd_path, digits300, dtype):
    # a projection block of stride 2 after a convolution: the shortcut's input
    # gradient kept as its phase and added by the body's strided input gradient
    # (_engine.PhaseGradient), the body's stride-1 one along its weights'
    X, y = digits300
    fits = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for threads in (1, 2):
            est = ConvNetClassifier(
                conv_layers=(4, {"residual": [{"filters": 8, "stride": 2}, 8]}),
                batch_norm=True, global_pool="avg", hidden_layer_sizes=(), max_iter=2,
                batch_size=64, random_state=0, dtype=dtype)
            with threadpool_limits(threads), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X[:200], y[:200])
            fits.append((f"{path}, {threads} thread(s)", est._network.params.copy()))
    for name, params in fits[1:]:
        assert_array_equal(params, fits[0][1], err_msg=f"{name} vs {fits[0][0]}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_and_predict_are_identical_on_every_simd_path(simd_path, digits300, dtype):
    X, y = digits300
    fits = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        model = _fit(X[:200], y[:200], dtype=dtype, batch_norm=True)
        fits.append((path, model._network.params.copy(), model.predict_proba(X)))
    for path, params, proba in fits[1:]:
        assert_array_equal(params, fits[0][1], err_msg=f"{path} vs {fits[0][0]}")
        assert_array_equal(proba, fits[0][2], err_msg=f"{path} vs {fits[0][0]}")


def test_one_model_predicts_the_same_bits_as_the_simd_path_and_threads_change(
    simd_path, digits300
):
    # the network plans its kernel calls per SIMD path and thread count (a
    # product's scratch follows the path's tiles): a switch must not reuse a plan
    X, y = digits300
    model = _fit(X, y)
    proba = model.predict_proba(X)
    for path in AVAILABLE_PATHS + AVAILABLE_PATHS[::-1]:
        simd_path(path)
        for threads in (1, 2):
            with threadpool_limits(threads):
                assert_array_equal(model.predict_proba(X), proba, err_msg=path)
                assert_array_equal(model.predict_proba(X[:1]), proba[:1], err_msg=path)
    planned_paths = {key[-1][1] for key in model._network._fast_plans}
    assert planned_paths == set(AVAILABLE_PATHS)


# ---------------------------------------------------------------------------- the switch


def _run(code, **env):
    """Run ``code`` in a fresh interpreter that imports the skconv under test."""
    here = os.path.dirname(os.path.dirname(skconv.__file__))
    env = {**os.environ, "PYTHONPATH": here, **env}
    return subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


def test_skconv_simd_forces_a_path_and_show_config_reports_it():
    out = _run("import skconv; skconv.show_config()", SKCONV_SIMD="portable")
    assert out.returncode == 0, out.stderr
    assert "SIMD path: portable" in out.stdout


def test_skconv_simd_refuses_a_path_the_cpu_lacks_or_an_unknown_name():
    out = _run("import skconv", SKCONV_SIMD="sse9")
    assert out.returncode != 0 and "SKCONV_SIMD='sse9' is not one of" in out.stderr
    missing = [p for p in ops.SIMD_PATHS if p not in AVAILABLE_PATHS]
    if missing:
        out = _run("import skconv", SKCONV_SIMD=missing[0])
        assert out.returncode != 0 and "this CPU cannot run" in out.stderr


# ---------------------------------------------------------------------------- other CPUs


def _cpu_dependent_math_off():
    """The environment of a process whose numpy and C library compute exp and log
    as on another CPU: numpy's AVX-512 kernels off (an AVX2 machine's float64 exp
    and log) and glibc's FMA variants off (a CPU without FMA)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    wide = [f for f in __cpu_dispatch__
            if (f.startswith("AVX512") or f == "X86_V4") and __cpu_features__.get(f)]
    env = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-FMA,-AVX2_Usable,-FMA_Usable",
           "SKCONV_SIMD": "portable"}
    if wide:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(wide)
    return env


def test_output_activations_give_the_same_bits_where_numpy_and_libm_compute_other_ones(
    tmp_path, digits300
):
    # predict_proba's softmax and logistic, predict_log_proba and a Poisson
    # regressor's exp, computed again in a process whose numpy and C library
    # take the kernels of another CPU (their float64 exp and log differ in the
    # last bits there): skconv's own exp and log keep every bit. The functions
    # on logits of every size, and the estimators that call them.
    import pickle
    from skconv import ConvNetRegressor
    from skconv import _losses
    X, y = digits300
    single = _fit(X[:200], y[:200], dtype="float64")
    multi = _fit(X[:200], np.eye(10, dtype=int)[y[:200]] | (y[:200, None] % 2 == 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        poisson = ConvNetRegressor((4,), (8,), loss="poisson", max_iter=2,
                                   random_state=0).fit(X[:200], y[:200])
    z = np.random.default_rng(0).standard_normal((500, 10)) * 30
    functions = ["softmax", "log_softmax", "logistic", "log_logistic", "exponential"]
    outputs = [getattr(_losses, name)(z) for name in functions] + [
        single.predict_proba(X), single.predict_log_proba(X), multi.predict_proba(X),
        multi.predict_log_proba(X), poisson.predict(X)]
    with open(tmp_path / "models.pkl", "wb") as f:
        pickle.dump((single, multi, poisson, X, z), f)
    code = (
        "import pickle, numpy as np\n"
        "from skconv import _losses\n"
        f"single, multi, poisson, X, z = pickle.load(open({str(tmp_path / 'models.pkl')!r}, "
        "'rb'))\n"
        f"out = [getattr(_losses, name)(z) for name in {functions!r}] + [\n"
        "    single.predict_proba(X), single.predict_log_proba(X), multi.predict_proba(X),\n"
        "    multi.predict_log_proba(X), poisson.predict(X)]\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, np.concatenate([o.ravel() for o in out]))\n"
        "import skconv; skconv.show_config()\n"
    )
    env = _cpu_dependent_math_off()
    run = _run(code, **env)
    assert run.returncode == 0, run.stderr
    assert "SIMD path: portable" in run.stdout
    there = np.load(tmp_path / "out.npy")
    assert_array_equal(there, np.concatenate([o.ravel() for o in outputs]), err_msg=str(env))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_gives_the_same_weights_where_numpy_and_libm_compute_other_exp_and_log(
    tmp_path, digits300, dtype
):
    # the training losses' gradients (softmax and sigmoid cross-entropy) take
    # skconv's exp and log too: with numpy's, float64 weights followed the CPU
    import pickle
    X, y = digits300
    Y = np.c_[y % 2, y > 4, y == 3].astype(int)
    fitted = [_fit(X[:200], target[:200], dtype=dtype)._network.params for target in (y, Y)]
    with open(tmp_path / "data.pkl", "wb") as f:
        pickle.dump((X[:200], y[:200], Y[:200], dtype), f)
    code = (
        "import pickle, warnings, numpy as np\n"
        "from skconv import ConvNetClassifier\n"
        f"X, y, Y, dtype = pickle.load(open({str(tmp_path / 'data.pkl')!r}, 'rb'))\n"
        "warnings.simplefilter('ignore')\n"
        "out = [ConvNetClassifier(conv_layers=(4, 8), hidden_layer_sizes=(16,), max_iter=2,\n"
        "                         batch_size=64, random_state=0, dtype=dtype)\n"
        "       .fit(X, target)._network.params for target in (y, Y)]\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, np.concatenate(out))\n"
    )
    env = _cpu_dependent_math_off()
    run = _run(code, **env)
    assert run.returncode == 0, run.stderr
    assert_array_equal(np.load(tmp_path / "out.npy"), np.concatenate(fitted), err_msg=str(env))

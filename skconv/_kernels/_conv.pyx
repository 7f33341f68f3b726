from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from ._gemm cimport (gemm, gemm_tap_rows, gemm_tap_rows_packed, gemm_taps, gemm_work_size,
                     implicit_gemm, pack_panels_of, pack_tap_rows_b, panel_rows, product_rows,
                     simd_path, tile_width, BIAS_PER_ROW, NO_BIAS)
from ._batchnorm cimport skc_bn_dx_rows_d, skc_bn_dx_rows_s
from ._im2col cimport Geometry, im2col_sample, col2im_sample
from ._pool cimport (max_pool_2x2_backward_plane, max_pool_2x2_plane,
                     max_pool_2x2_positions, max_pool_2x2_row)
from ._reduce cimport fixed_order_sum
from ._rows cimport (skc_prefetch_l2, rows_merge, rows_out, rows_put, rows_split, rows_take,
                    rows_transpose_out)


cdef inline bint _phase_read(Py_ssize_t phase, Py_ssize_t k, Py_ssize_t dilation,
                             Py_ssize_t stride) noexcept nogil:
    """Whether a tap of the k along an axis reads that phase of the padded image
    (a 1x1 convolution of stride 2 reads one of four planes)."""
    cdef Py_ssize_t t
    if k >= stride:
        return True  # cheap and true for a dilation of 1
    for t in range(k):
        if t * dilation % stride == phase:
            return True
    return False


cdef inline void _copy_padded(
    const floating *x,                  # IN  (c, xh, xw): one sample
    Py_ssize_t xh, Py_ssize_t xw,       # at most g.h, g.w: rows and columns past them read as 0
    floating *img,                      # OUT the middle of its zero-padded image
    Py_ssize_t channel_stride,
    const Geometry *g,
    int path,                           # the SIMD path in use
) noexcept nogil:
    """Copy x into its padded image, whose borders stay as they are (zero). With a
    stride, each channel's padded plane is split by phase (see
    _engine.tap_offsets): padded row u, column v goes to plane (u % sh, v % sw),
    row u // sh, column v // sw, each plane (ceil(hp / sh), ceil(wp / sw)).
    An x smaller than g's input (the extra bottom row and right column of
    'same' padding at a stride) leaves the rest of the image as it is: zero."""
    cdef Py_ssize_t ci, r, q, b, a, count, col, at
    cdef Py_ssize_t wp = g.w + 2 * g.pw, hq = (g.h + 2 * g.ph + g.sh - 1) // g.sh
    cdef Py_ssize_t wq = (wp + g.sw - 1) // g.sw
    # a stride of 2 whose taps read both column phases: each row split into
    # them in one pass; x's even columns go to phase pw % 2 from column pw // 2,
    # its odd ones to the other from (pw + 1) // 2
    cdef bint split = (g.sw == 2 and _phase_read(0, g.kw, g.dw, 2)
                       and _phase_read(1, g.kw, g.dw, 2))
    cdef Py_ssize_t even_at = (g.pw % 2) * hq * wq + g.pw // 2
    cdef Py_ssize_t odd_at = ((g.pw + 1) % 2) * hq * wq + (g.pw + 1) // 2
    for ci in range(g.c):
        if g.sh == 1 and g.sw == 1:
            rows_out(x + ci * xh * xw, xw, NULL, NULL, 0, False, xh, xw,
                     img + ci * channel_stride + g.ph * wp + g.pw, wp, path)
            continue
        if split:
            for r in range(min(g.sh, xh)):
                a = (r + g.ph) % g.sh
                if _phase_read(a, g.kh, g.dh, g.sh):
                    # the row of padded row r + ph in its row phase's planes
                    at = ci * channel_stride + a * g.sw * hq * wq + (r + g.ph) // g.sh * wq
                    rows_split(x + (ci * xh + r) * xw, g.sh * xw, (xh - r + g.sh - 1) // g.sh,
                               (xw + 1) // 2, xw // 2, img + at + even_at, img + at + odd_at,
                               wq, path)
            continue
        # phase by phase: columns q of phase b = (q + pw) % sw go to column
        # (q + pw) // sw of its planes; the divisions once a phase, not a row
        for b in range(g.sw):
            if not _phase_read(b, g.kw, g.dw, g.sw):
                continue
            q = (b - g.pw) % g.sw
            if q < 0:
                q = q + g.sw
            if q >= xw:
                continue
            count = (xw - q + g.sw - 1) // g.sw
            col = (q + g.pw) // g.sw
            # padded row u = r + ph goes to row u // sh of the planes of row phase
            # u % sh: rows r, r + sh, ... of x are one plane's consecutive rows
            for r in range(min(g.sh, xh)):
                a = (r + g.ph) % g.sh
                if _phase_read(a, g.kh, g.dh, g.sh):
                    rows_take(x + (ci * xh + r) * xw + q, g.sh * xw, g.sw,
                              (xh - r + g.sh - 1) // g.sh, count,
                              img + ci * channel_stride + (a * g.sw + b) * hq * wq
                              + (r + g.ph) // g.sh * wq + col, wq, path)


def conv2d_forward_implicit(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w), h <= g.h and w <= g.w (see _copy_padded)
    const floating[:, ::1] w,           # IN  (f, c * kh * kw)
    floating[:, :, ::1] y,              # OUT (n, f, oh * ow), or (n, f, (oh // 2) * (ow // 2)) if pool2
    layout,                             # IN  _engine.ImplicitLayout: the taps' and tiles' places
    floating[::1] work,                 # scratch: w's panels, then per thread an image and a product
    Geometry g,                         # pool2: stride 1 (sh == sw == 1)
    int n_threads,
    *,
    b=None,                             # IN  (f,) of x's dtype, or None: no bias
    bint pool2=False,
    argmax=None,                        # OUT intp like y with pool2, or None
    bint relu=False,                    # max(., 0) after the bias (and the pooling)
    cols=None,                          # OUT (n, ckk, ohw) of x's dtype: im2col(x) too, or None
    residual=None,                      # IN  like y, not with pool2: added before the ReLU, or None
):
    """y[n] = w @ im2col(x[n]) + b (+ residual[n]), without forming im2col.

    x[n] is copied into the middle of a zero-padded image of width wp, split by
    phase into planes of width wq = ceil(wp / sw) for a stride (_copy_padded;
    _engine.tap_offsets); output (i, j) is then position q = i * wq + j of a
    product whose tap row p is the image read from offsets[p] on: every tap
    row is a shifted window of the one image. The product is computed in
    tiles of ``layout.width`` columns (the micro-kernel's, or its narrow
    tile's) starting at the positions ``layout.starts`` (_engine.padded_image
    picks both), which put output (i, j) in column i * tile_row + j; columns
    of positions j >= ow are computed and dropped. Split tiles (a
    ``layout.gap``) hold two output rows each: none is dropped. Each output is the chain of
    gemm's over the same taps in the same order, then + b: the bits of the
    im2col product's.

    With ``pool2``, y gets the 2x2 max pooling of stride 2 of that output
    instead (then max(., 0) with ``relu``), and argmax, unless None, each
    window's flat index in its output plane: the values and indices of
    _pool.max_pool2d_forward on the output, which is never written out.

    With ``cols``, im2col(x[n]) is written to ``cols[n]`` as well.

    With ``residual`` (a residual block's shortcut), the output is
    ``(w @ im2col(x[n]) + b) + residual[n]``, then the ReLU: the bits of
    writing the convolution out and adding the residual after.

    ``layout.parts`` > 1 (neither pool2 nor cols): each sample's tiles are cut
    into that many runs of consecutive tiles, the tasks of the parallel loop
    being (sample, run): fewer samples than threads (one long series) still
    keep every thread busy. Each task copies its sample into its thread's
    image and writes the outputs its tiles computed; every output is the same
    chain whichever task computes it.

    ``layout.by_position`` (an _engine.PositionLayout, or None), used without
    argmax or cols, in one part (as training's unpooled convolutions and
    inference's run): the product is computed the other way round, output
    positions by filters, each tile a few
    positions' taps (gemm_tap_rows: the taps' rows of the image read from the
    positions' starts) by a vector or two of filters, so that no column
    between two rows of a small map is computed (14 x 14 maps compute 16
    columns a row the other way) and a product of few taps (one channel's 3 x
    3) keeps the filters' tiles busy; each filter a lane, the 2x2 windows are
    then vector picks down its rows (max_pool_2x2_positions), and the pooled
    values are transposed into y's planes; unpooled, the product is
    transposed into them with the bias, residual and ReLU (rows_transpose_out).
    The same chains, sums and choices: the same bits.

    ``work`` holds panel_rows(f) * ckk elements, then for each thread
    padded_size + panel_rows(f) * n_tiles * NR (_gemm.output_rows,
    tile_shape), or with ``layout.by_position`` padded_size + the larger of
    that and the position product's (PositionLayout.size).
    """
    cdef const Py_ssize_t[::1] offsets = layout.offsets, starts = layout.starts
    cdef Py_ssize_t tile_row = layout.tile_row, channel_stride = layout.channel_stride
    cdef Py_ssize_t padded_size = layout.padded_size
    cdef const floating[::1] bias
    cdef Py_ssize_t[:, :, ::1] argmax_v
    cdef floating[:, :, ::1] cols_v
    cdef const floating[:, :, ::1] residual_v
    cdef bint has_bias = b is not None, need_argmax = argmax is not None
    cdef bint has_residual = residual is not None
    cdef bint keep_cols = cols is not None
    cdef int parts = 1 if pool2 or keep_cols else layout.parts
    if has_bias:
        bias = b
    if need_argmax:
        argmax_v = argmax
    if keep_cols:
        cols_v = cols
    if x.shape[2] > g.h or x.shape[3] > g.w or keep_cols and (x.shape[2], x.shape[3]) != (g.h, g.w):
        raise ValueError(f"x of {x.shape[2]} x {x.shape[3]} does not fit a geometry of "
                         f"{g.h} x {g.w}")
    if has_residual:
        if pool2:
            raise ValueError("a residual is added to an unpooled output only")
        residual_v = residual
    cdef Py_ssize_t task, n, tid, f, i, t0, t1, q0, q1, j0, j1
    cdef Py_ssize_t ow = g.ow, pooled_h = g.oh // 2, pooled_w = g.ow // 2
    cdef int nf = y.shape[1], ckk = offsets.shape[0], n_tiles = starts.shape[0]
    cdef bint dp = floating is double
    cdef int path = simd_path()
    cdef bint vector = path > 0
    cdef Py_ssize_t width = layout.width, gap = layout.gap
    cdef bint narrow = width != tile_width(dp)
    cdef Py_ssize_t ldc = <Py_ssize_t> n_tiles * width
    cdef Py_ssize_t panels_size = <Py_ssize_t> panel_rows(nf, dp) * ckk
    cdef Py_ssize_t per_thread = padded_size + <Py_ssize_t> panel_rows(nf, dp) * ldc
    by_position = layout.by_position
    cdef bint positions_first = (by_position is not None and not need_argmax and not keep_cols
                                 and parts == 1 and (pool2 or by_position.unpooled))
    cdef const Py_ssize_t[::1] positions
    cdef Py_ssize_t pos_rows = 0, pos_ldc = 0, pooled_rows = 0
    cdef floating *product
    cdef floating *pooled
    if by_position is not None:
        per_thread = padded_size + max(per_thread - padded_size, <Py_ssize_t> by_position.size)
        positions = by_position.positions
        pos_rows, pos_ldc, pooled_rows = by_position.rows, by_position.ldc, by_position.pooled_rows
        # w^T packed once for every sample's product, where A's panels would go
        panels_size = max(panels_size, <Py_ssize_t> pos_ldc * ckk)
    if work.shape[0] < panels_size + n_threads * per_thread:
        raise ValueError(f"work of {work.shape[0]} elements, {panels_size + n_threads * per_thread}"
                         " needed")
    # a filter's plane in y and in the residual, elements apart
    cdef Py_ssize_t y_ld = y.strides[1] // <Py_ssize_t> sizeof(floating)
    cdef Py_ssize_t res_ld = (residual_v.strides[1] // <Py_ssize_t> sizeof(floating)
                              if has_residual else 0)
    # where the product's columns are the output's own (tiles of a row each,
    # exactly ow wide) and its rows the filters (no panel of padding rows), it
    # is computed straight into y: the bias, residual and ReLU then go on in place
    cdef bint direct = (not pool2 and parts == 1 and product_rows(nf, narrow, dp) == nf
                        and tile_row == ow and ldc == g.oh * ow
                        and y.strides[1] == ldc * <Py_ssize_t> sizeof(floating))
    cdef bint epilogue = has_bias or relu or has_residual
    cdef Py_ssize_t sample_bytes = x.shape[1] * x.shape[2] * x.shape[3] * sizeof(floating)
    cdef floating *img
    cdef floating *wide
    cdef floating *row
    with nogil:
        if positions_first:
            pack_tap_rows_b(nf, ckk, &w[0, 0], 1, ckk, &work[0])
        else:
            pack_panels_of(nf, ckk, &w[0, 0], ckk, 1, &work[0])
        for tid in range(n_threads):
            # the borders stay zero: only the middle of an image is written
            memset(&work[panels_size + tid * per_thread], 0, padded_size * sizeof(floating))
        for task in prange(x.shape[0] * parts, schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            n = task // parts
            # this task's tiles, and the product's columns q0 ... q1 - 1 they compute
            t0 = (task % parts) * n_tiles // parts
            t1 = (task % parts + 1) * n_tiles // parts
            q0 = t0 * width
            q1 = t1 * width
            img = &work[panels_size + tid * per_thread]
            wide = img + padded_size
            _copy_padded(&x[n, 0, 0, 0], x.shape[2], x.shape[3], img, channel_stride, &g, path)
            if task % parts == 0 and n + n_threads < x.shape[0]:
                # the sample this thread likely takes next (see skc_prefetch_l2)
                skc_prefetch_l2(&x[n + n_threads, 0, 0, 0], sample_bytes)
            if positions_first:
                product = wide
                pooled = product + pos_rows * pos_ldc
                gemm_tap_rows_packed(g.oh * ow, nf, ckk, img, &positions[0], &offsets[0],
                                     &work[0], product, pos_ldc, True,
                                     pooled + pooled_rows * pos_ldc)
                if not pool2:
                    rows_transpose_out(product, pos_ldc, &bias[0] if has_bias else NULL,
                                       &residual_v[n, 0, 0] if has_residual else NULL, res_ld,
                                       relu, g.oh * ow, nf, &y[n, 0, 0], y_ld, path)
                    continue
                max_pool_2x2_positions(product, pos_ldc, pooled_h, pooled_w, ow, nf,
                                       &bias[0] if has_bias else NULL, relu, pooled, pos_ldc, path)
                rows_transpose_out(pooled, pos_ldc, NULL, NULL, 0, False, pooled_h * pooled_w, nf,
                                   &y[n, 0, 0], y_ld, path)
                continue
            if keep_cols:
                im2col_sample(x[n], cols_v[n], &g)
            if t1 > t0:
                implicit_gemm(nf, t1 - t0, &starts[t0], ckk, &work[0], img, &offsets[0],
                              (&y[n, 0, 0] if direct else wide) + q0, ldc, narrow, gap)
            for f in range(nf):
                if direct:
                    if epilogue:
                        rows_out(&y[n, f, 0], 0, &bias[f] if has_bias else NULL,
                                 &residual_v[n, f, 0] if has_residual else NULL, 0, relu, 1, ldc,
                                 &y[n, f, 0], 0, path)
                    continue
                if not pool2 and parts == 1:
                    # every output of the sample: one call a filter
                    rows_out(wide + f * ldc, tile_row, &bias[f] if has_bias else NULL,
                             &residual_v[n, f, 0] if has_residual else NULL, ow, relu, g.oh, ow,
                             &y[n, f, 0], ow, path)
                    continue
                if not pool2:
                    for i in range(g.oh):
                        # output (i, j) is column i * tile_row + j: those of these tiles
                        j0 = min(max(q0 - i * tile_row, 0), ow)
                        j1 = min(max(q1 - i * tile_row, 0), ow)
                        if j1 <= j0:
                            continue
                        row = wide + f * ldc + i * tile_row
                        rows_out(row + j0, 0, &bias[f] if has_bias else NULL,
                                 &residual_v[n, f, i * ow + j0] if has_residual else NULL, 0,
                                 relu, 1, j1 - j0, &y[n, f, i * ow + j0], 0, path)
                    continue
                # pooled while the output is in cache: the windows see the
                # values y would have held, bias added
                if not need_argmax:
                    max_pool_2x2_plane(wide + f * ldc, tile_row, pooled_h, pooled_w,
                                       &bias[f] if has_bias else NULL, relu,
                                       &y[n, f, 0], path)
                    continue
                for i in range(pooled_h):
                    row = wide + f * ldc + 2 * i * tile_row
                    max_pool_2x2_row(row, row + tile_row, pooled_w, 2 * i * ow, ow,
                                     &bias[f] if has_bias else NULL, relu, &y[n, f, i * pooled_w],
                                     &argmax_v[n, f, i * pooled_w] if need_argmax else NULL,
                                     vector)


cdef inline void _bias_gradient(
    const floating *dy,                 # IN  (f, positions): one sample's output gradient
    Py_ssize_t nf, Py_ssize_t positions,
    bint first,                         # the first sample of its chunk
    floating[::1] db,                   # IN/OUT (f,): the chunk's sum
) noexcept nogil:
    """The chunk's db += dy summed over positions."""
    cdef Py_ssize_t f
    cdef floating s
    for f in range(nf):
        s = fixed_order_sum(dy + f * positions, positions)
        db[f] = s if first else db[f] + s


cdef _check_scratch(floating[:, ::1] work, int n_threads, Py_ssize_t size):
    """Refuse scratch smaller than the products of n_threads threads write:
    a buffer sized for another orientation of a product would be overrun."""
    if work.shape[0] < n_threads or work.shape[1] < size:
        raise ValueError(f"work of shape ({work.shape[0]}, {work.shape[1]}), the products need "
                         f"({n_threads}, {size})")


def conv2d_backward(
    const floating[:, :, ::1] dy,       # IN  (n, f, oh * ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const floating[:, ::1] w,           # IN  (f, c * kh * kw)
    floating[:, :, ::1] dw_part,        # OUT (n_chunks, f, ckk), or (n_chunks, ckk, f) if dw_transposed
    floating[:, ::1] db_part,           # OUT (n_chunks, f)
    floating[:, :, ::1] cols,           # IN/OUT (n, ckk, ohw) if have_cols, else scratch (n_threads, ...)
    floating[:, ::1] work,              # scratch (n_threads, gemm work size)
    Geometry g,
    int n_threads,
    *,
    dx=None,                            # OUT (n, c, h, w) of x's dtype, or None: no dx
    bint have_cols=False,
    bint dw_transposed=False,
):
    """Gradients of a convolution, by im2col and col2im, one sample at a time.

    ``dw_transposed`` picks which of dw's axes the GEMM's rows run over (the
    caller takes the one that fills the micro-kernel's tile better); either
    way each element is the same chain, so the bits are the same.

    With ``have_cols``, ``cols[n]`` already holds im2col(x[n]) (kept by the
    forward pass) and is not recomputed; once dw has used it, it is
    overwritten by the gradient of the columns.

    The batch is cut into ``n_chunks`` contiguous chunks that depend only on
    the batch size; each chunk sums its own dw and db in sample order, and the
    caller adds the chunk sums in chunk order. So the result is the same bits
    whatever the number of threads.
    """
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = dw_part.shape[0]
    cdef Py_ssize_t ci, n, start, stop, slot, tid
    cdef int nf = w.shape[0], ohw = g.oh * g.ow, ckk = g.c * g.kh * g.kw
    cdef bint need_dx = dx is not None
    cdef floating[:, :, :, ::1] dx_v
    if need_dx:
        dx_v = dx
    _check_scratch(work, n_threads, max(
        gemm_work_size(ckk, nf, ohw) if dw_transposed else gemm_work_size(nf, ckk, ohw),
        gemm_work_size(ckk, ohw, nf) if need_dx else 0))
    if cols.shape[0] < (n_samples if have_cols else n_threads) or cols.shape[1] * cols.shape[2] < ckk * ohw:
        raise ValueError("cols is too small for the convolution's columns")
    with nogil:
        for ci in prange(n_chunks, schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            slot = tid
            start = ci * n_samples // n_chunks
            stop = (ci + 1) * n_samples // n_chunks
            for n in range(start, stop):
                if have_cols:
                    slot = n
                else:
                    im2col_sample(x[n], cols[slot], &g)
                # dw (f, ckk) += dy[n] (f, ohw) @ cols^T (ohw, ckk), or its
                # transpose: one chain over the chunk's samples and positions
                if dw_transposed:
                    gemm(ckk, nf, ohw, &cols[slot, 0, 0], ohw, 1, &dy[n, 0, 0], 1, ohw,
                         &dw_part[ci, 0, 0], nf, n != start, NULL, NO_BIAS, &work[tid, 0])
                else:
                    gemm(nf, ckk, ohw, &dy[n, 0, 0], ohw, 1, &cols[slot, 0, 0], 1, ohw,
                         &dw_part[ci, 0, 0], ckk, n != start, NULL, NO_BIAS, &work[tid, 0])
                _bias_gradient(&dy[n, 0, 0], nf, ohw, n == start, db_part[ci])
                if need_dx:
                    # dx[n] = col2im(w^T @ dy[n])
                    gemm(ckk, ohw, nf, &w[0, 0], 1, ckk, &dy[n, 0, 0], ohw, 1, &cols[slot, 0, 0],
                         ohw, False, NULL, NO_BIAS, &work[tid, 0])
                    col2im_sample(cols[slot], dx_v[n], &g)


# The shape of an input gradient's product (see _transposed_sample): dx's
# channels, the taps, the tiles and their width, the product's columns between
# two output rows and its row length, the padded image's channel stride and
# size, narrow tiles, split tiles' gap; whether the product goes straight into dx
# (tiles of exactly a row each, no panel of padding rows).
ctypedef struct DxLayout:
    int channels, taps, tiles
    Py_ssize_t width, tile_row, ldc, channel_stride, padded_size
    bint narrow
    Py_ssize_t gap
    bint direct


cdef inline void _transposed_sample(
    const floating *dy,                 # IN  (f, oh, ow): one sample's output gradient
    const Geometry *gt,                 # the convolution of dy that gives dx (its input is dy)
    const DxLayout *dl,
    const floating *panels,             # IN  the turned weights' panels (pack_panels_of)
    const Py_ssize_t *starts,           # IN  (dl.tiles,)
    const Py_ssize_t *offsets,          # IN  (dl.taps,)
    floating *img,                      # scratch: the padded image (borders zero), the product
    const floating *res,                # IN  (c, h, w), or NULL: no residual
    floating *dx,                       # OUT (c, h, w)
    int path,
) noexcept nogil:
    """One sample's input gradient, conv2d_forward_implicit's product of its dy by
    the turned weights (no bias, no ReLU, one part), then + res: the same chains
    and sums, so the bits of _engine.transposed_convolution's."""
    cdef Py_ssize_t ci, hw = gt.oh * gt.ow
    cdef floating *product = img + dl.padded_size
    cdef bint direct = dl.direct
    _copy_padded(dy, gt.h, gt.w, img, dl.channel_stride, gt, path)
    implicit_gemm(dl.channels, dl.tiles, starts, dl.taps, panels, img, offsets,
                  dx if direct else product, dl.ldc, dl.narrow, dl.gap)
    for ci in range(dl.channels):
        if not direct:
            rows_out(product + ci * dl.ldc, dl.tile_row, NULL,
                     res + ci * hw if res != NULL else NULL, gt.ow, False, gt.oh, gt.ow,
                     dx + ci * hw, gt.ow, path)
        elif res != NULL:
            rows_out(dx + ci * hw, 0, NULL, res + ci * hw, 0, False, 1, hw, dx + ci * hw, 0, path)


def conv2d_backward_implicit(
    const floating[:, :, ::1] dy,       # IN  (n, f, oh * ow), or (n, f, (oh // 2) * (ow // 2)) if unpool
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w), h <= g.h and w <= g.w (see _copy_padded)
    layout,                             # IN  _engine.ImplicitLayout: the taps' places
    const Py_ssize_t[::1] positions,    # IN  (oh * ow,): each output's offset from a tap's start
    floating[:, :, ::1] dw_part,        # OUT (n_chunks, f, ckk), or if dw_transposed (n_chunks, ckk, f)
                                        #     rounded up to the whole tiles of
                                        #     _gemm.tap_rows_tile(f, dtype, tap_run)
    floating[:, ::1] db_part,           # OUT (n_chunks, f), or None: no bias gradient
    floating[:, ::1] images,            # scratch (n_threads, padded image size)
    floating[:, ::1] work,              # scratch (n_threads, gemm work size)
    Geometry g,                         # with argmax: stride 1 (sh == sw == 1)
    int n_threads,
    *,
    bint dw_transposed=False,
    int tap_run=1,                      # with dw_transposed: the taps' runs (_engine.tap_run)
    argmax=None,                        # IN  intp of dy's shape: the 2x2 pooling's argmax, or None
    relu_y=None,                        # IN  with argmax: the pooled output after a ReLU, or None
    planes=None,                        # scratch with argmax: (n_threads, f * oh * ow)
    input_gradient=None,                # _engine.InputGradient, or None: dw and db only
    formed=None,                        # _engine.BatchNormGradient whose g is dy, or None
):
    """The weight and bias gradients of a stride-1 convolution, without im2col.

    dw = dy @ im2col(x)^T reads im2col(x)^T straight from the zero-padded
    image, as conv2d_forward_implicit reads im2col(x): its element (q, tap)
    is the image at offsets[tap] + positions[q]. The product runs over the
    positions in order, so each dw element is the chain of conv2d_backward's.
    With ``dw_transposed`` it computes dw^T = im2col(x) @ dy^T instead, the
    taps as the product's rows, which the micro-kernel reads in the image
    (gemm_tap_rows): only dy is packed. Same chains, same bits.
    Chunks and their order as in conv2d_backward: the bits do not depend on
    the threads. (The input gradient is a convolution of its own:
    ops._transposed_convolution.)

    With ``argmax``, dy is the gradient of the 2x2 max pooling (stride 2) of
    the output, then of the ReLU after it if relu_y is not None: each
    sample's output gradient is formed in ``planes`` by that pooling's
    backward (max_pool_2x2_backward_plane) while this one reads it, the bits
    of _pool.max_pool2d_2x2_backward's, never written out for the batch.

    With ``input_gradient`` (not with argmax), each sample's input gradient
    too, right after its part of dw, while its dy is in cache:
    _engine.transposed_convolution's product, into ``input_gradient.dx``
    (_transposed_sample), with its residual added unless None.

    With ``formed`` (not with argmax), the output's gradient is the input
    gradient of the batch norm after the convolution, of which dy is the
    batch norm's output gradient (``formed.g``): each sample's is formed in
    ``planes`` from dy and the batch norm's input as this one reads it
    (batchnorm.h's second pass, skc_bn_dx_rows: the same bits), never
    written out for the batch.
    """
    cdef const Py_ssize_t[::1] offsets = layout.offsets
    cdef Py_ssize_t channel_stride = layout.channel_stride
    cdef const Py_ssize_t[:, :, ::1] argmax_v
    cdef const floating[:, :, ::1] relu_y_v
    cdef floating[:, ::1] planes_v
    cdef bint unpool = argmax is not None, relu = relu_y is not None
    # the batch norm's input gradient formed a sample at a time (formed)
    cdef bint form = formed is not None, bn_relu = False
    cdef const floating[:, :, ::1] bn_x
    cdef const floating[::1] bn_center, bn_inv_std, bn_scale, bn_shift
    cdef const double[::1] bn_coef
    cdef double[:, ::1] bn_work
    if unpool:
        argmax_v, planes_v = argmax, planes
    if relu:
        relu_y_v = relu_y
    if form:
        if unpool:
            raise ValueError("a formed output gradient is read as dy, not unpooled")
        bn_x, bn_center, bn_inv_std, bn_coef = formed.x, formed.center, formed.inv_std, formed.coef
        bn_scale, bn_shift, bn_work, bn_relu = formed.scale, formed.shift, formed.work, formed.relu
        planes_v = planes
        if (bn_x.shape[0] != dy.shape[0] or bn_x.shape[1] != dy.shape[1]
                or bn_x.shape[2] != dy.shape[2]):
            raise ValueError("the batch norm's input takes dy's shape")
        if (planes_v.shape[0] < n_threads or planes_v.shape[1] < dy.shape[1] * dy.shape[2]
                or bn_work.shape[0] != dy.shape[1]):
            raise ValueError("planes or the batch norm's work are too small")
    if x.shape[2] > g.h or x.shape[3] > g.w:
        raise ValueError(f"x of {x.shape[2]} x {x.shape[3]} does not fit a geometry of "
                         f"{g.h} x {g.w}")
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = dw_part.shape[0]
    cdef int path = simd_path()
    cdef Py_ssize_t ci, n, start, stop, tid, f
    cdef Py_ssize_t pooled_h = g.oh // 2, pooled_w = g.ow // 2
    cdef int nf = dy.shape[1], ckk = offsets.shape[0], ohw = positions.shape[0]
    cdef bint vector = simd_path() > 0
    cdef bint need_db = db_part is not None
    cdef floating *img
    cdef const floating *dyn
    cdef Py_ssize_t sample_bytes = x.shape[1] * x.shape[2] * x.shape[3] * sizeof(floating)
    cdef Py_ssize_t dy_bytes = dy.shape[1] * dy.shape[2] * sizeof(floating)
    # the input gradient's convolution of dy, if any (see _transposed_sample)
    cdef bint with_dx = input_gradient is not None
    cdef const floating[:, ::1] turned
    cdef floating[:, :, :, ::1] dx
    cdef const floating[:, :, :, ::1] dx_residual
    cdef floating[::1] dx_work
    cdef const Py_ssize_t[::1] dx_offsets, dx_starts
    cdef Geometry gt
    cdef Py_ssize_t dx_panels = 0, dx_per_thread = 0, dx_ldc = 0, dx_padded = 0
    cdef bint dx_has_residual = False, dp = floating is double
    cdef DxLayout dl
    _check_scratch(work, n_threads,
                   gemm_work_size(ckk, nf, ohw) if dw_transposed else gemm_work_size(nf, ckk, ohw))
    if images.shape[0] < n_threads or images.shape[1] < layout.padded_size:
        raise ValueError("images is too small for the padded image of each thread")
    if with_dx:
        if unpool:
            raise ValueError("the input gradient is computed along a plain dy only")
        turned, dx, dx_work, gt = (input_gradient.w, input_gradient.dx, input_gradient.work,
                                   input_gradient.geometry)
        dx_layout = input_gradient.layout
        dx_offsets, dx_starts = dx_layout.offsets, dx_layout.starts
        dx_has_residual = input_gradient.residual is not None
        if dx_has_residual:
            dx_residual = input_gradient.residual
        dx_padded = dx_layout.padded_size
        dx_ldc = dx_starts.shape[0] * <Py_ssize_t> dx_layout.width
        dx_panels = <Py_ssize_t> panel_rows(dx.shape[1], dp) * turned.shape[1]
        dx_per_thread = dx_padded + <Py_ssize_t> panel_rows(dx.shape[1], dp) * dx_ldc
        if dx_work.shape[0] < dx_panels + n_threads * dx_per_thread:
            raise ValueError("the input gradient's work is too small")
        dl.channels, dl.taps, dl.tiles = dx.shape[1], turned.shape[1], dx_starts.shape[0]
        dl.width, dl.tile_row, dl.ldc = dx_layout.width, dx_layout.tile_row, dx_ldc
        dl.channel_stride, dl.padded_size = dx_layout.channel_stride, dx_padded
        dl.gap = dx_layout.gap
        dl.narrow = dl.width != tile_width(dp)
        dl.direct = (product_rows(dl.channels, dl.narrow, dp) == dl.channels
                     and dl.tile_row == gt.ow
                     and dl.ldc == gt.oh * gt.ow)
    with nogil:
        for tid in range(images.shape[0]):
            # the borders stay zero: only the middle of an image is written
            memset(&images[tid, 0], 0, images.shape[1] * sizeof(floating))
        if with_dx:
            pack_panels_of(dx.shape[1], turned.shape[1], &turned[0, 0], turned.shape[1], 1,
                           &dx_work[0])
            for tid in range(n_threads):
                memset(&dx_work[dx_panels + tid * dx_per_thread], 0, dx_padded * sizeof(floating))
        for ci in prange(n_chunks, schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            img = &images[tid, 0]
            start = ci * n_samples // n_chunks
            stop = (ci + 1) * n_samples // n_chunks
            for n in range(start, stop):
                _copy_padded(&x[n, 0, 0, 0], x.shape[2], x.shape[3], img, channel_stride, &g,
                             path)
                if n + 1 < stop:  # the chunk's next sample (see skc_prefetch_l2)
                    skc_prefetch_l2(&x[n + 1, 0, 0, 0], sample_bytes)
                    skc_prefetch_l2(&dy[n + 1, 0, 0], dy_bytes)
                    if form:
                        skc_prefetch_l2(&bn_x[n + 1, 0, 0], dy_bytes)
                dyn = &dy[n, 0, 0]
                if form:
                    if floating is float:
                        skc_bn_dx_rows_s(dyn, &bn_x[n, 0, 0], &bn_center[0], &bn_inv_std[0],
                                         bn_relu, &bn_scale[0], &bn_shift[0], &planes_v[tid, 0],
                                         1, nf, ohw, 0, nf, &bn_coef[0], &bn_work[0, 0], path)
                    else:
                        skc_bn_dx_rows_d(dyn, &bn_x[n, 0, 0], &bn_center[0], &bn_inv_std[0],
                                         bn_relu, &bn_scale[0], &bn_shift[0], &planes_v[tid, 0],
                                         1, nf, ohw, 0, nf, &bn_coef[0], &bn_work[0, 0], path)
                    dyn = &planes_v[tid, 0]
                if unpool:
                    for f in range(nf):
                        max_pool_2x2_backward_plane(
                            &dy[n, f, 0], &argmax_v[n, f, 0], &relu_y_v[n, f, 0] if relu else NULL,
                            pooled_h, pooled_w, g.oh, g.ow, &planes_v[tid, f * ohw], vector)
                    dyn = &planes_v[tid, 0]
                # dw (f, ckk) += dy (f, positions) @ taps (positions, ckk), or its
                # transpose: one chain over the chunk's samples and positions
                if dw_transposed:
                    gemm_tap_rows(ckk, nf, ohw, img, &offsets[0], &positions[0], dyn, 1, ohw,
                                  &dw_part[ci, 0, 0], dw_part.shape[2], n != start, True,
                                  tap_run, &work[tid, 0])
                else:
                    gemm_taps(nf, ckk, ohw, dyn, ohw, 1, img, &offsets[0], &positions[0],
                              &dw_part[ci, 0, 0], ckk, n != start, &work[tid, 0])
                if need_db:
                    _bias_gradient(dyn, nf, ohw, n == start, db_part[ci])
                if with_dx:
                    _transposed_sample(dyn, &gt, &dl, &dx_work[0], &dx_starts[0], &dx_offsets[0],
                                       &dx_work[dx_panels + tid * dx_per_thread],
                                       &dx_residual[n, 0, 0, 0] if dx_has_residual else NULL,
                                       &dx[n, 0, 0, 0], path)


# the columns of _engine.PhasesLayout's table, one row a phase
cdef enum:
    WEIGHTS_AT, PANELS_AT, TAPS, TAPS_AT, TILES_AT, TILES, WIDTH, TILE_ROW, ROWS, COLS, Y0, X0
PHASE_COLUMNS = ("weights_at", "panels_at", "taps", "taps_at", "tiles_at", "tiles", "width",
                 "tile_row", "rows", "cols", "y0", "x0")


def transposed_phases(
    const floating[:, :, :, ::1] dy,    # IN  (n, f, oh, ow)
    const floating[::1] turned,         # IN  each phase's turned weights (c, f * its taps)
    layout,                             # IN  _engine.PhasesLayout
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w)
    floating[::1] work,                 # scratch: the panels, then per thread an image, a product
    int n_threads,
    *,
    residual=None,                      # IN  like dx: added, or None
    phase_residual=None,                # IN  (n, c, rows, cols) with layout.merged: added to
                                        #     dx[:, :, ::sh, ::sw] (the phase at 0, 0), or None
):
    """A strided convolution's input gradient from its phases' products
    (_engine.phased_transposed_convolution), a sample at a time.

    Each sample's dy is copied once into the middle of ``layout.image``'s
    zero-padded image, from which every phase's product reads its taps
    (implicit_gemm, as conv2d_forward_implicit's), each output the same FMA
    chain over the phase's taps as the phase's own convolution of dy. Row p
    of ``layout.table`` (PHASE_COLUMNS) says where phase p's
    weights, panels, taps and tiles are, and that its product's rows and
    columns go to dx's rows y0, y0 + sh, ... and columns x0, x0 + sw, ...
    (rows_put, while the product is in cache); what no phase fills is 0
    (unless ``layout.covered``). Then ``residual + dx``, _engine.add's sum.
    With ``layout.merged`` (a width stride of 2, every column filled), a row
    of phases is computed at once and its two column phases interleaved into
    dx's rows with the residual added, each row written once (rows_merge):
    the same sums; ``phase_residual``, the gradient of a reader of dx's phase
    at row 0 and column 0 alone (a 1x1 shortcut's of stride (sh, sw)), is
    added to that phase as it is put. ``work``: layout.panels_size + n_threads
    * (layout.padded_size + layout.product_size) elements.
    """
    cdef const Py_ssize_t[:, ::1] table = layout.table
    cdef const Py_ssize_t[::1] offsets = layout.offsets, starts = layout.starts
    cdef Geometry gi = layout.image
    cdef Py_ssize_t channel_stride = layout.channel_stride, padded_size = layout.padded_size
    cdef Py_ssize_t panels_size = layout.panels_size, product_size = layout.product_size
    cdef Py_ssize_t per_thread = padded_size + product_size
    cdef bint covered = layout.covered, has_residual = residual is not None
    cdef bint merged = layout.merged, has_phase_residual = phase_residual is not None
    cdef const floating[:, :, :, ::1] residual_v, phase_residual_v
    cdef Py_ssize_t n, p, a, ci, tid, ldc, c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    cdef Py_ssize_t sh, sw, pe, po, ldc_e, ldc_o, ldr
    cdef bint even_only
    cdef bint dp = floating is double
    cdef int path = simd_path()
    cdef floating *img
    cdef floating *product
    cdef floating *out
    cdef const floating *res
    sh, sw = layout.stride
    if has_residual:
        residual_v = residual
    if work.shape[0] < panels_size + n_threads * per_thread:
        raise ValueError(f"work of {work.shape[0]} elements, "
                         f"{panels_size + n_threads * per_thread} needed")
    if merged and not (covered and sw == 2):
        raise ValueError("a merged layout fills every column of a width stride of 2")
    if has_phase_residual:
        # the table's row of the phase at dx's row 0 and column 0
        for p in range(table.shape[0]):
            if table[p, Y0] == 0 and table[p, X0] == 0:
                break
        phase_residual_v = phase_residual
        if (not merged or has_residual or phase_residual_v.shape[0] != dx.shape[0]
                or phase_residual_v.shape[1] != c or phase_residual_v.shape[2] != table[p, ROWS]
                or phase_residual_v.shape[3] != table[p, COLS]):
            raise ValueError("phase_residual does not match the layout's phase at 0, 0")
    with nogil:
        for p in range(table.shape[0]):
            if table[p, TILES] > 0:
                pack_panels_of(c, table[p, TAPS], &turned[table[p, WEIGHTS_AT]], table[p, TAPS], 1,
                               &work[table[p, PANELS_AT]])
        for tid in range(n_threads):
            # the borders stay zero: only the middle of an image is written
            memset(&work[panels_size + tid * per_thread], 0, padded_size * sizeof(floating))
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            img = &work[panels_size + tid * per_thread]
            product = img + padded_size
            _copy_padded(&dy[n, 0, 0, 0], dy.shape[2], dy.shape[3], img, channel_stride, &gi,
                         path)
            out = &dx[n, 0, 0, 0]
            if merged:
                for a in range(sh):
                    # the row's phase of dx's even columns, and of its odd ones
                    pe = 2 * a if table[2 * a, X0] == 0 else 2 * a + 1
                    po = pe ^ 1
                    if table[pe, TILES] == 0:  # no rows (or columns) of dx in this phase
                        continue
                    ldc_e = table[pe, TILES] * table[pe, WIDTH]
                    ldc_o = table[po, TILES] * table[po, WIDTH]
                    _phase_product(&table[pe, 0], c, &starts[0], &offsets[0], &work[0], img,
                                   product, dp)
                    if ldc_o > 0:
                        _phase_product(&table[po, 0], c, &starts[0], &offsets[0], &work[0], img,
                                       product + product_size // 2, dp)
                    even_only = has_phase_residual and table[pe, Y0] == 0
                    for ci in range(c):
                        if even_only:
                            res, ldr = &phase_residual_v[n, ci, 0, 0], table[pe, COLS]
                        elif has_residual:
                            res, ldr = &residual_v[n, ci, table[pe, Y0], 0], sh * w
                        else:
                            res, ldr = NULL, 0
                        rows_merge(product + ci * ldc_e, table[pe, TILE_ROW],
                                   product + product_size // 2 + ci * ldc_o, table[po, TILE_ROW],
                                   table[pe, ROWS], table[pe, COLS], table[po, COLS], res, ldr,
                                   even_only, out + ci * h * w + table[pe, Y0] * w, sh * w, path)
                continue
            if not covered:
                memset(out, 0, c * h * w * sizeof(floating))
            for p in range(table.shape[0]):
                if table[p, TILES] == 0:
                    continue
                ldc = table[p, TILES] * table[p, WIDTH]
                _phase_product(&table[p, 0], c, &starts[0], &offsets[0], &work[0], img, product,
                               dp)
                for ci in range(c):
                    rows_put(product + ci * ldc, table[p, TILE_ROW], sw, table[p, ROWS],
                             table[p, COLS], out + ci * h * w + table[p, Y0] * w + table[p, X0],
                             sh * w, path)
            if has_residual:
                rows_out(&residual_v[n, 0, 0, 0], 0, NULL, out, 0, False, 1, c * h * w, out, 0,
                         path)


cdef inline void _phase_product(
    const Py_ssize_t *phase,            # IN  the phase's row of the layout's table
    Py_ssize_t c,                       # dx's channels: the product's rows
    const Py_ssize_t *starts,           # IN  the layout's starts
    const Py_ssize_t *offsets,          # IN  the layout's offsets
    const floating *work,               # IN  the panels, at the table's panels_at
    const floating *img,                # IN  dy's padded image
    floating *product,                  # OUT (c, tiles * width)
    bint dp,
) noexcept nogil:
    """One phase's product, c rows by its tiles' columns (transposed_phases)."""
    implicit_gemm(c, phase[TILES], starts + phase[TILES_AT], phase[TAPS], work + phase[PANELS_AT],
                  img, offsets + phase[TAPS_AT], product, phase[TILES] * phase[WIDTH],
                  phase[WIDTH] != tile_width(dp), 0)

cdef extern from "winograd.h":
    void skc_wino_split_s(const float *x, Py_ssize_t n, Py_ssize_t pad, Py_ssize_t m,
                          Py_ssize_t j_len, float *rows, Py_ssize_t ldr, int path) noexcept nogil
    void skc_wino_split_d(const double *x, Py_ssize_t n, Py_ssize_t pad, Py_ssize_t m,
                          Py_ssize_t j_len, double *rows, Py_ssize_t ldr, int path) noexcept nogil
    void skc_wino_in_s(const float *rows, Py_ssize_t j_len, Py_ssize_t m, Py_ssize_t n,
                       float *v, Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino_in_d(const double *rows, Py_ssize_t j_len, Py_ssize_t m, Py_ssize_t n,
                       double *v, Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino_filter_s(const float *w, Py_ssize_t c, Py_ssize_t r, const double *g, float *u,
                           Py_ssize_t ldu, int path) noexcept nogil
    void skc_wino_filter_d(const double *w, Py_ssize_t c, Py_ssize_t r, const double *g,
                           double *u, Py_ssize_t ldu, int path) noexcept nogil
    void skc_wino_dy_s(const float *rows, Py_ssize_t j_len, Py_ssize_t m, Py_ssize_t n,
                       float *z, Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino_dy_d(const double *rows, Py_ssize_t j_len, Py_ssize_t m, Py_ssize_t n,
                       double *z, Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino_out_s(const float *mrows, Py_ssize_t pos_stride, Py_ssize_t m, Py_ssize_t n,
                        float *sums, float *out, int path) noexcept nogil
    void skc_wino_out_d(const double *mrows, Py_ssize_t pos_stride, Py_ssize_t m, Py_ssize_t n,
                        double *sums, double *out, int path) noexcept nogil


cdef void _winograd_panels(const floating[:, ::1] w, const double[:, ::1] g_matrix,
                           floating *u, floating *panels, int n_threads, int path) noexcept nogil:
    """U[p][f] = G g for each filter g (winograd.h, the filters on the threads)
    into u (alpha * f * c), then packed for the product into panels (alpha
    blocks of panel_rows(f) * c)."""
    cdef Py_ssize_t f, p, nf = w.shape[0], alpha = g_matrix.shape[0], r = g_matrix.shape[1]
    cdef Py_ssize_t c = w.shape[1] // r
    cdef Py_ssize_t panels_size = <Py_ssize_t> panel_rows(nf, floating is double) * c
    for f in prange(nf, schedule='static', num_threads=n_threads):
        if floating is float:
            skc_wino_filter_s(&w[f, 0], c, r, &g_matrix[0, 0], u + f * c, nf * c, path)
        else:
            skc_wino_filter_d(&w[f, 0], c, r, &g_matrix[0, 0], u + f * c, nf * c, path)
    for p in prange(alpha, schedule='static', num_threads=n_threads):
        pack_panels_of(nf, c, u + p * nf * c, c, 1, panels + p * panels_size)


def winograd_filter_panels(
    const floating[:, ::1] w,           # IN  (f, c * r): the filters
    const double[:, ::1] g_matrix,      # IN  (alpha, r): G
    floating[::1] panels,               # OUT alpha * (panel_rows(f) * c + f * c) + 64 elements
    int n_threads,
):
    """The filters' U = G g packed for conv1d_forward_winograd's product, as it
    packs them itself, from panels' first cache line on (the rest of panels
    is U's scratch): given to it as ``panels``, the same bits without the
    transform, for filters that did not change since."""
    cdef Py_ssize_t nf = w.shape[0], alpha = g_matrix.shape[0]
    cdef Py_ssize_t c = w.shape[1] // g_matrix.shape[1]
    cdef Py_ssize_t panels_size = <Py_ssize_t> panel_rows(nf, floating is double) * c
    if panels.shape[0] < alpha * (panels_size + nf * c) + 64:
        raise ValueError("panels is too small for these filters")
    cdef floating *base = &panels[0] + ((-<size_t> &panels[0]) & 63) // sizeof(floating)
    with nogil:
        _winograd_panels(w, g_matrix, base + alpha * panels_size, base, n_threads, simd_path())


def conv1d_forward_winograd(
    const floating[:, :, :, ::1] x,     # IN  (n, c, 1, length), length <= the layout's (see below)
    const floating[:, ::1] w,           # IN  (f, c * r): the filters
    const double[:, ::1] g_matrix,      # IN  (alpha, r): G
    floating[:, :, ::1] y,              # OUT (n, f, ow)
    layout,                             # IN  _engine.WinogradLayout
    floating[::1] work,                 # scratch: U's panels, then per thread its buffers
    int n_threads,
    *,
    b=None,                             # IN  (f,) of x's dtype, or None: no bias
    bint relu=False,                    # max(., 0) after the bias and the residual
    residual=None,                      # IN  like y: added before the ReLU, or None
    panels=None,                        # IN  winograd_filter_panels of w, or None: made here
):
    """y[n] = conv(x[n], w) + b (+ residual[n]) for a series' convolution of
    stride 1, by Winograd's F(m, r) (winograd.h): alpha = m + r - 1 = 8
    multiplications for m outputs of r taps, a channel and filter.

    U = G g (each filter's alpha values a sum in double over its taps in
    order, rounded once) is packed for the product, unless ``panels`` holds
    it already (winograd_filter_panels of the same w). Each task takes
    ``layout.samples`` consecutive series: each channel of each is split
    into the m phase rows of its zero-padded copy (``layout.pad`` zeros
    before; a series shorter than the layout's, 'same' padding's extra step,
    reads zeros after), the series one after the other along the rows,
    ``layout.j_len`` columns each, so that its tile t is the task's column
    s * j_len + t (the columns past its ``layout.tiles`` tiles are computed
    and dropped). The columns go through in blocks of one product tile,
    which stay in cache from transform to transform: the input transform
    puts a block's 8 positions in V, (8, c, width); position p's product M[p]
    = U[p] @ V[p] over the channels is one implicit_gemm (each element one
    FMA chain over the channels in order); the output transform gives each
    filter's outputs of the block's tiles, which rows_out writes to y with
    the bias and the residual added and the ReLU applied, as
    conv2d_forward_implicit does. Every output is the same operations in the
    same order whatever its series' place in the batch, the task, the block,
    the threads or the SIMD path: the bits do not depend on them.

    ``layout.parts`` > 1 (fewer tasks than threads: one long series) cuts each
    task's blocks into that many parts, each a task of the parallel loop that
    splits the task's series itself.
    """
    cdef const Py_ssize_t[::1] starts = layout.starts, boff = layout.channel_offsets
    cdef Py_ssize_t m = layout.m, alpha = layout.alpha, tiles = layout.tiles
    cdef Py_ssize_t j_len = layout.j_len, pad = layout.pad, ow = layout.ow
    cdef Py_ssize_t per_task = layout.samples, length = x.shape[3], r = g_matrix.shape[1]
    cdef Py_ssize_t n_samples = x.shape[0], width = layout.width
    cdef int nf = y.shape[1], c = x.shape[1]
    cdef bint dp = floating is double
    cdef int path = simd_path()
    cdef Py_ssize_t prows = panel_rows(nf, dp)
    cdef Py_ssize_t panels_size = prows * c
    # a task's phase rows: per channel, m rows of its series' columns (and a
    # tile's reach past the last); a block's rows of V (a channel's) and of M
    # (a filter's) a cache line more than a tile apart, so that the product's
    # reads of c rows a column at a time spread over the cache sets
    cdef Py_ssize_t row_len = per_task * j_len + 16, ldr = width + 16
    cdef Py_ssize_t v_pos = c * ldr + 16, m_pos = prows * ldr + 16
    cdef Py_ssize_t per_thread = c * m * row_len + alpha * (v_pos + m_pos) + 2 * m * width
    cdef const floating[::1] bias
    cdef const floating[:, :, ::1] residual_v
    cdef bint has_bias = b is not None, has_residual = residual is not None
    if has_bias:
        bias = b
    if has_residual:
        residual_v = residual
    if w.shape[0] != nf or w.shape[1] != c * r or g_matrix.shape[0] != alpha:
        raise ValueError(f"w of shape {tuple(w.shape)[:2]} is not ({nf}, {c} * {r})")
    if x.shape[2] != 1 or alpha != 8 or m not in (4, 6) or boff[c - 1] != (c - 1) * ldr:
        raise ValueError("x or the layout is not a series' of 8-position tiles (winograd.h)")
    if work.shape[0] < alpha * panels_size + max(n_threads * per_thread, alpha * nf * c) + 64:
        raise ValueError("work is too small for this layout")
    cdef Py_ssize_t task, n, s, ci, tid, p, f, k, first, count, blk, q0, q1, lo, hi, o0, o1
    cdef Py_ssize_t n_blocks, b0, b1, parts = layout.parts
    # the buffers from a cache line on (the work has a line's slack)
    cdef floating *base = &work[0] + ((-<size_t> &work[0]) & 63) // sizeof(floating)
    cdef floating *u = base + alpha * panels_size  # the threads' buffers, free until the tasks
    cdef floating *rows
    cdef floating *v
    cdef floating *mm
    cdef floating *out
    cdef floating[::1] given
    cdef floating *upack = base  # U's panels: in work, or those given
    cdef bint make_panels = panels is None
    if not make_panels:
        given = panels
        if given.shape[0] < alpha * (panels_size + nf * c) + 64:
            raise ValueError("panels is too small for these filters")
        upack = &given[0] + ((-<size_t> &given[0]) & 63) // sizeof(floating)
    with nogil:
        if make_panels:
            _winograd_panels(w, g_matrix, u, base, n_threads, path)
        for task in prange((n_samples + per_task - 1) // per_task * parts, schedule='dynamic',
                           num_threads=n_threads):
            tid = threadid()
            rows = base + alpha * panels_size + tid * per_thread
            v = rows + c * m * row_len
            mm = v + alpha * v_pos
            out = mm + alpha * m_pos
            first = task // parts * per_task
            count = min(per_task, n_samples - first)
            # this part's blocks of the task's columns
            n_blocks = (count * j_len + width - 1) // width
            b0 = task % parts * n_blocks // parts
            b1 = (task % parts + 1) * n_blocks // parts
            if b1 <= b0:
                continue
            for s in range(count):
                for ci in range(c):
                    # phase row p of channel ci at rows + (ci * m + p) * row_len
                    if floating is float:
                        skc_wino_split_s(&x[first + s, ci, 0, 0], length, pad, m, j_len,
                                         rows + ci * m * row_len + s * j_len, row_len, path)
                    else:
                        skc_wino_split_d(&x[first + s, ci, 0, 0], length, pad, m, j_len,
                                         rows + ci * m * row_len + s * j_len, row_len, path)
            for blk in range(b0, b1):
                q0 = blk * width
                q1 = min(q0 + width, count * j_len)
                for ci in range(c):
                    if floating is float:
                        skc_wino_in_s(rows + ci * m * row_len + q0, row_len, m, q1 - q0,
                                      v + ci * ldr, v_pos, path)
                    else:
                        skc_wino_in_d(rows + ci * m * row_len + q0, row_len, m, q1 - q0,
                                      v + ci * ldr, v_pos, path)
                for p in range(alpha):
                    implicit_gemm(nf, 1, &starts[0], c, upack + p * panels_size, v + p * v_pos,
                                  &boff[0], mm + p * m_pos, ldr, False, 0)
                for f in range(nf):
                    if floating is float:
                        skc_wino_out_s(mm + f * ldr, m_pos, m, q1 - q0, out + m * width, out,
                                       path)
                    else:
                        skc_wino_out_d(mm + f * ldr, m_pos, m, q1 - q0, out + m * width, out,
                                       path)
                    # each series' outputs of the block's tiles (not past ow)
                    for s in range(q0 // j_len, (q1 - 1) // j_len + 1):
                        lo = max(q0, s * j_len)
                        hi = min(q1, s * j_len + tiles)
                        o0 = m * (lo - s * j_len)
                        o1 = min(m * (hi - s * j_len), ow)
                        if o1 <= o0:
                            continue
                        n = first + s
                        rows_out(out + m * (lo - q0), 0, &bias[f] if has_bias else NULL,
                                 &residual_v[n, f, o0] if has_residual else NULL, 0, relu, 1,
                                 o1 - o0, &y[n, f, o0], 0, path)


def conv1d_weight_gradient_winograd(
    const floating[:, :, ::1] dy,       # IN  (n, f, ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, 1, length)
    layout,                             # IN  _engine.WinogradLayout
    floating[:, :, :, ::1] du_part,     # OUT (n_chunks, alpha, f, c)
    floating[:, ::1] db_part,           # OUT (n_chunks, f)
    floating[:, ::1] work,              # scratch (n_threads, _engine.winograd_gradient_work)
    int n_threads,
):
    """The weight gradient of conv1d_forward_winograd's convolution, in the
    transform's terms: dU[p] = sum over the series and their tiles of Z[p] (f,
    tiles) times V[p] (c, tiles) transposed, where V is the forward's input
    transform and Z = A dy the output gradient's (winograd.h); the caller
    takes dw = G^T dU. And db, the sums of dy.

    The batch is cut into ``n_chunks`` contiguous chunks that depend only on
    the batch size; each chunk sums its own dU and db in sample order (each
    element one FMA chain over its samples' tiles in order), and the caller
    adds the chunk sums in chunk order: the bits do not depend on the threads.
    """
    cdef Py_ssize_t m = layout.m, alpha = layout.alpha, tiles = layout.tiles
    cdef Py_ssize_t j_len = layout.j_len, pad = layout.pad, ow = layout.ow, ldv = layout.ldv
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = du_part.shape[0], length = x.shape[3]
    cdef int nf = dy.shape[1], c = x.shape[1]
    cdef int path = simd_path()
    cdef Py_ssize_t ldr = ldv + 16
    cdef Py_ssize_t v_pos = c * ldr + 16, z_pos = nf * ldr + 16
    if (du_part.shape[1] != alpha or du_part.shape[2] != nf or du_part.shape[3] != c
            or dy.shape[2] != ow or alpha != 8 or m not in (4, 6)):
        raise ValueError("du_part, dy or the layout does not match")
    if work.shape[1] < m * j_len + alpha * (v_pos + z_pos) + gemm_work_size(nf, c, tiles):
        raise ValueError("work is too small for this layout")
    cdef Py_ssize_t ci, n, start, stop, tid, p, k
    cdef floating *rows
    cdef floating *v
    cdef floating *z
    cdef floating *gemm_work
    with nogil:
        for ci in prange(n_chunks, schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            rows = &work[tid, 0]
            v = rows + m * j_len
            z = v + alpha * v_pos
            gemm_work = z + alpha * z_pos
            start = ci * n_samples // n_chunks
            stop = (ci + 1) * n_samples // n_chunks
            for n in range(start, stop):
                for k in range(c):
                    if floating is float:
                        skc_wino_split_s(&x[n, k, 0, 0], length, pad, m, j_len, rows, j_len, path)
                        skc_wino_in_s(rows, j_len, m, tiles, v + k * ldr, v_pos, path)
                    else:
                        skc_wino_split_d(&x[n, k, 0, 0], length, pad, m, j_len, rows, j_len, path)
                        skc_wino_in_d(rows, j_len, m, tiles, v + k * ldr, v_pos, path)
                for k in range(nf):
                    if floating is float:
                        skc_wino_split_s(&dy[n, k, 0], ow, 0, m, j_len, rows, j_len, path)
                        skc_wino_dy_s(rows, j_len, m, tiles, z + k * ldr, z_pos, path)
                    else:
                        skc_wino_split_d(&dy[n, k, 0], ow, 0, m, j_len, rows, j_len, path)
                        skc_wino_dy_d(rows, j_len, m, tiles, z + k * ldr, z_pos, path)
                # dU[p] (f, c) += Z[p] (f, tiles) @ V[p]^T (tiles, c)
                for p in range(alpha):
                    gemm(nf, c, tiles, z + p * z_pos, ldr, 1, v + p * v_pos, 1, ldr,
                         &du_part[ci, p, 0, 0], c, n != start, NULL, NO_BIAS, gemm_work)
                _bias_gradient(&dy[n, 0, 0], nf, ow, n == start, db_part[ci])


def winograd_filter_gradient(
    const floating[:, :, :, ::1] du_part,   # IN  (n_chunks, alpha, f, c): the chunks' dU
    const double[:, ::1] g_matrix,          # IN  (alpha, r): G
    double[:, :, ::1] dw,                   # OUT (f, c, r)
    int n_threads,
):
    """dw = G^T dU, dU the sum of the chunks' (conv1d_weight_gradient_winograd)
    in chunk order in their dtype, as ``du_part.sum(axis=0)`` adds them; then
    dw[f, ci, k] = sum over the positions p in order of G[p, k] * dU[p, f, ci],
    in double. The filters on the threads."""
    cdef Py_ssize_t n_chunks = du_part.shape[0], alpha = du_part.shape[1]
    cdef Py_ssize_t nf = du_part.shape[2], c = du_part.shape[3], r = g_matrix.shape[1]
    cdef Py_ssize_t f, ci, p, k, ch
    cdef floating s
    if g_matrix.shape[0] != alpha or dw.shape[0] != nf or dw.shape[1] != c or dw.shape[2] != r:
        raise ValueError("du_part, g_matrix and dw do not match")
    with nogil:
        for f in prange(nf, schedule='static', num_threads=n_threads):
            for ci in range(c):
                for k in range(r):
                    dw[f, ci, k] = 0
                for p in range(alpha):
                    s = du_part[0, p, f, ci]
                    for ch in range(1, n_chunks):
                        s = s + du_part[ch, p, f, ci]
                    for k in range(r):
                        dw[f, ci, k] = dw[f, ci, k] + g_matrix[p, k] * s


cdef extern from "winograd2d.h":
    void skc_wino2_in_s(const float *img, Py_ssize_t channel_stride, Py_ssize_t plane,
                       Py_ssize_t wq, Py_ssize_t c, Py_ssize_t n, float *v, Py_ssize_t ldv,
                       Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino2_in_d(const double *img, Py_ssize_t channel_stride, Py_ssize_t plane,
                       Py_ssize_t wq, Py_ssize_t c, Py_ssize_t n, double *v, Py_ssize_t ldv,
                       Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino2_out_s(const float *m, Py_ssize_t pos_stride, Py_ssize_t n, float *row0,
                        float *row1, int path) noexcept nogil
    void skc_wino2_out_d(const double *m, Py_ssize_t pos_stride, Py_ssize_t n, double *row0,
                        double *row1, int path) noexcept nogil
    void skc_wino2_dy_s(const float *dy, Py_ssize_t channel_stride, Py_ssize_t plane,
                       Py_ssize_t f, Py_ssize_t n, float *z, Py_ssize_t ldz,
                       Py_ssize_t pos_stride, int path) noexcept nogil
    void skc_wino2_dy_d(const double *dy, Py_ssize_t channel_stride, Py_ssize_t plane,
                       Py_ssize_t f, Py_ssize_t n, double *z, Py_ssize_t ldz,
                       Py_ssize_t pos_stride, int path) noexcept nogil


def conv2d_forward_winograd2d(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w), h <= g.h and w <= g.w (see _copy_padded)
    const floating[:, ::1] w,           # IN  (f, c * 9): the 3x3 filters
    floating[:, :, ::1] y,              # OUT (n, f, oh * ow), or (n, f, (oh // 2) * (ow // 2)) if pool2
    layout,                             # IN  _engine.Winograd2dLayout
    floating[::1] work,                 # scratch: the filters' panels (unless given), then
                                        # each thread's buffers
    Geometry g,                         # of the copy: x's with strides of 2 (see below)
    int n_threads,
    *,
    b=None,                             # IN  (f,) of x's dtype, or None: no bias
    bint relu=False,                    # max(., 0) after the bias and the residual (the pooling)
    residual=None,                      # IN  like y, not with pool2: added before the ReLU, or None
    bint pool2=False,                   # y is the 2x2 max pooling of stride 2 of the output
    argmax=None,                        # OUT intp like y with pool2, or None
    panels=None,                        # IN  winograd2d_filter_panels(w), or None: made here
):
    """y[n] = conv(x[n], w) + b (+ residual[n]) for a 3x3 kernel of stride 1, by
    Winograd's F(2x2, 3x3) (winograd2d.h): 2.25 times fewer multiplications
    than the direct product.

    Each task takes ``layout.samples`` consecutive samples, copied into its
    thread's zero-padded images, split by the parity of rows and columns (g,
    the copy's geometry, has strides of 2). A sample has ``layout.tiles``
    tiles (rows of tiles a plane wide, the last of each past the output); the
    task's tiles, one sample's after the other, go through in blocks of one
    product tile's columns, which stay in the L1 cache from transform to
    transform: the input transform puts a block's 16 positions in V, (c, 16,
    width); position p's product M[p] = U[p] @ V[p] over the channels is one
    implicit_gemm (each element one FMA chain over the channels in order);
    the output transform puts each filter's outputs in its rows. Then
    rows_out writes each filter's rows to y, adding the bias and the residual
    and applying the ReLU as conv2d_forward_implicit does. Every output is
    the same operations in the same order whatever its sample's place in
    the batch, the task, the block, the threads or the SIMD path: the bits
    do not depend on them. With ``pool2``, a tile's 2 x 2 outputs are a
    pooling window's: max_pool_2x2_row pools each filter's rows instead, as
    conv2d_forward_implicit does (the same choices among the same values,
    bias added, then the ReLU; each window's flat index in argmax).
    """
    cdef const Py_ssize_t[::1] starts = layout.starts, boff = layout.channel_offsets
    cdef Py_ssize_t channel_stride = layout.channel_stride, plane = layout.plane
    cdef Py_ssize_t wq = layout.plane_width, tiles = layout.tiles
    cdef Py_ssize_t per_task = layout.samples, padded_size = layout.padded_size
    cdef Py_ssize_t n_samples = x.shape[0], oh = layout.oh, ow = layout.ow
    cdef int nf = y.shape[1], c = x.shape[1]
    cdef bint dp = floating is double
    cdef int path = simd_path()
    cdef Py_ssize_t width = tile_width(dp), prows = panel_rows(nf, dp)
    cdef Py_ssize_t panels_size = prows * c
    # a block's V is (c, 16, width) and M (f, 16, width): the 16 positions of a
    # channel, or a filter, a constant apart for the transforms; channels'
    # rows a cache line off a multiple of the page, or the product's reads of
    # them (and its writes of M's) would share a cache set
    cdef Py_ssize_t ldv = 16 * width + 16
    cdef Py_ssize_t rows_size = 4 * tiles * nf
    cdef Py_ssize_t per_thread = per_task * (padded_size + rows_size) + (c + prows) * ldv
    cdef const floating[::1] bias
    cdef const floating[:, :, ::1] residual_v
    cdef bint has_bias = b is not None, has_residual = residual is not None
    cdef bint need_argmax = argmax is not None, vector = path > 0
    cdef Py_ssize_t pooled_h = oh // 2, pooled_w = ow // 2, i
    cdef Py_ssize_t[:, :, ::1] argmax_v
    if pool2 and has_residual:
        raise ValueError("a pooled convolution takes no residual")
    # the copy writes x into images of g's size, and the outputs go to y by
    # the layout's size: shapes past them would write past the buffers
    if c != g.c or x.shape[2] > g.h or x.shape[3] > g.w:
        raise ValueError(f"x of shape {tuple(x.shape)[:4]} does not fit the copy's geometry")
    if y.shape[0] != n_samples or y.shape[2] != (pooled_h * pooled_w if pool2 else oh * ow):
        raise ValueError(f"y of shape {tuple(y.shape)[:3]} does not fit the layout's output")
    if need_argmax:
        if not pool2:
            raise ValueError("argmax is the pooling's")
        argmax_v = argmax
        if tuple(argmax_v.shape)[:3] != tuple(y.shape)[:3]:
            raise ValueError("argmax is not of y's shape")
    if has_bias:
        bias = b
        if bias.shape[0] != nf:
            raise ValueError(f"b of {bias.shape[0]} values is not one for each of {nf} filters")
    if has_residual:
        residual_v = residual
        if tuple(residual_v.shape)[:3] != tuple(y.shape)[:3]:
            raise ValueError("residual is not of y's shape")
    if w.shape[0] != nf or w.shape[1] != 9 * c:
        raise ValueError(f"w of shape {tuple(w.shape)[:2]} is not ({nf}, {9 * c})")
    cdef const floating[::1] kept
    cdef bint has_panels = panels is not None
    if has_panels:
        kept = panels
        if kept.shape[0] < 16 * (panels_size + nf * c) + 64 // sizeof(floating):
            raise ValueError("panels is too small for these filters")
    if boff.shape[0] != c or boff[c - 1] != (c - 1) * ldv:
        raise ValueError("layout does not match this SIMD path's tiles")
    # the filters' panels, unless given, and the threads' buffers (which hold
    # U before the tasks)
    cdef Py_ssize_t own_panels = 0 if has_panels else 16 * panels_size
    if work.shape[0] < (own_panels + max(n_threads * per_thread, 0 if has_panels else 16 * nf * c)
                        + 64 // sizeof(floating)):
        raise ValueError("work is too small for this layout")
    cdef Py_ssize_t task, n, s, k, tid, p, f, blk, q0, q1, lo, hi, first, count
    cdef floating *images
    cdef floating *v
    cdef floating *m
    cdef floating *rows
    # the buffers from a cache line on (the work has a line's slack): rows
    # of V and M are whole lines, and no vector store splits across two
    cdef floating *base = &work[0] + ((-<size_t> &work[0]) & 63) // sizeof(floating)
    cdef const floating *packed = base
    if has_panels:
        packed = &kept[0] + ((-<size_t> &kept[0]) & 63) // sizeof(floating)
    with nogil:
        if not has_panels:
            _winograd2d_panels(w, base + 16 * panels_size, base)
        for tid in range(n_threads):
            # the borders stay zero: only the middle of an image is written
            memset(base + own_panels + tid * per_thread, 0,
                   per_task * padded_size * sizeof(floating))
        for task in prange((n_samples + per_task - 1) // per_task, schedule='dynamic',
                           num_threads=n_threads):
            tid = threadid()
            images = base + own_panels + tid * per_thread
            v = images + per_task * padded_size
            m = v + c * ldv
            rows = m + prows * ldv
            first = task * per_task
            count = min(per_task, n_samples - first)
            for s in range(count):
                _copy_padded(&x[first + s, 0, 0, 0], x.shape[2], x.shape[3],
                             images + s * padded_size, channel_stride, &g, path)
            for blk in range((count * tiles + width - 1) // width):
                q0 = blk * width
                q1 = min(q0 + width, count * tiles)
                # the block's columns q0 ... q1 - 1, sample by sample
                for s in range(q0 // tiles, (q1 - 1) // tiles + 1):
                    lo = max(q0, s * tiles)
                    hi = min(q1, (s + 1) * tiles)
                    if floating is float:
                        skc_wino2_in_s(images + s * padded_size + lo - s * tiles, channel_stride,
                                      plane, wq, c, hi - lo, v + lo - q0, ldv, width, path)
                    else:
                        skc_wino2_in_d(images + s * padded_size + lo - s * tiles, channel_stride,
                                      plane, wq, c, hi - lo, v + lo - q0, ldv, width, path)
                for p in range(16):
                    implicit_gemm(nf, 1, &starts[0], c, packed + p * panels_size, v + p * width,
                                  &boff[0], m + p * width, ldv, False, 0)
                for s in range(q0 // tiles, (q1 - 1) // tiles + 1):
                    lo = max(q0, s * tiles)
                    hi = min(q1, (s + 1) * tiles)
                    for f in range(nf):
                        # even output rows at rows[0:2 tiles], odd ones after
                        k = (s * nf + f) * 4 * tiles + 2 * (lo - s * tiles)
                        if floating is float:
                            skc_wino2_out_s(m + f * ldv + lo - q0, width, hi - lo, rows + k,
                                           rows + k + 2 * tiles, path)
                        else:
                            skc_wino2_out_d(m + f * ldv + lo - q0, width, hi - lo, rows + k,
                                           rows + k + 2 * tiles, path)
            for s in range(count):
                n = first + s
                for f in range(nf):
                    # output row 2 ti at 2 ti wq of the even rows, 2 ti + 1 of the odd
                    k = (s * nf + f) * 4 * tiles
                    if pool2:
                        for i in range(pooled_h):
                            max_pool_2x2_row(rows + k + 2 * i * wq, rows + k + 2 * tiles + 2 * i * wq,
                                             pooled_w, 2 * i * ow, ow,
                                             &bias[f] if has_bias else NULL, relu,
                                             &y[n, f, i * pooled_w],
                                             &argmax_v[n, f, i * pooled_w] if need_argmax else NULL,
                                             vector)
                        continue
                    rows_out(rows + k, 2 * wq, &bias[f] if has_bias else NULL,
                             &residual_v[n, f, 0] if has_residual else NULL, 2 * ow, relu,
                             (oh + 1) // 2, ow, &y[n, f, 0], 2 * ow, path)
                    if oh > 1:
                        rows_out(rows + k + 2 * tiles, 2 * wq, &bias[f] if has_bias else NULL,
                                 &residual_v[n, f, ow] if has_residual else NULL, 2 * ow, relu,
                                 oh // 2, ow, &y[n, f, ow], 2 * ow, path)



cdef inline void _winograd2d_filter(const floating *wf, Py_ssize_t c, floating *u) noexcept nogil:
    """U = G g G^T of one filter's c channels g (3x3 each, at wf) into u (c, 16):
    position (a, b) of channel ci at u[16 ci + 4a + b]. G's rows are g0,
    (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2: the sums and halves in double,
    in the order written (setup.py keeps the compiler from contracting them),
    rounded once to w's type: the same bits on every CPU."""
    cdef double g[3][3]
    cdef double t[4][3]
    cdef Py_ssize_t ci, i, j
    cdef floating *at
    for ci in range(c):
        for i in range(3):
            for j in range(3):
                g[i][j] = wf[9 * ci + 3 * i + j]
        for j in range(3):  # G g: the rows
            t[0][j] = g[0][j]
            t[1][j] = (g[0][j] + g[1][j] + g[2][j]) * 0.5
            t[2][j] = (g[0][j] - g[1][j] + g[2][j]) * 0.5
            t[3][j] = g[2][j]
        at = u + 16 * ci
        for i in range(4):  # (G g) G^T: the columns
            at[4 * i] = <floating> t[i][0]
            at[4 * i + 1] = <floating> ((t[i][0] + t[i][1] + t[i][2]) * 0.5)
            at[4 * i + 2] = <floating> ((t[i][0] - t[i][1] + t[i][2]) * 0.5)
            at[4 * i + 3] = <floating> t[i][2]


cdef void _winograd2d_panels(const floating[:, ::1] w, floating *u,
                             floating *panels) noexcept nogil:
    """U = G g G^T of each 3x3 filter of w (_winograd2d_filter) into u (f, c, 16),
    then each position's packed for the product into panels (16 blocks of
    panel_rows(f) * c). On one thread: waking the others for it costs more
    than it saves (64 -> 64 filters: 62 us on one thread, 160 on two)."""
    cdef Py_ssize_t nf = w.shape[0], c = w.shape[1] // 9, f, p
    cdef Py_ssize_t panels_size = <Py_ssize_t> panel_rows(nf, floating is double) * c
    for f in range(nf):
        _winograd2d_filter(&w[f, 0], c, u + 16 * f * c)
    for p in range(16):
        pack_panels_of(nf, c, u + p, 16 * c, 16, panels + p * panels_size)


def winograd2d_filter_panels(
    const floating[:, ::1] w,           # IN  (f, c * 9): the 3x3 filters
    floating[::1] panels,               # OUT 16 * (panel_rows(f) * c + f * c) + 64 elements
):
    """The filters' U = G g G^T packed for conv2d_forward_winograd2d's product,
    as it packs them itself, from panels' first cache line on (the rest of
    panels is U's scratch): given to it as ``panels``, the same bits without
    the transform, for filters that did not change since."""
    cdef Py_ssize_t nf = w.shape[0], c = w.shape[1] // 9
    cdef Py_ssize_t panels_size = <Py_ssize_t> panel_rows(nf, floating is double) * c
    if w.shape[1] != 9 * c:
        raise ValueError(f"w of shape {tuple(w.shape)[:2]} is not of 3x3 filters")
    if panels.shape[0] < 16 * (panels_size + nf * c) + 64 // sizeof(floating):
        raise ValueError("panels is too small for these filters")
    cdef floating *base = &panels[0] + ((-<size_t> &panels[0]) & 63) // sizeof(floating)
    with nogil:
        _winograd2d_panels(w, base + 16 * panels_size, base)


cdef Py_ssize_t _winograd2d_gradient_sizes(Py_ssize_t c, Py_ssize_t nf, Py_ssize_t tiles,
                                           Py_ssize_t group, Py_ssize_t padded_size,
                                           Py_ssize_t dy_stride, Py_ssize_t *ldk) noexcept nogil:
    """A thread's scratch for conv2d_weight_gradient_winograd2d: an image, the
    output gradient's planes, V and Z of ``group`` images (their rows ldk
    long, a position's c or f rows and 16 more elements apart) from a cache
    line on, and the product's. Returns its elements."""
    cdef Py_ssize_t k = group * tiles
    ldk[0] = (k + 15) // 16 * 16 + 16
    return (padded_size + nf * dy_stride + 16
            + 16 * ((c + nf) * ldk[0] + 32) + gemm_work_size(nf, c, k))


def winograd2d_gradient_work(Py_ssize_t c, Py_ssize_t nf, layout, Py_ssize_t group):
    """The elements of a thread's scratch for conv2d_weight_gradient_winograd2d."""
    cdef Py_ssize_t ldk
    return _winograd2d_gradient_sizes(c, nf, layout.tiles, group, layout.padded_size,
                                      4 * layout.tiles, &ldk)


def conv2d_weight_gradient_winograd2d(
    const floating[:, :, ::1] dy,       # IN  (n, f, oh * ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w), h <= g.h and w <= g.w
    layout,                             # IN  _engine.Winograd2dLayout
    Geometry g,                         # IN  layout.copy_geometry
    floating[:, :, :, ::1] du_part,     # OUT (n_chunks, 16, f, c)
    floating[:, ::1] db_part,           # OUT (n_chunks, f)
    floating[:, ::1] work,              # scratch (n_threads, winograd2d_gradient_work(...))
    Py_ssize_t group,                   # images in one product
    int n_threads,
):
    """The weight gradient of conv2d_forward_winograd2d's convolution in the
    transform's terms: dU[p] = sum over the images and their tiles of Z[p]
    (f, tiles) times V[p] (c, tiles) transposed, V the forward's input
    transform (winograd2d.h's skc_wino2_in) and Z = A dY A^T the output
    gradient's (skc_wino2_dy); the caller takes dw = G^T dU G
    (winograd2d_filter_gradient). And db, the sums of dy.

    Each image's dy is split by the parity of rows and columns into planes
    of the image copy's width, its tile (ti, tj) at ti * wq + tj in each, as
    its x's tiles are in the copy: the tiles past the output read zeros
    there, so that their Z, and their terms, are zero. ``group`` images'
    tiles are one product's columns.

    The batch is cut into ``du_part.shape[0]`` contiguous chunks that depend
    only on the batch size; each chunk sums its own dU and db in image
    order (each element one FMA chain over its images' tiles in order,
    whatever the grouping), and the caller adds the chunk sums in chunk
    order: the bits depend on neither the threads nor the SIMD path.
    """
    cdef Py_ssize_t tiles = layout.tiles, wq = layout.plane_width, plane = layout.plane
    cdef Py_ssize_t channel_stride = layout.channel_stride, padded_size = layout.padded_size
    cdef Py_ssize_t oh = layout.oh, ow = layout.ow
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = du_part.shape[0]
    cdef int nf = dy.shape[1], c = x.shape[1]
    cdef int path = simd_path()
    cdef Py_ssize_t dy_plane = tiles, dy_stride = 4 * tiles, ldk
    cdef Py_ssize_t per_thread = _winograd2d_gradient_sizes(c, nf, tiles, group, padded_size,
                                                            dy_stride, &ldk)
    cdef Py_ssize_t v_pos = c * ldk + 16, z_pos = nf * ldk + 16
    # the output gradient's copy: rows and columns split by parity, planes of
    # the tiles' rows by wq
    cdef Geometry gd
    gd.c, gd.h, gd.w = nf, 2 * (tiles // wq), 2 * wq
    gd.kh, gd.kw, gd.sh, gd.sw, gd.ph, gd.pw, gd.dh, gd.dw = 3, 3, 2, 2, 0, 0, 1, 1
    gd.oh, gd.ow = oh, ow
    if c != g.c or x.shape[2] > g.h or x.shape[3] > g.w or n_samples != dy.shape[0]:
        raise ValueError(f"x of shape {tuple(x.shape)[:4]} does not fit the copy's geometry")
    if dy.shape[2] != oh * ow or oh > gd.h or ow > gd.w:
        raise ValueError(f"dy of shape {tuple(dy.shape)[:3]} does not fit the layout's output")
    if (du_part.shape[1] != 16 or du_part.shape[2] != nf or du_part.shape[3] != c
            or db_part.shape[0] != n_chunks or db_part.shape[1] != nf or group < 1
            or n_chunks > n_samples):
        raise ValueError("du_part, db_part or group does not match")
    _check_scratch(work, n_threads, per_thread)
    cdef Py_ssize_t ci, n, s, start, stop, tid, p, k, first, last
    cdef floating *img
    cdef floating *dyp
    cdef floating *v
    cdef floating *z
    cdef floating *gemm_work
    with nogil:
        for tid in range(n_threads):
            # the borders of the copies stay zero: only their middles are written
            memset(&work[tid, 0], 0, (padded_size + nf * dy_stride) * sizeof(floating))
        for ci in prange(n_chunks, schedule='dynamic', num_threads=n_threads):
            tid = threadid()
            img = &work[tid, 0]
            dyp = img + padded_size
            # V and Z from a cache line on
            v = dyp + nf * dy_stride
            v = v + ((-<size_t> v) & 63) // sizeof(floating)
            z = v + 16 * v_pos
            gemm_work = z + 16 * z_pos
            start = ci * n_samples // n_chunks
            stop = (ci + 1) * n_samples // n_chunks
            for k in range((stop - start + group - 1) // group):
                first = start + k * group
                last = min(first + group, stop)
                for n in range(first, last):
                    s = (n - first) * tiles
                    _copy_padded(&x[n, 0, 0, 0], x.shape[2], x.shape[3], img, channel_stride,
                                 &g, path)
                    _copy_padded(&dy[n, 0, 0], oh, ow, dyp, dy_stride, &gd, path)
                    if floating is float:
                        skc_wino2_in_s(img, channel_stride, plane, wq, c, tiles, v + s, ldk,
                                       v_pos, path)
                        skc_wino2_dy_s(dyp, dy_stride, dy_plane, nf, tiles, z + s, ldk, z_pos,
                                       path)
                    else:
                        skc_wino2_in_d(img, channel_stride, plane, wq, c, tiles, v + s, ldk,
                                       v_pos, path)
                        skc_wino2_dy_d(dyp, dy_stride, dy_plane, nf, tiles, z + s, ldk, z_pos,
                                       path)
                    _bias_gradient(&dy[n, 0, 0], nf, oh * ow, n == start, db_part[ci])
                # dU[p] (f, c) += Z[p] (f, tiles) @ V[p]^T (tiles, c)
                for p in range(16):
                    gemm(nf, c, (last - first) * tiles, z + p * z_pos, ldk,
                         1, v + p * v_pos, 1, ldk, &du_part[ci, p, 0, 0], c, first != start,
                         NULL, NO_BIAS, gemm_work)


cdef inline void _winograd2d_dw(const floating *du, Py_ssize_t n_chunks, Py_ssize_t chunk_stride,
                                Py_ssize_t pos_stride, double *dw) noexcept nogil:
    """dw (3x3) = G^T dU G of one filter and channel, dU's 16 positions (pos_stride
    apart) the sum of its n_chunks chunks' (chunk_stride apart) in chunk order
    in their dtype; then G^T's rows and G's columns (see _winograd2d_filter) in
    double, in the order written."""
    cdef double u[16]
    cdef double t[3][4]
    cdef Py_ssize_t p, ch, i, j
    cdef floating s
    for p in range(16):
        s = du[p * pos_stride]
        for ch in range(1, n_chunks):
            s = s + du[ch * chunk_stride + p * pos_stride]
        u[p] = s
    for j in range(4):  # G^T dU: the rows
        t[0][j] = u[j] + (u[4 + j] + u[8 + j]) * 0.5
        t[1][j] = (u[4 + j] - u[8 + j]) * 0.5
        t[2][j] = (u[4 + j] + u[8 + j]) * 0.5 + u[12 + j]
    for i in range(3):  # (G^T dU) G: the columns
        dw[3 * i] = t[i][0] + (t[i][1] + t[i][2]) * 0.5
        dw[3 * i + 1] = (t[i][1] - t[i][2]) * 0.5
        dw[3 * i + 2] = (t[i][1] + t[i][2]) * 0.5 + t[i][3]


def winograd2d_filter_gradient(
    const floating[:, :, :, ::1] du_part,   # IN  (n_chunks, 16, f, c): the chunks' dU
    double[:, :, ::1] dw,                   # OUT (f, c, 9)
    int n_threads,
):
    """dw = G^T dU G for each filter and channel (_winograd2d_dw), dU the sum of
    the chunks' (conv2d_weight_gradient_winograd2d). The filters on the
    threads."""
    cdef Py_ssize_t n_chunks = du_part.shape[0], nf = du_part.shape[2], c = du_part.shape[3]
    cdef Py_ssize_t f, ci
    if du_part.shape[1] != 16 or dw.shape[0] != nf or dw.shape[1] != c or dw.shape[2] != 9:
        raise ValueError("du_part and dw do not match")
    with nogil:
        for f in prange(nf, schedule='static', num_threads=n_threads):
            for ci in range(c):
                _winograd2d_dw(&du_part[0, 0, f, ci], n_chunks, 16 * nf * c, nf * c, &dw[f, ci, 0])

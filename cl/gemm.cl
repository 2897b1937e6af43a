/*
 * Kiln's own SGEMM for CPU OpenCL devices (PoCL): row-major C = alpha op(A) op(B) + beta C,
 * strided-batched. One work-item computes a register tile of GEMM_TM rows by GEMM_NV vectors
 * of GEMM_VW columns; the k-loop broadcasts one A scalar per row against B's row vectors with
 * fma, so the accumulators stay in vector registers. Launched with work-groups of one item:
 * on a CPU each work-group is one thread's task.
 *
 * The packed form, gemm_panels, has each work-item copy a k-block of op(B)'s column panel
 * into local memory as a contiguous, zero-padded micro-panel (gemm_pack_a first packs a
 * transposed A into the workspace: gemm_panels_a) and stream it with unit stride against
 * every row tile of its group: no edge cases, transposes or cache-set conflicts of large
 * leading dimensions on B's side of its k-loop; an untransposed A is read in place. On a CPU
 * local memory is a per-thread buffer, so the panel stays in that core's cache. Without
 * packing, gemm_nn .. gemm_tt read both operands in place (faster for small products, whose
 * packing costs more than it saves). gemm_nt_dot is a third form for NT products: dot
 * products of A's and B's rows, vectorised along k (below). Work-items of the in-place forms
 * take C's tiles in the order of gemm_grouped_tile.
 *
 * Build parameters (-D, defaults below): GEMM_TM, GEMM_NV, GEMM_VW (2, 4, 8 or 16).
 */
#ifndef GEMM_TM
#define GEMM_TM 14
#endif
#ifndef GEMM_NV
#define GEMM_NV 2
#endif
#ifndef GEMM_VW
#define GEMM_VW 16
#endif
#define GEMM_NW (GEMM_NV * GEMM_VW) /* columns per tile */

#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
#define realv GEMM_CAT(float, GEMM_VW)
#define vloadv GEMM_CAT(vload, GEMM_VW)
#define vstorev GEMM_CAT(vstore, GEMM_VW)

/* Zeroes a register tile's accumulators. */
inline void gemm_zero(realv acc[GEMM_TM][GEMM_NV])
{
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++)
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            acc[r][v] = (realv)(0.0f);
}

/* Tiles of `size` covering `extent`, without overflowing at extents near 2^32. */
inline uint gemm_tiles(const uint extent, const uint size)
{
    return extent / size + (extent % size != 0);
}

/*
 * The tile (ti, tj) that work-item l of a (tiles_m x tiles_n) grid computes, in groups of
 * `group` row tiles: within a group, column tiles in order and the group's row tiles fastest,
 * so consecutive items (which the CPU's threads take in order) reuse one B panel group times
 * while the group's A panels stay in cache; the last group may have fewer rows. group 1 is
 * row by row (C written along its rows), group tiles_m column by column.
 */
inline void gemm_grouped_tile(const uint l, const uint tiles_m, const uint tiles_n,
                              const uint group, uint *ti, uint *tj)
{
    const uint whole = tiles_m / group, per_group = group * tiles_n;
    const uint g = l / per_group;
    const uint rows = g < whole ? group : tiles_m - whole * group;
    const uint r = l - g * per_group;
    *tj = r / rows;
    *ti = g * group + r % rows;
}

/*
 * One tile of one batch entry. op(A)(i, p) = a[i * a_is + p * a_ps] and op(B)(p, j) =
 * b[p * b_ps + j * b_js], where the steps are 1 or the leading dimension depending on the
 * transposes; ta and tb are compile-time constants in each kernel below, so the steps fold.
 *
 * Edges: rows past m read row m - 1 (valid memory; the result is dropped), columns past n
 * read column n - 1 lane by lane. Full column tiles of an untransposed B load whole vectors.
 * beta == 0 never reads C, so NaN or garbage in C does not reach the result.
 */
inline void gemm_tile(const uint m, const uint n, const uint k, const float alpha,
                      const float beta, __global const float *a, const uint lda,
                      __global const float *b, const uint ldb, __global float *c, const uint ldc,
                      const bool ta, const bool tb, const uint ti, const uint tj)
{
    const uint j0 = tj * GEMM_NW;
    const uint i0 = ti * GEMM_TM;
    const uint a_is = ta ? 1 : lda, a_ps = ta ? lda : 1;
    const uint b_js = tb ? ldb : 1, b_ps = tb ? 1 : ldb;

    __global const float *arow[GEMM_TM];
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++)
        arow[r] = a + min(i0 + (uint)r, m - 1) * a_is;

    realv acc[GEMM_TM][GEMM_NV];
    gemm_zero(acc);

    const bool full_n = j0 + GEMM_NW <= n;
    if (!tb && full_n) {
        __global const float *bp = b + j0;
        for (uint p = 0; p < k; p++, bp += b_ps) {
            realv bv[GEMM_NV];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                bv[v] = vloadv(0, bp + v * GEMM_VW);
#pragma unroll
            for (int r = 0; r < GEMM_TM; r++) {
                const realv av = (realv)(arow[r][p * a_ps]);
#pragma unroll
                for (int v = 0; v < GEMM_NV; v++)
                    acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    } else {
        /* A transposed B or a partial column tile: gather B lane by lane. */
        __global const float *bcol[GEMM_NW];
#pragma unroll
        for (int l = 0; l < GEMM_NW; l++)
            bcol[l] = b + min(j0 + (uint)l, n - 1) * b_js;
        for (uint p = 0; p < k; p++) {
            float lanes[GEMM_NW];
#pragma unroll
            for (int l = 0; l < GEMM_NW; l++)
                lanes[l] = bcol[l][p * b_ps];
            realv bv[GEMM_NV];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                bv[v] = vloadv(v, lanes);
#pragma unroll
            for (int r = 0; r < GEMM_TM; r++) {
                const realv av = (realv)(arow[r][p * a_ps]);
#pragma unroll
                for (int v = 0; v < GEMM_NV; v++)
                    acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < GEMM_TM; r++) {
        const uint i = i0 + (uint)r;
        if (i >= m)
            break;
        __global float *crow = c + i * ldc + j0;
        if (full_n) {
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++) {
                realv out = (realv)(alpha) * acc[r][v];
                if (beta != 0.0f)
                    out = fma((realv)(beta), vloadv(v, crow), out);
                vstorev(out, v, crow);
            }
        } else {
            float lanes[GEMM_NW];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                vstorev(acc[r][v], v, lanes);
            for (uint l = 0; l < n - j0; l++) {
                const float out = alpha * lanes[l];
                crow[l] = beta != 0.0f ? fma(beta, crow[l], out) : out;
            }
        }
    }
}

/* Offsets and batch strides count elements. Global size: (tiles_m x tiles_n, 1, batch), tiles
 * in the order of gemm_grouped_tile; the third global dimension is the batch entry. */
#define GEMM_KERNEL(NAME, TA, TB)                                                              \
    __kernel void NAME(const uint m, const uint n, const uint k, const float alpha,            \
                       const float beta, __global const float *a, const uint a_offset,         \
                       const uint lda, const uint a_stride, __global const float *b,           \
                       const uint b_offset, const uint ldb, const uint b_stride,               \
                       __global float *c, const uint c_offset, const uint ldc,                 \
                       const uint c_stride, const uint group)                                  \
    {                                                                                          \
        uint ti, tj;                                                                           \
        gemm_grouped_tile((uint)get_global_id(0), gemm_tiles(m, GEMM_TM),                      \
                          gemm_tiles(n, GEMM_NW), group, &ti, &tj);                            \
        const uint q = (uint)get_global_id(2);                                                 \
        gemm_tile(m, n, k, alpha, beta, a + a_offset + q * a_stride, lda,                      \
                  b + b_offset + q * b_stride, ldb, c + c_offset + q * c_stride, ldc, TA, TB,  \
                  ti, tj);                                                                     \
    }

GEMM_KERNEL(gemm_nn, false, false)
GEMM_KERNEL(gemm_nt, false, true)
GEMM_KERNEL(gemm_tn, true, false)
GEMM_KERNEL(gemm_tt, true, true)

/* The sum of a vector's lanes, pairwise. */
inline float gemm_lane_sum(const realv v)
{
#if GEMM_VW == 16
    const float8 h8 = v.lo + v.hi;
    const float4 h4 = h8.lo + h8.hi;
#elif GEMM_VW == 8
    const float4 h4 = v.lo + v.hi;
#endif
#if GEMM_VW >= 8
    const float2 h2 = h4.lo + h4.hi;
#elif GEMM_VW == 4
    const float2 h2 = v.lo + v.hi;
#else
    const float2 h2 = v;
#endif
    return h2.x + h2.y;
}

/*
 * C = alpha A B^T + beta C as dot products (A untransposed, B transposed): C(i, j) is the sum
 * over p of A(i, p) B(j, p), and both rows are contiguous in p, so the k-loop loads one
 * GEMM_VW-vector from each of a tile's GEMM_TM rows of A and GEMM_NV rows of B and keeps
 * GEMM_TM x GEMM_NV vectors of partial sums, each summed across its lanes at the end (the
 * remainder of k past the last whole vector added after). gemm_nt instead gathers B's
 * columns lane by lane, one scalar load per lane and p. Rows past m and n read row m - 1 or
 * n - 1 and are not stored. Global size: (tiles_m x tiles_n, 1, batch) for tiles of GEMM_TM
 * rows by GEMM_NV columns, in the order of gemm_grouped_tile.
 */
__kernel void gemm_nt_dot(const uint m, const uint n, const uint k, const float alpha,
                          const float beta, __global const float *a, const uint a_offset,
                          const uint lda, const uint a_stride, __global const float *b,
                          const uint b_offset, const uint ldb, const uint b_stride,
                          __global float *c, const uint c_offset, const uint ldc,
                          const uint c_stride, const uint group)
{
    uint ti, tj;
    gemm_grouped_tile((uint)get_global_id(0), gemm_tiles(m, GEMM_TM),
                      gemm_tiles(n, GEMM_NV), group, &ti, &tj);
    const uint q = (uint)get_global_id(2);
    const uint j0 = tj * GEMM_NV;
    const uint i0 = ti * GEMM_TM;
    __global const float *arow[GEMM_TM];
    __global const float *brow[GEMM_NV];
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++)
        arow[r] = a + a_offset + q * a_stride + min(i0 + (uint)r, m - 1) * lda;
#pragma unroll
    for (int v = 0; v < GEMM_NV; v++)
        brow[v] = b + b_offset + q * b_stride + min(j0 + (uint)v, n - 1) * ldb;
    realv acc[GEMM_TM][GEMM_NV];
    gemm_zero(acc);
    uint p = 0;
    for (; p + GEMM_VW <= k; p += GEMM_VW) {
        realv bv[GEMM_NV];
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            bv[v] = vloadv(0, brow[v] + p);
#pragma unroll
        for (int r = 0; r < GEMM_TM; r++) {
            const realv av = vloadv(0, arow[r] + p);
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                acc[r][v] = fma(av, bv[v], acc[r][v]);
        }
    }
    __global float *ctile = c + c_offset + q * c_stride;
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++) {
        const uint i = i0 + (uint)r;
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++) {
            const uint j = j0 + (uint)v;
            float sum = gemm_lane_sum(acc[r][v]);
            for (uint t = p; t < k; t++)
                sum = fma(arow[r][t], brow[v][t], sum);
            if (i < m && j < n) {
                __global float *out = ctile + i * ldc + j;
                *out = beta != 0.0f ? fma(beta, *out, alpha * sum) : alpha * sum;
            }
        }
    }
}

/* ---- packed operands ---- */

/* Work-items of gemm_pack_a each copy GEMM_PACK_K consecutive p of one tile. */
#define GEMM_PACK_K 256

/*
 * op(A) (m, k) -> ap[q][tile][p][r] = op(A)(tile * GEMM_TM + r, p) for a transposed A (an
 * untransposed one is read in place: gemm_panels), rows past m zero, at the start of the
 * workspace ap. For each p the tile's rows are contiguous in A and in the panel. Global size:
 * (ceil(k / GEMM_PACK_K), ceil(m / GEMM_TM), batch entries packed).
 */
__kernel void gemm_pack_a(const uint m, const uint k, __global const float *a, const uint a_offset,
                          const uint lda, const uint a_stride, __global float *ap)
{
    const uint p0 = (uint)get_global_id(0) * GEMM_PACK_K;
    const uint t = (uint)get_global_id(1), tiles = (uint)get_global_size(1);
    const uint q = (uint)get_global_id(2);
    a += a_offset + q * a_stride;
    ap += ((q * tiles + t) * k) * GEMM_TM;
    const uint p1 = min(p0 + GEMM_PACK_K, k);
    for (uint p = p0; p < p1; p++) {
#pragma unroll
        for (int r = 0; r < GEMM_TM; r++) {
            const uint i = t * GEMM_TM + (uint)r;
            ap[p * GEMM_TM + r] = i < m ? a[p * lda + i] : 0.0f;
        }
    }
}

#if GEMM_NW % 16 == 0
/*
 * Transposes 16 x 16 floats held as 16 row vectors in four butterfly stages: stage h swaps the
 * off-diagonal h x h blocks of every 2h x 2h block, i.e. rows i and i + h (i & h == 0) trade
 * the lanes with h set in row i for the lanes without it in row i + h. Written with swizzles,
 * which compile to register shuffles; shuffle2 with computed masks compiled lane by lane on
 * PoCL (3x slower than the scalar copy).
 */
inline void gemm_transpose16(float16 rows[16])
{
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float16 x = rows[i], y = rows[i + 8];
        rows[i] = (float16)(x.lo, y.lo);
        rows[i + 8] = (float16)(x.hi, y.hi);
    }
#pragma unroll
    for (int i = 0; i < 16; i++) {
        if ((i & 4) == 0) {
            const float16 x = rows[i], y = rows[i + 4];
            rows[i] = (float16)(x.s0123, y.s0123, x.s89ab, y.s89ab);
            rows[i + 4] = (float16)(x.s4567, y.s4567, x.scdef, y.scdef);
        }
    }
#pragma unroll
    for (int i = 0; i < 16; i++) {
        if ((i & 2) == 0) {
            const float16 x = rows[i], y = rows[i + 2];
            rows[i] = (float16)(x.s01, y.s01, x.s45, y.s45, x.s89, y.s89, x.scd, y.scd);
            rows[i + 2] = (float16)(x.s23, y.s23, x.s67, y.s67, x.sab, y.sab, x.sef, y.sef);
        }
    }
#pragma unroll
    for (int i = 0; i < 16; i += 2) {
        const float16 x = rows[i], y = rows[i + 1];
        rows[i] = (float16)(x.s0, y.s0, x.s2, y.s2, x.s4, y.s4, x.s6, y.s6, x.s8, y.s8, x.sa,
                            y.sa, x.sc, y.sc, x.se, y.se);
        rows[i + 1] = (float16)(x.s1, y.s1, x.s3, y.s3, x.s5, y.s5, x.s7, y.s7, x.s9, y.s9, x.sb,
                                y.sb, x.sd, y.sd, x.sf, y.sf);
    }
}
#endif

/*
 * op(B)'s rows p0 .. p1 - 1 of column tile j0 / GEMM_NW into the panel bp, in local memory:
 * bp[p - p0][l] = op(B)(p, j0 + l), columns past n zero.
 */
inline void gemm_pack_b_rows(const uint n, __global const float *b, const uint ldb, const bool tb,
                             const uint j0, const uint p0, const uint p1, __local float *bp)
{
    if (!tb && j0 + GEMM_NW <= n) {
        for (uint p = p0; p < p1; p++)
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                vstorev(vloadv(v, b + p * ldb + j0), v, bp + (p - p0) * GEMM_NW);
        return;
    }
    if (tb) {
        uint p = p0;
#if GEMM_NW % 16 == 0
        /* 16 x 16 blocks: 16 of B's rows (op(B)'s columns) read along p, transposed in
         * registers, stored as 16 panel rows. */
        for (; p + 16 <= p1; p += 16) {
            for (uint l0 = 0; l0 < GEMM_NW; l0 += 16) {
                float16 rows[16];
#pragma unroll
                for (uint r = 0; r < 16; r++) {
                    const uint j = j0 + l0 + r;
                    rows[r] = j < n ? vload16(0, b + j * ldb + p) : (float16)(0.0f);
                }
                gemm_transpose16(rows);
#pragma unroll
                for (uint r = 0; r < 16; r++)
                    vstore16(rows[r], 0, bp + (p - p0 + r) * GEMM_NW + l0);
            }
        }
#endif
        /* column by column: each reads one stored row of B, along p */
        for (int l = 0; l < GEMM_NW; l++) {
            const uint j = j0 + (uint)l;
            for (uint pr = p; pr < p1; pr++)
                bp[(pr - p0) * GEMM_NW + l] = j < n ? b[j * ldb + pr] : 0.0f;
        }
        return;
    }
    for (uint p = p0; p < p1; p++) {
#pragma unroll
        for (int l = 0; l < GEMM_NW; l++) {
            const uint j = j0 + (uint)l;
            bp[(p - p0) * GEMM_NW + l] = j < n ? b[p * ldb + j] : 0.0f;
        }
    }
}

/*
 * One tile (ti, tj) of C = alpha op(A) op(B) + beta C over the k-block p0 .. p0 + kb - 1, from
 * that block of B's column panel tj in local memory (gemm_pack_b_rows) and either A's packed
 * panels (a_packed: gemm_pack_a's layout over the whole k; lda unused) or an untransposed A
 * read in place (leading dimension lda; rows past m read row m - 1). a_packed is a
 * compile-time constant in each kernel below, so each gets its own k-loop. A in place skips a
 * packing pass that costs more than it saves: at 1008 x 1024 x 1024 the k-loop is 2-3% slower
 * than from a packed A (its 14 rows, 4 KB apart, share an L1 set; L2 holds them), and the
 * pass took ~0.7 ms of ~11. Later k-blocks add to C: the caller passes beta 1 for them.
 */
inline void gemm_panel_tile(const uint m, const uint n, const uint k, const uint p0,
                            const uint kb, const float alpha, const float beta,
                            __global const float *a, const uint lda, const bool a_packed,
                            __local const float *pb, __global float *c, const uint ldc,
                            const uint ti, const uint tj)
{
    const uint j0 = tj * GEMM_NW, i0 = ti * GEMM_TM;
    __global const float *arow[GEMM_TM];
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++)
        arow[r] = a_packed ? a + (ti * k + p0) * GEMM_TM + r
                           : a + min(i0 + (uint)r, m - 1) * lda + p0;
    const uint a_ps = a_packed ? GEMM_TM : 1; /* step along p */

    realv acc[GEMM_TM][GEMM_NV];
    gemm_zero(acc);
    for (uint p = 0; p < kb; p++, pb += GEMM_NW) {
        realv bv[GEMM_NV];
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            bv[v] = vloadv(v, pb);
#pragma unroll
        for (int r = 0; r < GEMM_TM; r++) {
            const realv av = (realv)(arow[r][p * a_ps]);
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                acc[r][v] = fma(av, bv[v], acc[r][v]);
        }
    }

    const bool full_n = j0 + GEMM_NW <= n;
    /* The same store as gemm_tile's, written out again on purpose: as a shared inline function
     * or macro it measured 3-4% slower at 1024^3 on PoCL (A/B, bench/ops.c). */
#pragma unroll
    for (int r = 0; r < GEMM_TM; r++) {
        const uint i = i0 + (uint)r;
        if (i >= m)
            break;
        __global float *crow = c + i * ldc + j0;
        if (full_n) {
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++) {
                realv out = (realv)(alpha) * acc[r][v];
                if (beta != 0.0f)
                    out = fma((realv)(beta), vloadv(v, crow), out);
                vstorev(out, v, crow);
            }
        } else {
            float lanes[GEMM_NW];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                vstorev(acc[r][v], v, lanes);
            for (uint l = 0; l < n - j0; l++) {
                const float out = alpha * lanes[l];
                crow[l] = beta != 0.0f ? fma(beta, crow[l], out) : out;
            }
        }
    }
}

/*
 * C = alpha op(A) op(B) + beta C with op(B) packed by the work-items that use it. Work-item l
 * takes column panel tj = l % tiles_n and the row tiles of group l / tiles_n (row_tiles of
 * them, the last group fewer); for each k-block of kb rows it packs that block of its panel
 * into local memory (16 x 16 register transposes when B is transposed), then multiplies every
 * row tile of its group with it, the first block scaling C by beta and the others adding to
 * it. A is read in place (gemm_panels; A untransposed) or from gemm_pack_a's panels
 * (gemm_panels_a; a = the workspace, a_offset 0, lda unused, a_stride its batch step or 0).
 * The panel is packed and used by one core and stays in its cache: local memory on a CPU is
 * one buffer per thread, reused, so the panel is never written back to memory, and no second
 * launch waits for a packing pass. Global size: (tiles_n x row groups, 1, batch); panel: kb x
 * GEMM_NW floats of local memory.
 */
#define GEMM_PANELS_KERNEL(NAME, A_PACKED)                                                      \
    __kernel void NAME(const uint m, const uint n, const uint k, const float alpha,            \
                       const float beta, __global const float *a, const uint a_offset,         \
                       const uint lda, const uint a_stride, __global const float *b,           \
                       const uint b_offset, const uint ldb, const uint b_stride, const uint tb, \
                       __global float *c, const uint c_offset, const uint ldc,                 \
                       const uint c_stride, const uint row_tiles, const uint kb,               \
                       __local float *panel)                                                   \
    {                                                                                          \
        const uint tiles_n = gemm_tiles(n, GEMM_NW), l = (uint)get_global_id(0);               \
        const uint tj = l % tiles_n, t0 = l / tiles_n * row_tiles;                             \
        const uint t1 = min(t0 + row_tiles, gemm_tiles(m, GEMM_TM));                           \
        const uint q = (uint)get_global_id(2);                                                 \
        a += a_offset + q * a_stride;                                                          \
        b += b_offset + q * b_stride;                                                          \
        c += c_offset + q * c_stride;                                                          \
        for (uint p0 = 0; p0 < k; p0 += kb) {                                                  \
            const uint p1 = min(p0 + kb, k);                                                   \
            gemm_pack_b_rows(n, b, ldb, tb != 0, tj * GEMM_NW, p0, p1, panel);                 \
            for (uint ti = t0; ti < t1; ti++)                                                  \
                gemm_panel_tile(m, n, k, p0, p1 - p0, alpha, p0 == 0 ? beta : 1.0f, a, lda,    \
                                A_PACKED, panel, c, ldc, ti, tj);                              \
        }                                                                                      \
    }

GEMM_PANELS_KERNEL(gemm_panels, false)
GEMM_PANELS_KERNEL(gemm_panels_a, true)

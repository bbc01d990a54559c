/* Convolution and pooling (kernels/conv_contract.py) for one precision: included by conv.c
 * with T and S defined. Arrays are C-contiguous NCHW; the Cython layer checked every size in
 * the fnn_conv_shape, so these loops trust them. Results follow kernels/numpy_conv.py.
 *
 * Convolution runs on blocks of images: im2col writes a block's windows as rows
 * (image, oh, ow) x columns (c, i, j) into a scratch buffer, and the backend's packed GEMM
 * (threaded by its own rule) multiplies that by the weights. One large GEMM per block keeps
 * the micro-kernel busy where a GEMM per image would be a few rows of packing overhead. */

/* Rows of cols for images [n0, n0 + nb): zero where a window lies in the padding. */
static void FN(im2col)(const fnn_conv_shape *s, const T *x, fnn_idx n0, fnn_idx nb, T *cols)
{
    const fnn_idx C = s->c, H = s->h, W = s->w, KH = s->kh, KW = s->kw, OH = s->oh, OW = s->ow;
    const fnn_idx K = C * KH * KW, units = nb * OH;
    const fnn_idx sh = s->sh, sw = s->sw, ph = s->ph, pw = s->pw;
    int team = fnn_team((double)units * (double)(OW * K), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx u = 0; u < units; ++u) {     /* one output row (image, oh) per unit */
        const fnn_idx n = u / OH, oh = u % OH;
        const T *xn = x + (n0 + n) * C * H * W;
        T *d = cols + u * OW * K;
        for (fnn_idx ow = 0; ow < OW; ++ow)
            for (fnn_idx c = 0; c < C; ++c)
                for (fnn_idx i = 0; i < KH; ++i) {
                    const fnn_idx ih = oh * sh + i - ph;
                    if (ih < 0 || ih >= H) {
                        for (fnn_idx j = 0; j < KW; ++j)
                            *d++ = 0;
                        continue;
                    }
                    const T *xr = xn + (c * H + ih) * W;
                    for (fnn_idx j = 0; j < KW; ++j) {
                        const fnn_idx iw = ow * sw + j - pw;
                        *d++ = (iw >= 0 && iw < W) ? xr[iw] : (T)0;
                    }
                }
    }
}

/* dx of images [n0, n0 + nb) = the sum of every window's column of dcols at its place.
 * A thread owns whole (image, channel) planes, so overlapping windows add without races. */
static void FN(col2im)(const fnn_conv_shape *s, const T *dcols, fnn_idx n0, fnn_idx nb, T *dx)
{
    const fnn_idx C = s->c, H = s->h, W = s->w, KH = s->kh, KW = s->kw, OH = s->oh, OW = s->ow;
    const fnn_idx K = C * KH * KW, units = nb * C;
    const fnn_idx sh = s->sh, sw = s->sw, ph = s->ph, pw = s->pw;
    int team = fnn_team((double)units * (double)(OH * OW * KH * KW), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx u = 0; u < units; ++u) {
        const fnn_idx n = u / C, c = u % C;
        T *plane = dx + ((n0 + n) * C + c) * H * W;
        for (fnn_idx e = 0; e < H * W; ++e)
            plane[e] = 0;
        for (fnn_idx oh = 0; oh < OH; ++oh)
            for (fnn_idx ow = 0; ow < OW; ++ow) {
                const T *src = dcols + ((n * OH + oh) * OW + ow) * K + c * KH * KW;
                for (fnn_idx i = 0; i < KH; ++i) {
                    const fnn_idx ih = oh * sh + i - ph;
                    if (ih < 0 || ih >= H)
                        continue;
                    T *dr = plane + ih * W;
                    for (fnn_idx j = 0; j < KW; ++j) {
                        const fnn_idx iw = ow * sw + j - pw;
                        if (iw >= 0 && iw < W)
                            dr[iw] += src[i * KW + j];
                    }
                }
            }
    }
}

/* Images per block: cols of at most FNN_CONV_BLOCK_BYTES (at least one image); 0 if even
 * one image's scratch would not fit in a size_t. */
static fnn_idx FN(conv_block)(const fnn_conv_shape *s)
{
    const size_t p = (size_t)(s->oh * s->ow), k = (size_t)(s->c * s->kh * s->kw);
    const size_t o = (size_t)s->o, per = p * (k > o ? k : o);
    if (per == 0 || k > SIZE_MAX / sizeof(T) / p || o > SIZE_MAX / sizeof(T) / p)
        return 0;
    size_t nb = FNN_CONV_BLOCK_BYTES / sizeof(T) / per;
    if (nb < 1)
        nb = 1;
    return nb < (size_t)s->n ? (fnn_idx)nb : s->n;
}

/* res (nb, P, O) -> out (nb, O, P), or back when to_rows: a thread per image. */
static void FN(swap_po)(fnn_idx nb, fnn_idx P, fnn_idx O, const T *from, T *to, int to_rows)
{
    int team = fnn_team((double)nb * (double)(P * O), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx n = 0; n < nb; ++n) {
        const T *f = from + n * P * O;
        T *t = to + n * P * O;
        for (fnn_idx oc = 0; oc < O; ++oc)
            for (fnn_idx p = 0; p < P; ++p) {
                if (to_rows)
                    t[p * O + oc] = f[oc * P + p];
                else
                    t[oc * P + p] = f[p * O + oc];
            }
    }
}

/* out = conv(x, w) + b. Returns 0, or -1 if the scratch buffers cannot be allocated. */
static int FN(conv_forward)(const fnn_conv_shape *s, const T *x, const T *wt, const T *b, T *out)
{
    const fnn_idx P = s->oh * s->ow, K = s->c * s->kh * s->kw, O = s->o;
    const fnn_idx nb = FN(conv_block)(s);
    T *cols = nb ? malloc((size_t)(nb * P * K) * sizeof(T)) : NULL;
    T *res = nb ? malloc((size_t)(nb * P * O) * sizeof(T)) : NULL;
    if (!cols || !res) {
        free(cols);
        free(res);
        return -1;
    }
    FN(fnn_epi) epi = {b, FNN_LINEAR, 0};   /* the bias added in the GEMM's epilogue */
    for (fnn_idx n0 = 0; n0 < s->n; n0 += nb) {
        const fnn_idx cnt = FNN_MIN(nb, s->n - n0), m = cnt * P;
        FN(im2col)(s, x, n0, cnt, cols);
        /* res (m, O) = cols (m, K) w^T; w (O, K) seen as its transpose by swapped strides */
        FN(fnn_gemm_packed)(m, O, K, 1, cols, K, 1, wt, 1, K, 0, res, O, &epi, fnn_gemm_threads(m, O, K));
        FN(swap_po)(cnt, P, O, res, out + n0 * O * P, 0);
    }
    free(cols);
    free(res);
    return 0;
}

/* db = the sums of dy per channel (in double); dw = sum over blocks of rows^T cols; dx (unless
 * NULL) = col2im(rows w). rows is dy as (image, p) x O. Returns 0, or -1 (out of memory). */
static int FN(conv_backward)(const fnn_conv_shape *s, const T *x, const T *wt, const T *dy, T *dx,
                             T *dw, T *db)
{
    const fnn_idx P = s->oh * s->ow, K = s->c * s->kh * s->kw, O = s->o, N = s->n;
    const fnn_idx nb = FN(conv_block)(s);
    T *cols = nb ? malloc((size_t)(nb * P * K) * sizeof(T)) : NULL;
    T *rows = nb ? malloc((size_t)(nb * P * O) * sizeof(T)) : NULL;
    if (!cols || !rows) {
        free(cols);
        free(rows);
        return -1;
    }
    int team = fnn_team((double)N * (double)(O * P), FNN_GRAIN_LIGHT);
    if (team > O)
        team = (int)O;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx oc = 0; oc < O; ++oc) {
        double acc = 0;
        for (fnn_idx n = 0; n < N; ++n) {
            const T *d = dy + (n * O + oc) * P;
            for (fnn_idx p = 0; p < P; ++p)
                acc += (double)d[p];
        }
        db[oc] = (T)acc;
    }
    for (fnn_idx n0 = 0; n0 < N; n0 += nb) {
        const fnn_idx cnt = FNN_MIN(nb, N - n0), m = cnt * P;
        FN(im2col)(s, x, n0, cnt, cols);
        FN(swap_po)(cnt, P, O, dy + n0 * O * P, rows, 1);
        /* dw (O, K) (+)= rows^T (O, m) cols (m, K): the first block overwrites */
        FN(fnn_gemm_packed)(O, K, m, 1, rows, 1, O, cols, K, 1, n0 ? 1 : 0, dw, K, NULL,
                            fnn_gemm_threads(O, K, m));
        if (!dx)
            continue;
        /* dcols (m, K) = rows (m, O) w (O, K), into cols (no longer needed) */
        FN(fnn_gemm_packed)(m, K, O, 1, rows, O, 1, wt, K, 1, 0, cols, K, NULL, fnn_gemm_threads(m, K, O));
        FN(col2im)(s, cols, n0, cnt, dx);
    }
    free(cols);
    free(rows);
    return 0;
}

/* --- pooling: a thread owns whole (image, channel) planes ------------------------------ */

/* The max of the window at (h0, w0) and its flat index in the plane: the first maximum in
 * row-major order, or the first NaN (which wins as soon as it is seen), as numpy.argmax. */
static inline T FN(window_max)(const T *xp, fnn_idx W, fnn_idx h0, fnn_idx w0, fnn_idx KH,
                               fnn_idx KW, int64_t *at)
{
    fnn_idx best = h0 * W + w0;
    T m = xp[best];
    if (m != m) {
        *at = best;
        return m;
    }
    for (fnn_idx i = 0; i < KH; ++i)
        for (fnn_idx j = 0; j < KW; ++j) {
            const fnn_idx e = (h0 + i) * W + w0 + j;
            const T v = xp[e];
            if (v > m) {
                m = v;
                best = e;
            } else if (v != v) {
                *at = e;
                return v;
            }
        }
    *at = best;
    return m;
}

static void FN(maxpool_forward)(const fnn_conv_shape *s, const T *x, T *out, int64_t *argmax)
{
    const fnn_idx planes = s->n * s->c, H = s->h, W = s->w, OH = s->oh, OW = s->ow;
    int team = fnn_team((double)planes * (double)(OH * OW * s->kh * s->kw), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx pl = 0; pl < planes; ++pl) {
        const T *xp = x + pl * H * W;
        T *op = out + pl * OH * OW;
        int64_t *ap = argmax + pl * OH * OW;
        for (fnn_idx oh = 0; oh < OH; ++oh)
            for (fnn_idx ow = 0; ow < OW; ++ow)
                op[oh * OW + ow] = FN(window_max)(xp, W, oh * s->sh, ow * s->sw, s->kh, s->kw,
                                                  &ap[oh * OW + ow]);
    }
}

/* Every index was checked to lie in [0, hw) before this runs (conv.c). */
static void FN(maxpool_backward)(fnn_idx planes, fnn_idx hw, fnn_idx ohw, const T *dy,
                                 const int64_t *argmax, T *dx)
{
    int team = fnn_team((double)planes * (double)(hw + ohw), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx pl = 0; pl < planes; ++pl) {
        T *dp = dx + pl * hw;
        const T *g = dy + pl * ohw;
        const int64_t *ap = argmax + pl * ohw;
        for (fnn_idx e = 0; e < hw; ++e)
            dp[e] = 0;
        for (fnn_idx q = 0; q < ohw; ++q)
            dp[ap[q]] += g[q];
    }
}

static void FN(avgpool_forward)(const fnn_conv_shape *s, const T *x, T *out)
{
    const fnn_idx planes = s->n * s->c, H = s->h, W = s->w, OH = s->oh, OW = s->ow;
    const fnn_idx KH = s->kh, KW = s->kw;
    const double area = (double)(KH * KW);
    int team = fnn_team((double)planes * (double)(OH * OW * KH * KW), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx pl = 0; pl < planes; ++pl) {
        const T *xp = x + pl * H * W;
        T *op = out + pl * OH * OW;
        for (fnn_idx oh = 0; oh < OH; ++oh)
            for (fnn_idx ow = 0; ow < OW; ++ow) {
                double acc = 0;   /* summed in double, as the NumPy kernel */
                for (fnn_idx i = 0; i < KH; ++i) {
                    const T *xr = xp + (oh * s->sh + i) * W + ow * s->sw;
                    for (fnn_idx j = 0; j < KW; ++j)
                        acc += (double)xr[j];
                }
                op[oh * OW + ow] = (T)(acc / area);
            }
    }
}

static void FN(avgpool_backward)(const fnn_conv_shape *s, const T *dy, T *dx)
{
    const fnn_idx planes = s->n * s->c, H = s->h, W = s->w, OH = s->oh, OW = s->ow;
    const fnn_idx KH = s->kh, KW = s->kw;
    const T area = (T)(KH * KW);
    int team = fnn_team((double)planes * (double)(H * W + OH * OW * KH * KW), FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx pl = 0; pl < planes; ++pl) {
        T *dp = dx + pl * H * W;
        const T *g = dy + pl * OH * OW;
        for (fnn_idx e = 0; e < H * W; ++e)
            dp[e] = 0;
        for (fnn_idx oh = 0; oh < OH; ++oh)
            for (fnn_idx ow = 0; ow < OW; ++ow) {
                const T share = g[oh * OW + ow] / area;   /* dy / (KH KW) in T, as NumPy */
                for (fnn_idx i = 0; i < KH; ++i) {
                    T *dr = dp + (oh * s->sh + i) * W + ow * s->sw;
                    for (fnn_idx j = 0; j < KW; ++j)
                        dr[j] += share;
                }
            }
    }
}

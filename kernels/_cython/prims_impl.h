/* The tier-1 primitives (kernels/primitives.py) for one precision: included by prims.c
 * with T, S, EXP, LOG, LOG1P, SQRT, FABS defined. Arrays are C-contiguous; results follow
 * the NumPy reference, IEEE included (the build has no -ffast-math: log(0) = -inf,
 * sqrt(-1) = NaN, 1/0 = inf, and maximum/minimum/max propagate NaN as NumPy does, which
 * fmax/fmin would not). Sums accumulate in double and are rounded to T once. */

/* out may be the very input (in place). GCC's run-time overlap check then fails and only
 * its scalar loop runs; out[i] depends on the inputs at i alone and the contract refuses
 * partial overlaps, so `ivdep` (no loop-carried dependence) lets every case vectorise. */
#ifndef PRIM_MAP
#define PRIM_MAP(n, STATEMENT)                                                 \
    do {                                                                       \
        _Pragma("GCC ivdep") for (fnn_idx i = 0; i < (n); ++i) { STATEMENT; }  \
    } while (0)
#endif

static void FN(unary_span)(int op, fnn_idx n, const T *x, T *out)
{
    switch (op) {
    case FNN_U_COPY: PRIM_MAP(n, out[i] = x[i]); break;
    case FNN_U_EXP: PRIM_MAP(n, out[i] = EXP(x[i])); break;
    case FNN_U_LOG: PRIM_MAP(n, out[i] = LOG(x[i])); break;
    case FNN_U_LOG1P: PRIM_MAP(n, out[i] = LOG1P(x[i])); break;
    case FNN_U_SQRT: PRIM_MAP(n, out[i] = SQRT(x[i])); break;
    case FNN_U_ABS: PRIM_MAP(n, out[i] = FABS(x[i])); break;
    case FNN_U_NEG: PRIM_MAP(n, out[i] = -x[i]); break;
    case FNN_U_RECIPROCAL: PRIM_MAP(n, out[i] = (T)1 / x[i]); break;
    case FNN_U_SQUARE: PRIM_MAP(n, out[i] = x[i] * x[i]); break;
    case FNN_U_SIGN:   /* sign(NaN) is NaN, as np.sign */
        PRIM_MAP(n, T v = x[i]; out[i] = v != v ? v : (T)((v > 0) - (v < 0)));
        break;
    default: break;    /* unknown codes are refused by the Cython layer */
    }
}

static void FN(unary)(int op, fnn_idx n, const T *x, T *out)
{
    int heavy = op == FNN_U_EXP || op == FNN_U_LOG || op == FNN_U_LOG1P;
    int team = fnn_team((double)n, heavy ? FNN_GRAIN_HEAVY : FNN_GRAIN_LIGHT);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx i0 = n * t / nt, i1 = n * (t + 1) / nt;
        FN(unary_span)(op, i1 - i0, x + i0, out + i0);
    }
}

static void FN(binary_span)(int op, fnn_idx n, const T *a, const T *b, T *out)
{
    switch (op) {
    case FNN_B_ADD: PRIM_MAP(n, out[i] = a[i] + b[i]); break;
    case FNN_B_SUB: PRIM_MAP(n, out[i] = a[i] - b[i]); break;
    case FNN_B_MUL: PRIM_MAP(n, out[i] = a[i] * b[i]); break;
    case FNN_B_DIV: PRIM_MAP(n, out[i] = a[i] / b[i]); break;
    case FNN_B_MAXIMUM:   /* a NaN on either side wins */
        PRIM_MAP(n, T p = a[i]; T q = b[i]; out[i] = (p >= q || p != p) ? p : q);
        break;
    case FNN_B_MINIMUM:
        PRIM_MAP(n, T p = a[i]; T q = b[i]; out[i] = (p <= q || p != p) ? p : q);
        break;
    default: break;
    }
}

static void FN(binary)(int op, fnn_idx n, const T *a, const T *b, T *out)
{
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx i0 = n * t / nt, i1 = n * (t + 1) / nt;
        FN(binary_span)(op, i1 - i0, a + i0, b + i0, out + i0);
    }
}

/* --- reductions of an (n, d) array along one axis ------------------------------------- */

static void FN(row_sums)(fnn_idx n, fnn_idx d, const T *x, T *out)
{
    int team = fnn_team((double)n * (double)d, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        const T *xi = x + i * d;
        double s = 0;
        for (fnn_idx j = 0; j < d; ++j)
            s += (double)xi[j];
        out[i] = (T)s;
    }
}

/* max(m, v), NaN if either is: once a NaN is seen it stays. */
#ifndef PRIM_BIGGER
#define PRIM_BIGGER(m, v) ((((v) > (m)) | ((v) != (v))) ? (v) : (m))   /* | : no branch */
#endif
#ifndef PRIM_LANES
#define PRIM_LANES 16
#endif

/* The max of x[0..d), d >= 1. One running max carried through the loop cannot be
 * vectorised without fast-math (NaN makes it order-dependent for GCC), so PRIM_LANES
 * running maxima, one per lane of a vector, walk the row and are combined at the end. */
static T FN(line_max)(fnn_idx d, const T *x)
{
    T m = x[0];
    fnn_idx j = 1;
    if (d >= 2 * PRIM_LANES) {
        T acc[PRIM_LANES];
        for (int l = 0; l < PRIM_LANES; ++l)
            acc[l] = x[l];
        for (j = PRIM_LANES; j + PRIM_LANES <= d; j += PRIM_LANES) {
#pragma GCC unroll 1   /* unrolled in full first, this loop is not vectorised at all */
            for (int l = 0; l < PRIM_LANES; ++l)
                acc[l] = PRIM_BIGGER(acc[l], x[j + l]);
        }
        m = acc[0];
        for (int l = 1; l < PRIM_LANES; ++l)
            m = PRIM_BIGGER(m, acc[l]);
    }
    for (; j < d; ++j)
        m = PRIM_BIGGER(m, x[j]);
    return m;
}

static void FN(row_maxes)(fnn_idx n, fnn_idx d, const T *x, T *out)
{
    int team = fnn_team((double)n * (double)d, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i)
        out[i] = FN(line_max)(d, x + i * d);
}

/* Column reductions walk blocks of PRIM_COLS columns (one accumulator each, on the stack)
 * down the rows; threads take whole blocks, so each owns its outputs. */
#ifndef PRIM_COLS
#define PRIM_COLS 64
#endif

static int FN(column_team)(fnn_idx n, fnn_idx d)
{
    fnn_idx blocks = (d + PRIM_COLS - 1) / PRIM_COLS;
    int team = fnn_team((double)n * (double)d, FNN_GRAIN_LIGHT);
    return blocks < team ? (int)blocks : team;
}

static void FN(column_sums)(fnn_idx n, fnn_idx d, const T *x, T *out)
{
    fnn_idx blocks = (d + PRIM_COLS - 1) / PRIM_COLS;
    int team = FN(column_team)(n, d);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx blk = 0; blk < blocks; ++blk) {
        fnn_idx j0 = blk * PRIM_COLS, w = FNN_MIN(PRIM_COLS, d - j0);
        double acc[PRIM_COLS];
        for (fnn_idx j = 0; j < w; ++j)
            acc[j] = 0;
        for (fnn_idx i = 0; i < n; ++i) {
            const T *xi = x + i * d + j0;
            for (fnn_idx j = 0; j < w; ++j)
                acc[j] += (double)xi[j];
        }
        for (fnn_idx j = 0; j < w; ++j)
            out[j0 + j] = (T)acc[j];
    }
}

static void FN(column_maxes)(fnn_idx n, fnn_idx d, const T *x, T *out)
{
    fnn_idx blocks = (d + PRIM_COLS - 1) / PRIM_COLS;
    int team = FN(column_team)(n, d);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx blk = 0; blk < blocks; ++blk) {
        fnn_idx j0 = blk * PRIM_COLS, w = FNN_MIN(PRIM_COLS, d - j0);
        T *o = out + j0;
        for (fnn_idx j = 0; j < w; ++j)
            o[j] = x[j0 + j];
        for (fnn_idx i = 1; i < n; ++i) {
            const T *xi = x + i * d + j0;
            for (fnn_idx j = 0; j < w; ++j)
                o[j] = PRIM_BIGGER(o[j], xi[j]);
        }
    }
}

/* --- rows by index: indices are scanned first, so a bad one writes nothing ------------- */

static fnn_idx FN(gather_rows)(fnn_idx r, fnn_idx d, const T *x, fnn_idx n, const int64_t *idx,
                               T *out)
{
    fnn_idx bad = prim_first_bad(n, idx, r);
    if (bad >= 0)
        return bad;
    int team = fnn_team((double)n * (double)d, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        const T *src = x + (fnn_idx)idx[i] * d;
        T *dst = out + i * d;
        for (fnn_idx j = 0; j < d; ++j)
            dst[j] = src[j];
    }
    return -1;
}

/* Threads split the columns (16 at least each): every element of out has one writer, and
 * the rows are added in order, so repeated indices sum as np.add.at does. */
static fnn_idx FN(scatter_add_rows)(fnn_idx n, fnn_idx d, const T *src, const int64_t *idx,
                                    fnn_idx r, T *out)
{
    fnn_idx bad = prim_first_bad(n, idx, r);
    if (bad >= 0)
        return bad;
    int team = fnn_team((double)n * (double)d, FNN_GRAIN_LIGHT);
    if (team > d / 16)
        team = d >= 32 ? (int)(d / 16) : 1;
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx j0 = d * t / nt, j1 = d * (t + 1) / nt;
        for (fnn_idx i = 0; i < n; ++i) {
            const T *s = src + i * d;
            T *o = out + (fnn_idx)idx[i] * d;
            for (fnn_idx j = j0; j < j1; ++j)
                o[j] += s[j];
        }
    }
    return -1;
}

/* Every non-GEMM kernel for one precision (included by ops.c with T, S, EXP, LOG,
 * LOG1P, TANH, SQRT, FABS defined). Arrays are C-contiguous; `n` counts elements,
 * or rows when a column count `c`/`d`/`o` follows. Formulas and their rounding follow
 * the NumPy reference (numpy_backend.py): scalars are rounded to T once, element
 * arithmetic is in T, and loss means and norms follow the contract's rule for reductions
 * (elements converted to double before any arithmetic, sums in double).
 * Loops whose work is large enough run on OpenMP threads (see fnn_team). */

static inline T FN(sigmoid1)(T x)
{
    T e = EXP(-FABS(x));  /* exp of a non-positive number: never overflows */
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* --- activations ---------------------------------------------------------------------- */

/* Element-wise activation loops come in two forms, in place (x == out) and out of place
 * (distinct arrays), each with restrict pointers and the activation chosen outside the
 * loop: the compiler then vectorises them. (With one loop for both it must guard
 * against overlap, and x == out fails that guard, leaving scalar code.) */
#define ACT_LOOP(n, OUT, IN)                                                   \
    switch (act) {                                                             \
    case FNN_RELU:                                                             \
        for (fnn_idx i = 0; i < n; ++i) OUT = IN < 0 ? 0 : IN;                 \
        break;                                                                 \
    case FNN_LEAKY_RELU:                                                       \
        for (fnn_idx i = 0; i < n; ++i) {                                      \
            T slope = IN > 0 ? (T)1 : alpha;                                   \
            OUT = IN * slope;                                                  \
        }                                                                      \
        break;                                                                 \
    case FNN_SIGMOID:                                                          \
        for (fnn_idx i = 0; i < n; ++i) OUT = FN(sigmoid1)(IN);                \
        break;                                                                 \
    case FNN_TANH:                                                             \
        for (fnn_idx i = 0; i < n; ++i) OUT = TANH(IN);                        \
        break;                                                                 \
    default:                                                                   \
        for (fnn_idx i = 0; i < n; ++i) OUT = IN;                              \
    }

static void FN(act_inplace)(int act, fnn_idx n, T *restrict x, T alpha)
{
    if (act != FNN_LINEAR)
        ACT_LOOP(n, x[i], x[i])
}

static void FN(act_copy)(int act, fnn_idx n, const T *restrict x, T *restrict out, T alpha)
{
    ACT_LOOP(n, out[i], x[i])
}

/* out = act(x) on one thread. */
static void FN(act_serial)(int act, fnn_idx n, const T *x, T *out, T alpha)
{
    if (x == out)
        FN(act_inplace)(act, n, out, alpha);
    else
        FN(act_copy)(act, n, x, out, alpha);
}

static void FN(act_forward)(int act, fnn_idx n, const T *x, T *out, T alpha)
{
    int costly = act == FNN_SIGMOID || act == FNN_TANH;
    int team = fnn_team((double)n, costly ? FNN_GRAIN_HEAVY : FNN_GRAIN_LIGHT);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx i0 = n * t / nt, i1 = n * (t + 1) / nt;
        FN(act_serial)(act, i1 - i0, x + i0, out + i0, alpha);
    }
}

/* dx = dy act'(y), in terms of the forward output y (see the contract). The slope is
 * selected into a temporary, then multiplied: written as dy * (y > 0) GCC turns it into
 * a branch per element and does not vectorise it. */
#define GRAD_LOOP(n, OUT, DY)                                                   \
    switch (act) {                                                              \
    case FNN_RELU:                                                              \
        for (fnn_idx i = 0; i < n; ++i) {                                       \
            T slope = y[i] > 0 ? (T)1 : (T)0;                                   \
            OUT = DY * slope;                                                   \
        }                                                                       \
        break;                                                                  \
    case FNN_LEAKY_RELU:                                                        \
        for (fnn_idx i = 0; i < n; ++i) {                                       \
            T slope = y[i] > 0 ? (T)1 : alpha;                                  \
            OUT = DY * slope;                                                   \
        }                                                                       \
        break;                                                                  \
    case FNN_SIGMOID:                                                           \
        for (fnn_idx i = 0; i < n; ++i) OUT = DY * (y[i] * (1 - y[i]));         \
        break;                                                                  \
    case FNN_TANH:                                                              \
        for (fnn_idx i = 0; i < n; ++i) OUT = DY * (1 - y[i] * y[i]);           \
        break;                                                                  \
    default:                                                                    \
        for (fnn_idx i = 0; i < n; ++i) OUT = DY;                               \
    }

static void FN(grad_inplace)(int act, fnn_idx n, const T *restrict y, T *restrict dz, T alpha)
{
    if (act != FNN_LINEAR)
        GRAD_LOOP(n, dz[i], dz[i])
}

static void FN(grad_copy)(int act, fnn_idx n, const T *restrict y, const T *restrict dy,
                          T *restrict dx, T alpha)
{
    GRAD_LOOP(n, dx[i], dy[i])
}

static void FN(grad_serial)(int act, fnn_idx n, const T *y, const T *dy, T *dx, T alpha)
{
    if (dy == dx)
        FN(grad_inplace)(act, n, y, dx, alpha);
    else
        FN(grad_copy)(act, n, y, dy, dx, alpha);
}

static void FN(act_backward)(int act, fnn_idx n, const T *y, const T *dy, T *dx, T alpha)
{
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx i0 = n * t / nt, i1 = n * (t + 1) / nt;
        FN(grad_serial)(act, i1 - i0, y + i0, dy + i0, dx + i0, alpha);
    }
}

/* c[r, j] = act(c[r, j] + bias[j]) on a rows x cols block: the dense layer's GEMM
 * epilogue, run on each tile while it is in L1. */
void FN(fnn_bias_act)(T *c, fnn_idx ldc, fnn_idx rows, fnn_idx cols, const T *bias, int act, T alpha)
{
    for (fnn_idx r = 0; r < rows; ++r) {
        T *restrict cr = c + r * ldc;
        const T *restrict b = bias;
        ACT_LOOP(cols, cr[i], (cr[i] + b[i]))
    }
}

static void FN(add_into)(fnn_idx n, T *restrict acc, const T *restrict x)
{
    for (fnn_idx i = 0; i < n; ++i)
        acc[i] += x[i];
}

/* dz = dy act'(y) (dz may alias dy) and db = sum over rows of dz, in one pass over the
 * rows. Threads split the columns, so each owns its part of db. */
void FN(fnn_act_grad_colsum)(fnn_idx n, fnn_idx o, const T *y, const T *dy, T *dz, T *db,
                             int act, T alpha)
{
    int team = fnn_team((double)n * (double)o, FNN_GRAIN_LIGHT);
    if (team > o / 16)
        team = o >= 32 ? (int)(o / 16) : 1;  /* at least 16 columns each */
#pragma omp parallel num_threads(team) if (team > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fnn_idx j0 = o * t / nt, j1 = o * (t + 1) / nt;
        for (fnn_idx j = j0; j < j1; ++j)
            db[j] = 0;
        for (fnn_idx i = 0; i < n; ++i) {
            FN(grad_serial)(act, j1 - j0, y + i * o + j0, dy + i * o + j0, dz + i * o + j0, alpha);
            FN(add_into)(j1 - j0, db + j0, dz + i * o + j0);
        }
    }
}

/* --- softmax and losses ----------------------------------------------------------------- */

/* The largest element of a row (0 for a row of no columns: nothing is read then). */
static T FN(row_max)(fnn_idx c, const T *x)
{
    if (c <= 0)
        return 0;
    T m = x[0];
    for (fnn_idx j = 1; j < c; ++j)
        m = x[j] > m ? x[j] : m;
    return m;
}

static void FN(softmax_forward)(fnn_idx n, fnn_idx c, const T *x, T *out)
{
    int team = fnn_team((double)n * (double)c, FNN_GRAIN_HEAVY);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        const T *xi = x + i * c;
        T *oi = out + i * c, m = FN(row_max)(c, xi), sum = 0;
        for (fnn_idx j = 0; j < c; ++j) {
            oi[j] = EXP(xi[j] - m);
            sum += oi[j];
        }
        for (fnn_idx j = 0; j < c; ++j)
            oi[j] /= sum;
    }
}

static void FN(softmax_backward)(fnn_idx n, fnn_idx c, const T *y, const T *dy, T *dx)
{
    int team = fnn_team((double)n * (double)c, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        const T *yi = y + i * c, *dyi = dy + i * c;
        T dot = 0;
        for (fnn_idx j = 0; j < c; ++j)
            dot += dyi[j] * yi[j];
        for (fnn_idx j = 0; j < c; ++j)
            dx[i * c + j] = yi[j] * (dyi[j] - dot);
    }
}

/* probs = softmax(logits) and the summed loss  log-sum-exp(z) - z[label]  of every row,
 * with the row max subtracted first (logits of 1e4 stay finite). The contract's rule for
 * reductions: exp(z - max) in T, its row sum, the log and the loss term in double.
 * -1 for a bad label (that row is not read). */
static int FN(sce_forward)(fnn_idx n, fnn_idx c, const T *logits, const int64_t *labels, T *probs,
                           double *loss)
{
    double total = 0;
    int bad = 0;
    int team = fnn_team((double)n * (double)c, FNN_GRAIN_HEAVY);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1) reduction(+ : total, bad)
    for (fnn_idx i = 0; i < n; ++i) {
        int64_t label = labels[i];
        if (label < 0 || label >= c) {
            bad += 1;
            continue;
        }
        const T *zi = logits + i * c;
        T *pi = probs + i * c, m = FN(row_max)(c, zi);
        double sum = 0;
        for (fnn_idx j = 0; j < c; ++j)
            sum += (double)EXP(zi[j] - m);
        double lse = log(sum);
        const T tlse = (T)lse;
        for (fnn_idx j = 0; j < c; ++j)
            pi[j] = EXP((zi[j] - m) - tlse);
        total += lse - ((double)zi[label] - (double)m);
    }
    *loss = n ? total / (double)n : 0.0;
    return bad ? -1 : 0;
}

/* dlogits = (probs - onehot(labels)) / n. */
static int FN(sce_backward)(fnn_idx n, fnn_idx c, const T *probs, const int64_t *labels, T *dlogits)
{
    const T count = (T)n;
    for (fnn_idx i = 0; i < n; ++i) {
        int64_t label = labels[i];
        if (label < 0 || label >= c)
            return -1;
        const T *pi = probs + i * c;
        T *di = dlogits + i * c;
        for (fnn_idx j = 0; j < c; ++j)
            di[j] = (pi[j] - (T)(j == label)) / count;
    }
    return 0;
}

static double FN(mse_forward)(fnn_idx n, const T *y, const T *t)
{
    double total = 0;
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1) reduction(+ : total)
    for (fnn_idx i = 0; i < n; ++i) {
        double d = (double)y[i] - (double)t[i];  /* float64 before any arithmetic */
        total += d * d;
    }
    return total / (double)n;
}

static void FN(mse_backward)(fnn_idx n, const T *y, const T *t, T *dy)
{
    const T scale = (T)(2.0 / (double)n);
    for (fnn_idx i = 0; i < n; ++i)
        dy[i] = (y[i] - t[i]) * scale;
}

static double FN(bce_forward)(fnn_idx n, const T *z, const T *t)
{
    double total = 0;
    int team = fnn_team((double)n, FNN_GRAIN_HEAVY);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1) reduction(+ : total)
    for (fnn_idx i = 0; i < n; ++i) {
        double zi = (double)z[i];                /* float64 before any arithmetic */
        total += (zi > 0 || zi != zi ? zi : 0) - zi * (double)t[i] + log1p(exp(-fabs(zi)));
    }
    return total / (double)n;
}

static void FN(bce_backward)(fnn_idx n, const T *z, const T *t, T *dz)
{
    const T count = (T)n;
    for (fnn_idx i = 0; i < n; ++i)
        dz[i] = (FN(sigmoid1)(z[i]) - t[i]) / count;
}

/* Rows whose first maximum sits at the label (NaN counts as a maximum, as in argmax). */
static fnn_idx FN(count_correct)(fnn_idx n, fnn_idx c, const T *scores, const int64_t *labels)
{
    fnn_idx correct = 0;
    for (fnn_idx i = 0; i < n; ++i) {
        const T *si = scores + i * c;
        fnn_idx best = 0;
        for (fnn_idx j = 1; j < c && si[best] == si[best]; ++j)
            if (si[j] > si[best] || si[j] != si[j])
                best = j;
        correct += best == labels[i];
    }
    return correct;
}

static void FN(mul)(fnn_idx n, const T *a, const T *b, T *out)
{
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i)
        out[i] = a[i] * b[i];
}

static void FN(add)(fnn_idx n, const T *a, const T *b, T *out)
{
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i)
        out[i] = a[i] + b[i];
}

/* --- batch norm: column statistics in blocks of BN_COLS columns, accumulated in double -- */
#ifndef BN_COLS
#define BN_COLS 256
#endif

static void FN(batchnorm_forward)(fnn_idx n, fnn_idx d, const T *x, const T *gamma, const T *beta,
                                  T *out, T *xhat, T *invstd, T *running_mean, T *running_var,
                                  double momentum, double eps)
{
    const T keep = (T)(1.0 - momentum), mom = (T)momentum, teps = (T)eps;
    for (fnn_idx j0 = 0; j0 < d; j0 += BN_COLS) {
        fnn_idx w = FNN_MIN(BN_COLS, d - j0);
        double sum[BN_COLS] = {0}, sq[BN_COLS] = {0};
        T mean[BN_COLS];
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j)
                sum[j] += (double)x[i * d + j0 + j];
        for (fnn_idx j = 0; j < w; ++j)
            mean[j] = (T)(sum[j] / (double)n);
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j) {
                T dev = x[i * d + j0 + j] - mean[j];
                sq[j] += (double)(dev * dev);
            }
        for (fnn_idx j = 0; j < w; ++j) {
            T var = (T)(sq[j] / (double)n);
            T unbiased = n > 1 ? var * (T)((double)n / (double)(n - 1)) : var;
            invstd[j0 + j] = 1 / SQRT(var + teps);
            running_mean[j0 + j] = running_mean[j0 + j] * keep + mom * mean[j];
            running_var[j0 + j] = running_var[j0 + j] * keep + mom * unbiased;
        }
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j) {
                fnn_idx at = i * d + j0 + j;
                xhat[at] = (x[at] - mean[j]) * invstd[j0 + j];
                out[at] = xhat[at] * gamma[j0 + j] + beta[j0 + j];
            }
    }
}

static void FN(batchnorm_inference)(fnn_idx n, fnn_idx d, const T *x, const T *gamma, const T *beta,
                                    const T *running_mean, const T *running_var, double eps, T *out)
{
    const T teps = (T)eps;
    for (fnn_idx j0 = 0; j0 < d; j0 += BN_COLS) {
        fnn_idx w = FNN_MIN(BN_COLS, d - j0);
        T scale[BN_COLS];
        for (fnn_idx j = 0; j < w; ++j)
            scale[j] = gamma[j0 + j] / SQRT(running_var[j0 + j] + teps);
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j) {
                fnn_idx at = i * d + j0 + j;
                out[at] = (x[at] - running_mean[j0 + j]) * scale[j] + beta[j0 + j];
            }
    }
}

static void FN(batchnorm_backward)(fnn_idx n, fnn_idx d, const T *xhat, const T *gamma, const T *invstd,
                                   const T *dy, T *dx, T *dgamma, T *dbeta)
{
    const T count = (T)n;
    for (fnn_idx j0 = 0; j0 < d; j0 += BN_COLS) {
        fnn_idx w = FNN_MIN(BN_COLS, d - j0);
        double sb[BN_COLS] = {0}, sg[BN_COLS] = {0};
        T coef[BN_COLS];
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j) {
                fnn_idx at = i * d + j0 + j;
                sb[j] += (double)dy[at];
                sg[j] += (double)(dy[at] * xhat[at]);
            }
        for (fnn_idx j = 0; j < w; ++j) {
            dbeta[j0 + j] = (T)sb[j];
            dgamma[j0 + j] = (T)sg[j];
            coef[j] = gamma[j0 + j] * invstd[j0 + j] / count;
        }
        for (fnn_idx i = 0; i < n; ++i)
            for (fnn_idx j = 0; j < w; ++j) {
                fnn_idx at = i * d + j0 + j;
                dx[at] = coef[j] * (count * dy[at] - dbeta[j0 + j] - xhat[at] * dgamma[j0 + j]);
            }
    }
}

/* --- optimizers (in place) and parameter reductions ---------------------------------------- */

static void FN(sgd_update)(fnn_idx n, T *p, const T *g, T *v, double lr, double momentum,
                           double weight_decay, int nesterov)
{
    const T tlr = (T)lr, mu = (T)momentum, wd = (T)weight_decay;
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
    if (momentum == 0) {
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
        for (fnn_idx i = 0; i < n; ++i) {
            T gi = weight_decay != 0 ? g[i] + wd * p[i] : g[i];
            p[i] -= tlr * gi;
        }
        return;
    }
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        T gi = weight_decay != 0 ? g[i] + wd * p[i] : g[i];
        v[i] = v[i] * mu + gi;
        p[i] -= tlr * (nesterov ? gi + mu * v[i] : v[i]);
    }
}

static void FN(adam_update)(fnn_idx n, T *p, const T *g, T *m, T *v, double lr, double beta1,
                            double beta2, double eps, double weight_decay, long step, int decoupled)
{
    const T tlr = (T)lr, b1 = (T)beta1, b2 = (T)beta2, teps = (T)eps;
    const T c1 = (T)(1 - beta1), c2 = (T)(1 - beta2), wd = (T)weight_decay;
    const T shrink = (T)(lr * weight_decay);
    const T bias1 = (T)(1 - pow(beta1, (double)step)), bias2 = (T)(1 - pow(beta2, (double)step));
    const int coupled = weight_decay != 0 && !decoupled, shrinking = weight_decay != 0 && decoupled;
    int team = fnn_team((double)n, FNN_GRAIN_HEAVY);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (fnn_idx i = 0; i < n; ++i) {
        if (shrinking)
            p[i] -= shrink * p[i];
        T gi = coupled ? g[i] + wd * p[i] : g[i];
        m[i] = m[i] * b1 + c1 * gi;
        v[i] = v[i] * b2 + c2 * gi * gi;
        T m_hat = m[i] / bias1, v_hat = v[i] / bias2;
        p[i] -= tlr * m_hat / (SQRT(v_hat) + teps);
    }
}

static double FN(sum_squares)(fnn_idx n, const T *x)
{
    double total = 0;
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1) reduction(+ : total)
    for (fnn_idx i = 0; i < n; ++i)
        total += (double)x[i] * (double)x[i];
    return total;
}

static double FN(abs_sum)(fnn_idx n, const T *x)
{
    double total = 0;
    int team = fnn_team((double)n, FNN_GRAIN_LIGHT);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1) reduction(+ : total)
    for (fnn_idx i = 0; i < n; ++i)
        total += (double)FABS(x[i]);
    return total;
}

static void FN(scale)(fnn_idx n, T *x, double s)
{
    const T ts = (T)s;
    for (fnn_idx i = 0; i < n; ++i)
        x[i] *= ts;
}

static void FN(penalty_grad)(fnn_idx n, const T *w, T *g, double l1, double l2)
{
    const T tl1 = (T)l1, tl2 = (T)l2;
    if (l1 != 0)  /* sign(NaN) is NaN, as np.sign */
        for (fnn_idx i = 0; i < n; ++i)
            g[i] += tl1 * (w[i] != w[i] ? w[i] : (T)((w[i] > 0) - (w[i] < 0)));
    if (l2 != 0)
        for (fnn_idx i = 0; i < n; ++i)
            g[i] += tl2 * w[i];
}

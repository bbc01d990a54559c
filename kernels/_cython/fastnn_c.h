/* fastnn's C kernels: the API the Cython module (_kernels.pyx) calls.
 *
 * Every array argument is a raw pointer to C-contiguous data unless strides are
 * passed next to it (GEMM and the dense layer take any strides, in elements).
 * ``dt`` selects the precision: FNN_F32 (float) or FNN_F64 (double); scalars are
 * passed as double and rounded to that precision once, as NumPy does.
 * No function here validates shapes: the Cython layer does that before the GIL is
 * released, so these loops may trust their sizes.
 */
#ifndef FASTNN_C_H
#define FASTNN_C_H

#include <stddef.h>
#include <stdint.h>

typedef ptrdiff_t fnn_idx;

enum { FNN_F32 = 0, FNN_F64 = 1 };

/* SIMD paths for the GEMM micro-kernel, from the most portable to the widest. */
enum { FNN_SIMD_GENERIC = 0, FNN_SIMD_AVX2 = 1, FNN_SIMD_AVX512 = 2, FNN_SIMD_COUNT = 3 };

/* Activations, in the order of kernels/contract.py ACTIVATIONS. */
enum { FNN_LINEAR = 0, FNN_RELU = 1, FNN_LEAKY_RELU = 2, FNN_SIGMOID = 3, FNN_TANH = 4 };

/* The GEMM ladder, slowest first; FNN_GEMM_PARALLEL is the backend's gemm. */
enum { FNN_GEMM_NAIVE = 0, FNN_GEMM_REORDER = 1, FNN_GEMM_BLOCKED = 2,
       FNN_GEMM_PACKED = 3, FNN_GEMM_PARALLEL = 4 };

/* --- CPU features, SIMD dispatch, threads (cpu.c) ------------------------------ */
int fnn_cpu_supports(int simd);        /* 1 if this CPU (and OS) can run that path */
int fnn_simd_best(void);               /* widest path this CPU supports */
int fnn_simd_select(int simd);         /* 0 on success, -1 if unsupported here */
int fnn_simd_active(void);
void fnn_gemm_blocking(int dt, int simd, int *mr, int *nr, int *mc, int *kc, int *nc);
int fnn_openmp_enabled(void);          /* 1 if compiled with OpenMP */
void fnn_set_threads(int n);
int fnn_get_threads(void);
int fnn_threads_probe(int n, int *ids, int capacity);  /* thread ids seen in a region of n */
int fnn_gemm_last_workers(void);       /* threads that computed tiles in the last packed GEMM */
int fnn_gemm_last_team(void);          /* threads in the team that ran it */

/* --- GEMM (gemm.c): C = alpha op(A) op(B) + beta C --------------------------------
 * op(A) is m x k with element (i, p) at a[i*rsa + p*csa]; op(B) k x n likewise;
 * C is m x n, row-major with leading dimension ldc. beta == 0 never reads C. */
void fnn_gemm(int dt, int variant, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
              const void *a, fnn_idx rsa, fnn_idx csa, const void *b, fnn_idx rsb, fnn_idx csb,
              double beta, void *c, fnn_idx ldc);

/* --- dense layer (gemm.c / ops.c) ---------------------------------------------------- */
/* y = act(x w + bias): x (n, in) strides (rsx, csx); w (in, out) strides (rsw, csw). */
void fnn_dense_forward(int dt, fnn_idx n, fnn_idx in, fnn_idx out,
                       const void *x, fnn_idx rsx, fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw,
                       const void *bias, void *y, int act, double alpha);
/* dz = dy act'(y) (dz may be dy); dw = x^T dz; db = sum_rows dz; dx = dz w^T unless dx is NULL. */
void fnn_dense_backward(int dt, fnn_idx n, fnn_idx in, fnn_idx out,
                        const void *x, fnn_idx rsx, fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw,
                        const void *y, const void *dy, void *dz, void *dx, void *dw, void *db,
                        int act, double alpha);

/* --- element-wise, row-wise and loss kernels (ops.c) ---------------------------------- */
void fnn_act_forward(int dt, int act, fnn_idx n, const void *x, void *out, double alpha);
void fnn_act_backward(int dt, int act, fnn_idx n, const void *y, const void *dy, void *dx, double alpha);
void fnn_softmax_forward(int dt, fnn_idx n, fnn_idx c, const void *x, void *out);
void fnn_softmax_backward(int dt, fnn_idx n, fnn_idx c, const void *y, const void *dy, void *dx);
/* Both return -1 (and write nothing past the bad row) if a label is outside [0, c). */
int fnn_sce_forward(int dt, fnn_idx n, fnn_idx c, const void *logits, const int64_t *labels,
                    void *probs, double *loss);
int fnn_sce_backward(int dt, fnn_idx n, fnn_idx c, const void *probs, const int64_t *labels,
                     void *dlogits);
double fnn_mse_forward(int dt, fnn_idx n, const void *y, const void *t);
void fnn_mse_backward(int dt, fnn_idx n, const void *y, const void *t, void *dy);
double fnn_bce_forward(int dt, fnn_idx n, const void *z, const void *t);
void fnn_bce_backward(int dt, fnn_idx n, const void *z, const void *t, void *dz);
fnn_idx fnn_count_correct(int dt, fnn_idx n, fnn_idx c, const void *scores, const int64_t *labels);
void fnn_mul(int dt, fnn_idx n, const void *a, const void *b, void *out);
void fnn_add(int dt, fnn_idx n, const void *a, const void *b, void *out);
void fnn_batchnorm_forward(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                           const void *beta, void *out, void *xhat, void *invstd,
                           void *running_mean, void *running_var, double momentum, double eps);
void fnn_batchnorm_inference(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                             const void *beta, const void *running_mean, const void *running_var,
                             double eps, void *out);
void fnn_batchnorm_backward(int dt, fnn_idx n, fnn_idx d, const void *xhat, const void *gamma,
                            const void *invstd, const void *dy, void *dx, void *dgamma, void *dbeta);
void fnn_sgd_update(int dt, fnn_idx n, void *p, const void *g, void *v, double lr,
                    double momentum, double weight_decay, int nesterov);
void fnn_adam_update(int dt, fnn_idx n, void *p, const void *g, void *m, void *v, double lr,
                     double beta1, double beta2, double eps, double weight_decay, long step,
                     int decoupled);
double fnn_sum_squares(int dt, fnn_idx n, const void *x);
double fnn_abs_sum(int dt, fnn_idx n, const void *x);
void fnn_scale(int dt, fnn_idx n, void *x, double s);
void fnn_penalty_grad(int dt, fnn_idx n, const void *w, void *g, double l1, double l2);

/* --- tier-1 primitives (prims.c; kernels/primitives.py) -------------------------------
 * Op codes in the order of primitives.py UNARY_OPS / BINARY_OPS. unary and binary work on
 * flat arrays of n elements (out may be an input); reductions on an (n, d) array along
 * `axis`. gather_rows / scatter_add_rows return -1, or the position of the first index
 * outside [0, r) having written nothing. gemm_batched: fnn_gemm on `batch` matrices whose
 * starts are bsa, bsb, bsc elements apart. */
enum { FNN_U_COPY = 0, FNN_U_EXP = 1, FNN_U_LOG = 2, FNN_U_LOG1P = 3, FNN_U_SQRT = 4,
       FNN_U_ABS = 5, FNN_U_NEG = 6, FNN_U_RECIPROCAL = 7, FNN_U_SQUARE = 8, FNN_U_SIGN = 9,
       FNN_U_COUNT = 10 };
enum { FNN_B_ADD = 0, FNN_B_SUB = 1, FNN_B_MUL = 2, FNN_B_DIV = 3, FNN_B_MAXIMUM = 4,
       FNN_B_MINIMUM = 5, FNN_B_COUNT = 6 };
void fnn_unary(int dt, int op, fnn_idx n, const void *x, void *out);
void fnn_binary(int dt, int op, fnn_idx n, const void *a, const void *b, void *out);
void fnn_reduce_sum(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out);
void fnn_reduce_max(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out);
fnn_idx fnn_gather_rows(int dt, fnn_idx r, fnn_idx d, const void *x, fnn_idx n,
                        const int64_t *indices, void *out);
fnn_idx fnn_scatter_add_rows(int dt, fnn_idx n, fnn_idx d, const void *src, const int64_t *indices,
                             fnn_idx r, void *out);
void fnn_gemm_batched(int dt, fnn_idx batch, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
                      const void *a, fnn_idx bsa, fnn_idx rsa, fnn_idx csa,
                      const void *b, fnn_idx bsb, fnn_idx rsb, fnn_idx csb,
                      double beta, void *c, fnn_idx bsc, fnn_idx ldc);

/* --- convolution and pooling (conv.c; kernels/conv_contract.py) ------------------------
 * NCHW, C-contiguous: x (n, c, h, w), weights (o, c, kh, kw), out (n, o, oh, ow); pools use
 * o = c and no padding. The conv functions return 0, or -1 if their scratch cannot be
 * allocated (nothing is then written); maxpool2d_backward returns -1, or the position of the
 * first argmax outside [0, hw) having written nothing. */
typedef struct { fnn_idx n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow; } fnn_conv_shape;
int fnn_conv2d_forward(int dt, const fnn_conv_shape *s, const void *x, const void *w, const void *b,
                       void *out);
/* dx may be NULL (not computed). */
int fnn_conv2d_backward(int dt, const fnn_conv_shape *s, const void *x, const void *w, const void *dy,
                        void *dx, void *dw, void *db);
void fnn_maxpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out, int64_t *argmax);
fnn_idx fnn_maxpool2d_backward(int dt, fnn_idx planes, fnn_idx hw, fnn_idx ohw, const void *dy,
                               const int64_t *argmax, void *dx);
void fnn_avgpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out);
void fnn_avgpool2d_backward(int dt, const fnn_conv_shape *s, const void *dy, void *dx);

/* --- whole training step of an MLP (train.c) ------------------------------------------- */
typedef struct {
    fnn_idx in, out;        /* w is (in, out), b is (out,) */
    int act;                /* activation applied to this layer's output */
    double alpha;           /* leaky_relu slope */
    void *w, *b, *gw, *gb;  /* parameters and their gradients (C-contiguous) */
    void *w_s1, *b_s1;      /* SGD velocity, or Adam first moment (NULL when unused) */
    void *w_s2, *b_s2;      /* Adam second moment (NULL for SGD) */
    void *y;                /* (n, out) scratch: this layer's output */
    void *dy;               /* (n, out) scratch: dL/dy, then dz in place */
} fnn_layer;

enum { FNN_OPT_SGD = 0, FNN_OPT_ADAM = 1 };

typedef struct {
    int kind;
    double lr, momentum, weight_decay;  /* SGD (weight_decay also Adam's) */
    int nesterov;
    double beta1, beta2, eps;           /* Adam */
    int decoupled;
    long step;                          /* Adam step count, already incremented */
} fnn_optimizer;

/* Forward, softmax cross-entropy, backward and update for n rows of x (n, layers[0].in).
 * Returns 0, or -1 for a label outside [0, classes). */
int fnn_mlp_train_step(int dt, int nlayers, const fnn_layer *layers, fnn_idx n, const void *x,
                       const int64_t *labels, const fnn_optimizer *opt, double *loss,
                       fnn_idx *correct);

#endif

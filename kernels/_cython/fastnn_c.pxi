# Declarations of the C kernels (fastnn_c.h), included by _kernels.pyx. (An include
# file rather than a .pxd: the package is installed as fastnn.kernels from kernels/, a
# mapping Cython's .pxd lookup does not follow.)

from libc.stdint cimport int64_t


cdef extern from "fastnn_c.h" nogil:
    ctypedef Py_ssize_t fnn_idx

    enum:
        FNN_F32, FNN_F64
        FNN_SIMD_GENERIC, FNN_SIMD_AVX2, FNN_SIMD_AVX512, FNN_SIMD_COUNT
        FNN_LINEAR, FNN_RELU, FNN_LEAKY_RELU, FNN_SIGMOID, FNN_TANH
        FNN_GEMM_NAIVE, FNN_GEMM_REORDER, FNN_GEMM_BLOCKED, FNN_GEMM_PACKED, FNN_GEMM_PARALLEL
        FNN_OPT_SGD, FNN_OPT_ADAM
        FNN_U_COPY, FNN_U_EXP, FNN_U_LOG, FNN_U_LOG1P, FNN_U_SQRT, FNN_U_ABS, FNN_U_NEG
        FNN_U_RECIPROCAL, FNN_U_SQUARE, FNN_U_SIGN, FNN_U_COUNT
        FNN_B_ADD, FNN_B_SUB, FNN_B_MUL, FNN_B_DIV, FNN_B_MAXIMUM, FNN_B_MINIMUM, FNN_B_COUNT

    int fnn_cpu_supports(int simd)
    int fnn_simd_best()
    int fnn_simd_select(int simd)
    int fnn_simd_active()
    void fnn_gemm_blocking(int dt, int simd, int *mr, int *nr, int *mc, int *kc, int *nc)
    int fnn_openmp_enabled()
    void fnn_set_threads(int n)
    int fnn_get_threads()
    int fnn_threads_probe(int n, int *ids, int capacity)
    int fnn_gemm_last_workers()
    int fnn_gemm_last_team()

    void fnn_gemm(int dt, int variant, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
                  const void *a, fnn_idx rsa, fnn_idx csa, const void *b, fnn_idx rsb, fnn_idx csb,
                  double beta, void *c, fnn_idx ldc)
    void fnn_dense_forward(int dt, fnn_idx n, fnn_idx i, fnn_idx o, const void *x, fnn_idx rsx,
                           fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw, const void *bias,
                           void *y, int act, double alpha)
    void fnn_dense_backward(int dt, fnn_idx n, fnn_idx i, fnn_idx o, const void *x, fnn_idx rsx,
                            fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw, const void *y,
                            const void *dy, void *dz, void *dx, void *dw, void *db, int act,
                            double alpha)

    void fnn_act_forward(int dt, int act, fnn_idx n, const void *x, void *out, double alpha)
    void fnn_act_backward(int dt, int act, fnn_idx n, const void *y, const void *dy, void *dx,
                          double alpha)
    void fnn_softmax_forward(int dt, fnn_idx n, fnn_idx c, const void *x, void *out)
    void fnn_softmax_backward(int dt, fnn_idx n, fnn_idx c, const void *y, const void *dy, void *dx)
    int fnn_sce_forward(int dt, fnn_idx n, fnn_idx c, const void *logits, const int64_t *labels,
                        void *probs, double *loss)
    int fnn_sce_backward(int dt, fnn_idx n, fnn_idx c, const void *probs, const int64_t *labels,
                         void *dlogits)
    double fnn_mse_forward(int dt, fnn_idx n, const void *y, const void *t)
    void fnn_mse_backward(int dt, fnn_idx n, const void *y, const void *t, void *dy)
    double fnn_bce_forward(int dt, fnn_idx n, const void *z, const void *t)
    void fnn_bce_backward(int dt, fnn_idx n, const void *z, const void *t, void *dz)
    fnn_idx fnn_count_correct(int dt, fnn_idx n, fnn_idx c, const void *scores, const int64_t *labels)
    void fnn_mul(int dt, fnn_idx n, const void *a, const void *b, void *out)
    void fnn_add(int dt, fnn_idx n, const void *a, const void *b, void *out)
    void fnn_batchnorm_forward(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                               const void *beta, void *out, void *xhat, void *invstd,
                               void *running_mean, void *running_var, double momentum, double eps)
    void fnn_batchnorm_inference(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                                 const void *beta, const void *running_mean,
                                 const void *running_var, double eps, void *out)
    void fnn_batchnorm_backward(int dt, fnn_idx n, fnn_idx d, const void *xhat, const void *gamma,
                                const void *invstd, const void *dy, void *dx, void *dgamma,
                                void *dbeta)
    void fnn_sgd_update(int dt, fnn_idx n, void *p, const void *g, void *v, double lr,
                        double momentum, double weight_decay, int nesterov)
    void fnn_adam_update(int dt, fnn_idx n, void *p, const void *g, void *m, void *v, double lr,
                         double beta1, double beta2, double eps, double weight_decay, long step,
                         int decoupled)
    double fnn_sum_squares(int dt, fnn_idx n, const void *x)
    double fnn_abs_sum(int dt, fnn_idx n, const void *x)
    void fnn_scale(int dt, fnn_idx n, void *x, double s)
    void fnn_penalty_grad(int dt, fnn_idx n, const void *w, void *g, double l1, double l2)

    void fnn_unary(int dt, int op, fnn_idx n, const void *x, void *out)
    void fnn_binary(int dt, int op, fnn_idx n, const void *a, const void *b, void *out)
    void fnn_reduce_sum(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out)
    void fnn_reduce_max(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out)
    fnn_idx fnn_gather_rows(int dt, fnn_idx r, fnn_idx d, const void *x, fnn_idx n,
                            const int64_t *indices, void *out)
    fnn_idx fnn_scatter_add_rows(int dt, fnn_idx n, fnn_idx d, const void *src,
                                 const int64_t *indices, fnn_idx r, void *out)
    void fnn_gemm_batched(int dt, fnn_idx batch, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
                          const void *a, fnn_idx bsa, fnn_idx rsa, fnn_idx csa,
                          const void *b, fnn_idx bsb, fnn_idx rsb, fnn_idx csb,
                          double beta, void *c, fnn_idx bsc, fnn_idx ldc)

    ctypedef struct fnn_conv_shape:
        fnn_idx n, c, h, w, o, kh, kw, sh, sw, ph, pw, oh, ow

    int fnn_conv2d_forward(int dt, const fnn_conv_shape *s, const void *x, const void *w,
                           const void *b, void *out)
    int fnn_conv2d_backward(int dt, const fnn_conv_shape *s, const void *x, const void *w,
                            const void *dy, void *dx, void *dw, void *db)
    void fnn_maxpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out,
                               int64_t *argmax)
    fnn_idx fnn_maxpool2d_backward(int dt, fnn_idx planes, fnn_idx hw, fnn_idx ohw, const void *dy,
                                   const int64_t *argmax, void *dx)
    void fnn_avgpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out)
    void fnn_avgpool2d_backward(int dt, const fnn_conv_shape *s, const void *dy, void *dx)

    ctypedef struct fnn_layer:
        fnn_idx in_ "in"
        fnn_idx out
        int act
        double alpha
        void *w
        void *b
        void *gw
        void *gb
        void *w_s1
        void *b_s1
        void *w_s2
        void *b_s2
        void *y
        void *dy

    ctypedef struct fnn_optimizer:
        int kind
        double lr, momentum, weight_decay
        int nesterov
        double beta1, beta2, eps
        int decoupled
        long step

    int fnn_mlp_train_step(int dt, int nlayers, const fnn_layer *layers, fnn_idx n, const void *x,
                           const int64_t *labels, const fnn_optimizer *opt, double *loss,
                           fnn_idx *correct)

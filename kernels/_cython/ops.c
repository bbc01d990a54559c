/* Element-wise, row-wise, loss, batch-norm and optimizer kernels: the typed code comes
 * from ops_impl.h (once per precision); the functions below pick the precision. */
#include <math.h>

#include "fastnn_internal.h"

#define T float
#define S s
#define EXP expf
#define LOG logf
#define LOG1P log1pf
#define TANH tanhf
#define SQRT sqrtf
#define FABS fabsf
#include "ops_impl.h"
#undef T
#undef S
#undef EXP
#undef LOG
#undef LOG1P
#undef TANH
#undef SQRT
#undef FABS

#define T double
#define S d
#define EXP exp
#define LOG log
#define LOG1P log1p
#define TANH tanh
#define SQRT sqrt
#define FABS fabs
#include "ops_impl.h"
#undef T
#undef S
#undef EXP
#undef LOG
#undef LOG1P
#undef TANH
#undef SQRT
#undef FABS

/* Call the float or double version of a kernel with the same arguments. */
#define BY_DTYPE(name, ...) (dt == FNN_F64 ? name##_d(__VA_ARGS__) : name##_s(__VA_ARGS__))

void fnn_act_forward(int dt, int act, fnn_idx n, const void *x, void *out, double alpha)
{
    BY_DTYPE(act_forward, act, n, x, out, alpha);
}

void fnn_act_backward(int dt, int act, fnn_idx n, const void *y, const void *dy, void *dx, double alpha)
{
    BY_DTYPE(act_backward, act, n, y, dy, dx, alpha);
}

void fnn_softmax_forward(int dt, fnn_idx n, fnn_idx c, const void *x, void *out)
{
    BY_DTYPE(softmax_forward, n, c, x, out);
}

void fnn_softmax_backward(int dt, fnn_idx n, fnn_idx c, const void *y, const void *dy, void *dx)
{
    BY_DTYPE(softmax_backward, n, c, y, dy, dx);
}

int fnn_sce_forward(int dt, fnn_idx n, fnn_idx c, const void *logits, const int64_t *labels,
                    void *probs, double *loss)
{
    return BY_DTYPE(sce_forward, n, c, logits, labels, probs, loss);
}

int fnn_sce_backward(int dt, fnn_idx n, fnn_idx c, const void *probs, const int64_t *labels,
                     void *dlogits)
{
    return BY_DTYPE(sce_backward, n, c, probs, labels, dlogits);
}

double fnn_mse_forward(int dt, fnn_idx n, const void *y, const void *t)
{
    return BY_DTYPE(mse_forward, n, y, t);
}

void fnn_mse_backward(int dt, fnn_idx n, const void *y, const void *t, void *dy)
{
    BY_DTYPE(mse_backward, n, y, t, dy);
}

double fnn_bce_forward(int dt, fnn_idx n, const void *z, const void *t)
{
    return BY_DTYPE(bce_forward, n, z, t);
}

void fnn_bce_backward(int dt, fnn_idx n, const void *z, const void *t, void *dz)
{
    BY_DTYPE(bce_backward, n, z, t, dz);
}

fnn_idx fnn_count_correct(int dt, fnn_idx n, fnn_idx c, const void *scores, const int64_t *labels)
{
    return BY_DTYPE(count_correct, n, c, scores, labels);
}

void fnn_mul(int dt, fnn_idx n, const void *a, const void *b, void *out)
{
    BY_DTYPE(mul, n, a, b, out);
}

void fnn_add(int dt, fnn_idx n, const void *a, const void *b, void *out)
{
    BY_DTYPE(add, n, a, b, out);
}

void fnn_batchnorm_forward(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                           const void *beta, void *out, void *xhat, void *invstd,
                           void *running_mean, void *running_var, double momentum, double eps)
{
    BY_DTYPE(batchnorm_forward, n, d, x, gamma, beta, out, xhat, invstd, running_mean, running_var,
             momentum, eps);
}

void fnn_batchnorm_inference(int dt, fnn_idx n, fnn_idx d, const void *x, const void *gamma,
                             const void *beta, const void *running_mean, const void *running_var,
                             double eps, void *out)
{
    BY_DTYPE(batchnorm_inference, n, d, x, gamma, beta, running_mean, running_var, eps, out);
}

void fnn_batchnorm_backward(int dt, fnn_idx n, fnn_idx d, const void *xhat, const void *gamma,
                            const void *invstd, const void *dy, void *dx, void *dgamma, void *dbeta)
{
    BY_DTYPE(batchnorm_backward, n, d, xhat, gamma, invstd, dy, dx, dgamma, dbeta);
}

void fnn_sgd_update(int dt, fnn_idx n, void *p, const void *g, void *v, double lr,
                    double momentum, double weight_decay, int nesterov)
{
    BY_DTYPE(sgd_update, n, p, g, v, lr, momentum, weight_decay, nesterov);
}

void fnn_adam_update(int dt, fnn_idx n, void *p, const void *g, void *m, void *v, double lr,
                     double beta1, double beta2, double eps, double weight_decay, long step,
                     int decoupled)
{
    BY_DTYPE(adam_update, n, p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled);
}

double fnn_sum_squares(int dt, fnn_idx n, const void *x)
{
    return BY_DTYPE(sum_squares, n, x);
}

double fnn_abs_sum(int dt, fnn_idx n, const void *x)
{
    return BY_DTYPE(abs_sum, n, x);
}

void fnn_scale(int dt, fnn_idx n, void *x, double s)
{
    BY_DTYPE(scale, n, x, s);
}

void fnn_penalty_grad(int dt, fnn_idx n, const void *w, void *g, double l1, double l2)
{
    BY_DTYPE(penalty_grad, n, w, g, l1, l2);
}

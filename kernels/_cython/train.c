/* One whole training step of an MLP (Dense layers with fused activations, softmax
 * cross-entropy, SGD or Adam) in one call, with the same kernels and the same order of
 * arithmetic as the layer-by-layer path, so both give the same numbers. */
#include <math.h>
#include <stdlib.h>

#include "fastnn_internal.h"

/* FN_DT: the precision code handed to the kernels of ops.c. */
#define T float
#define S s
#define FN_DT FNN_F32
#include "train_impl.h"
#undef T
#undef S
#undef FN_DT

#define T double
#define S d
#define FN_DT FNN_F64
#include "train_impl.h"
#undef T
#undef S
#undef FN_DT

int fnn_mlp_train_step(int dt, int nlayers, const fnn_layer *layers, fnn_idx n, const void *x,
                       const int64_t *labels, const fnn_optimizer *opt, double *loss,
                       fnn_idx *correct)
{
    if (dt == FNN_F64)
        return mlp_train_step_d(nlayers, layers, n, x, labels, opt, loss, correct);
    return mlp_train_step_s(nlayers, layers, n, x, labels, opt, loss, correct);
}

/* Convolution and pooling kernels (kernels/conv_contract.py): the typed code comes from
 * conv_impl.h (once per precision); the functions below pick the precision. */
#include <stdint.h>
#include <stdlib.h>

#include "fastnn_internal.h"

/* Scratch per block of images (im2col's rows): a few MiB, so a block's GEMM is large but its
 * operands are not much bigger than the last-level cache. */
#define FNN_CONV_BLOCK_BYTES ((size_t)8 << 20)

#define T float
#define S s
#include "conv_impl.h"
#undef T
#undef S

#define T double
#define S d
#include "conv_impl.h"
#undef T
#undef S

#define BY_DTYPE(name, ...) (dt == FNN_F64 ? name##_d(__VA_ARGS__) : name##_s(__VA_ARGS__))

int fnn_conv2d_forward(int dt, const fnn_conv_shape *s, const void *x, const void *w, const void *b,
                       void *out)
{
    return BY_DTYPE(conv_forward, s, x, w, b, out);
}

int fnn_conv2d_backward(int dt, const fnn_conv_shape *s, const void *x, const void *w, const void *dy,
                        void *dx, void *dw, void *db)
{
    return BY_DTYPE(conv_backward, s, x, w, dy, dx, dw, db);
}

void fnn_maxpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out, int64_t *argmax)
{
    BY_DTYPE(maxpool_forward, s, x, out, argmax);
}

fnn_idx fnn_maxpool2d_backward(int dt, fnn_idx planes, fnn_idx hw, fnn_idx ohw, const void *dy,
                               const int64_t *argmax, void *dx)
{
    const fnn_idx total = planes * ohw;   /* every index is checked before anything is written */
    for (fnn_idx i = 0; i < total; ++i)
        if (argmax[i] < 0 || argmax[i] >= (int64_t)hw)
            return i;
    BY_DTYPE(maxpool_backward, planes, hw, ohw, dy, argmax, dx);
    return -1;
}

void fnn_avgpool2d_forward(int dt, const fnn_conv_shape *s, const void *x, void *out)
{
    BY_DTYPE(avgpool_forward, s, x, out);
}

void fnn_avgpool2d_backward(int dt, const fnn_conv_shape *s, const void *dy, void *dx)
{
    BY_DTYPE(avgpool_backward, s, dy, dx);
}

# Cython entry points of the convolution and pooling kernels (conv.c; kernels/conv_contract.py),
# included by _kernels.pyx. Every size the C loops rely on is checked here before the GIL is
# released (the contract checks them too, but these must be safe called directly), and
# maxpool2d_backward's C code checks each argmax index itself.

# Padding beyond this is refused so that sizes such as h + 2 * ph cannot overflow.
cdef Py_ssize_t _MAX_PAD = 1 << 30


cdef int _geometry(fnn_conv_shape *s, str kernel, Py_ssize_t n, Py_ssize_t c, Py_ssize_t h,
                   Py_ssize_t w, Py_ssize_t o, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                   Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) except -1:
    """Fill s, with (oh, ow), after checking every dimension, stride and padding."""
    if min(n, c, h, w, o, kh, kw) < 1:
        raise ValueError(f"{kernel}: every dimension must be >= 1, got input ({n}, {c}, {h}, {w}), "
                         f"kernel ({kh}, {kw}), {o} outputs")
    if sh < 1 or sw < 1:
        raise ValueError(f"{kernel}: stride must be >= 1 in both dimensions, got ({sh}, {sw})")
    if ph < 0 or pw < 0 or ph > _MAX_PAD or pw > _MAX_PAD:
        raise ValueError(f"{kernel}: padding must lie in [0, {_MAX_PAD}], got ({ph}, {pw})")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{kernel}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({h + 2 * ph}, {w + 2 * pw})")
    s.n, s.c, s.h, s.w, s.o, s.kh, s.kw = n, c, h, w, o, kh, kw
    s.sh, s.sw, s.ph, s.pw = sh, sw, ph, pw
    s.oh, s.ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return 0


cdef int _shape4(str what, Py_ssize_t *shape, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c,
                 Py_ssize_t d) except -1:
    if shape[0] != a or shape[1] != b or shape[2] != c or shape[3] != d:
        raise ValueError(f"{what} has shape ({shape[0]}, {shape[1]}, {shape[2]}, {shape[3]}), "
                         f"expected ({a}, {b}, {c}, {d})")
    return 0


cdef int _conv_ok(int status, str kernel) except -1:
    if status != 0:
        raise MemoryError(f"{kernel}: cannot allocate the im2col scratch buffer")
    return 0


def conv2d_forward(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, const real[::1] b,
                   real[:, :, :, ::1] out, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw):
    """out = conv(x, w) + b; x (N,C,H,W), w (O,C,KH,KW), b (O,), out (N,O,OH,OW)."""
    cdef fnn_conv_shape s
    _geometry(&s, "conv2d_forward", x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0],
              w.shape[2], w.shape[3], sh, sw, ph, pw)
    _same(w.shape[1], s.c, "conv2d_forward: channels of w vs x")
    _same(b.shape[0], s.o, "conv2d_forward: b vs outputs of w")
    _shape4("conv2d_forward: out", out.shape, s.n, s.o, s.oh, s.ow)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef int status
    with nogil:
        status = fnn_conv2d_forward(dt, &s, &x[0, 0, 0, 0], &w[0, 0, 0, 0], &b[0], &out[0, 0, 0, 0])
    _conv_ok(status, "conv2d_forward")


def conv2d_backward(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w,
                    const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, bint need_dx,
                    real[:, :, :, ::1] dw, real[::1] db, Py_ssize_t sh, Py_ssize_t sw,
                    Py_ssize_t ph, Py_ssize_t pw):
    """dw, db (and dx if need_dx; dx is not touched otherwise) from dy (N,O,OH,OW)."""
    cdef fnn_conv_shape s
    _geometry(&s, "conv2d_backward", x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0],
              w.shape[2], w.shape[3], sh, sw, ph, pw)
    _same(w.shape[1], s.c, "conv2d_backward: channels of w vs x")
    _shape4("conv2d_backward: dy", dy.shape, s.n, s.o, s.oh, s.ow)
    _shape4("conv2d_backward: dw", dw.shape, s.o, s.c, s.kh, s.kw)
    _same(db.shape[0], s.o, "conv2d_backward: db vs outputs of w")
    if need_dx:
        _shape4("conv2d_backward: dx", dx.shape, s.n, s.c, s.h, s.w)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef int status
    cdef void *dxp = &dx[0, 0, 0, 0] if need_dx else NULL
    with nogil:
        status = fnn_conv2d_backward(dt, &s, &x[0, 0, 0, 0], &w[0, 0, 0, 0], &dy[0, 0, 0, 0], dxp,
                                     &dw[0, 0, 0, 0], &db[0])
    _conv_ok(status, "conv2d_backward")


def maxpool2d_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] out, int64_t[:, :, :, ::1] argmax,
                      Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw):
    """out, argmax (N,C,OH,OW): each window's max and its flat index h * W + w in the plane."""
    cdef fnn_conv_shape s
    _geometry(&s, "maxpool2d_forward", x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[1],
              kh, kw, sh, sw, 0, 0)
    _shape4("maxpool2d_forward: out", out.shape, s.n, s.c, s.oh, s.ow)
    _shape4("maxpool2d_forward: argmax", argmax.shape, s.n, s.c, s.oh, s.ow)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_maxpool2d_forward(dt, &s, &x[0, 0, 0, 0], &out[0, 0, 0, 0], &argmax[0, 0, 0, 0])


def maxpool2d_backward(const real[:, :, :, ::1] dy, const int64_t[:, :, :, ::1] argmax,
                       real[:, :, :, ::1] dx):
    """dx = 0, then each dy added at its argmax in its plane. ValueError for an index outside
    [0, H*W) (dx is then not written)."""
    cdef Py_ssize_t n = dy.shape[0], c = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    if min(n, c, oh, ow, dx.shape[2], dx.shape[3]) < 1:
        raise ValueError("maxpool2d_backward: every dimension of dy and dx must be >= 1")
    _shape4("maxpool2d_backward: argmax", argmax.shape, n, c, oh, ow)
    _shape4("maxpool2d_backward: dx", dx.shape, n, c, dx.shape[2], dx.shape[3])
    cdef Py_ssize_t hw = dx.shape[2] * dx.shape[3]
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef fnn_idx bad
    with nogil:
        bad = fnn_maxpool2d_backward(dt, n * c, hw, oh * ow, &dy[0, 0, 0, 0], &argmax[0, 0, 0, 0],
                                     &dx[0, 0, 0, 0])
    if bad >= 0:
        raise ValueError(f"maxpool2d_backward: argmax must lie in [0, {hw}), got "
                         f"{argmax[bad // (c * oh * ow), (bad // (oh * ow)) % c, (bad // ow) % oh, bad % ow]}"
                         f" at flat position {bad}")


def avgpool2d_forward(const real[:, :, :, ::1] x, real[:, :, :, ::1] out, Py_ssize_t kh,
                      Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw):
    """out (N,C,OH,OW): each window's mean, summed in float64."""
    cdef fnn_conv_shape s
    _geometry(&s, "avgpool2d_forward", x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[1],
              kh, kw, sh, sw, 0, 0)
    _shape4("avgpool2d_forward: out", out.shape, s.n, s.c, s.oh, s.ow)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_avgpool2d_forward(dt, &s, &x[0, 0, 0, 0], &out[0, 0, 0, 0])


def avgpool2d_backward(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw):
    """dx (N,C,H,W) = 0, then dy / (KH KW) added over each window."""
    cdef fnn_conv_shape s
    _geometry(&s, "avgpool2d_backward", dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3],
              dx.shape[1], kh, kw, sh, sw, 0, 0)
    _shape4("avgpool2d_backward: dy", dy.shape, s.n, s.c, s.oh, s.ow)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_avgpool2d_backward(dt, &s, &dy[0, 0, 0, 0], &dx[0, 0, 0, 0])

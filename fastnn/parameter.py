"""Parameter: a learnable array and its gradient."""

import numpy as np

from .kernels import get as _get_backend

__all__ = ["Parameter"]


class Parameter:
    """A learnable tensor.

    * ``value`` / ``gradient``: the arrays the backend computes with (NumPy arrays on
      CPU backends, device arrays on a GPU backend), both of the parameter's shape.
    * ``data`` / ``grad``: the same as host NumPy arrays. On CPU backends these are the
      very same objects, so ``p.data[...] = 0`` edits the parameter in place; on a GPU
      backend they are copies (assign ``p.data = array`` to upload new values).
    * ``name``: e.g. ``"0.weight"`` inside a ``Sequential``.

    Gradients **accumulate**, as in PyTorch: each ``backward`` adds its gradient to
    ``gradient`` until :meth:`zero_grad` resets it (``optimizer.zero_grad()`` or
    ``model.zero_grad()``), so a parameter shared by two layers gets the sum of both.

    Resetting is O(1): :meth:`zero_grad` only sets a flag (:attr:`grad_is_zero`). The
    next backward then writes its gradient straight into the array (no memset, no add);
    reading ``gradient`` while the flag is set fills the array with zeros first.
    Layers write gradients through :meth:`grad_slot` / :meth:`grad_done`::

        slot = p.grad_slot()      # the gradient itself after zero_grad, else a scratch array
        kernel(..., slot)         # the kernel overwrites every element of slot
        p.grad_done(slot)         # scratch: added into the gradient (backend ``add``, in place)

    A fused training step that overwrites the whole gradient right after ``zero_grad``
    takes the array with :meth:`grad_for_overwrite`.
    """

    def __init__(self, data, name="", backend="numpy"):
        self.name = name
        self.backend_name = backend
        bk = _get_backend(backend)
        self.value = bk.asarray(np.ascontiguousarray(data))
        self._reset_gradient(bk)

    def _reset_gradient(self, bk):
        """A new gradient array of zeros on ``bk`` (made once, so no uninitialised memory
        is ever read), marked zero."""
        self._grad = bk.zeros(self.value.shape, self.value.dtype)
        self._grad_zero = True
        self._scratch = None

    # --- gradient --------------------------------------------------------------
    @property
    def gradient(self):
        """The gradient array (backend array, the parameter's shape and dtype).

        Whoever holds it may write into it (optimizers, penalties, fused steps), so
        after this read the gradient no longer counts as zero (:attr:`grad_is_zero`)."""
        if self._grad_zero:
            self._fill_zeros()
        return self._grad

    @gradient.setter
    def gradient(self, array):
        self._grad = array
        self._grad_zero = False
        self._scratch = None

    def _fill_zeros(self):
        grad = self._grad
        if isinstance(grad, np.ndarray):
            grad.fill(0)
        else:     # a device array: zeros made on the device by the backend
            self._grad = _get_backend(self.backend_name).zeros(grad.shape, grad.dtype)
        self._grad_zero = False

    @property
    def grad_is_zero(self):
        """True after :meth:`zero_grad` (or creation) until a gradient is written."""
        return self._grad_zero

    def zero_grad(self):
        """Reset the gradient to zero in O(1): only marks it zero (nothing is written)."""
        self._grad_zero = True

    def grad_slot(self):
        """The array a backward kernel should write this call's gradient into (it must
        overwrite every element): the gradient itself when it is zero (the zero flag is
        cleared), else a scratch array of the same shape, dtype and backend, kept on the
        parameter for the next time. Pass it to :meth:`grad_done` afterwards."""
        if self._grad_zero:
            self._grad_zero = False
            return self._grad
        scratch = self._scratch
        grad = self._grad
        if scratch is None or scratch.shape != grad.shape or scratch.dtype != grad.dtype:
            scratch = self._scratch = _get_backend(self.backend_name).zeros(grad.shape, grad.dtype)
        return scratch

    def grad_done(self, array):
        """Finish a write through :meth:`grad_slot`: a scratch slot is added into the
        gradient (in place, with the backend's ``add``); the gradient itself needs nothing."""
        if array is not self._grad:
            _get_backend(self.backend_name).add(self._grad, array, self._grad)

    def _grad_failed(self, array):
        """The kernel writing ``array`` (from :meth:`grad_slot`) raised: when that was the
        gradient itself, it was zero before and may hold anything now, so mark it zero."""
        if array is self._grad:
            self._grad_zero = True

    def grad_for_overwrite(self):
        """The gradient array, for a caller that overwrites every element of it (a fused
        training step right after ``zero_grad``); clears the zero flag without filling.
        RuntimeError when the gradient is not zero: overwriting would lose what has
        accumulated."""
        if not self._grad_zero:
            raise RuntimeError(f"parameter {self.name!r}: grad_for_overwrite() needs a zero gradient "
                               "(call zero_grad() first); overwriting it would lose the gradients "
                               "accumulated since the last zero_grad()")
        self._grad_zero = False
        return self._grad

    def grad_to_replace(self):
        """``zero_grad()`` then ``grad_for_overwrite()`` in one call: the gradient array,
        for a caller that replaces the whole gradient with one new step's (a fused
        training step; what accumulated before is dropped, as zero_grad would)."""
        self._grad_zero = False
        return self._grad

    # --- shape and values --------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return np.dtype(self.value.dtype)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def data(self):
        return _get_backend(self.backend_name).to_host(self.value)

    @data.setter
    def data(self, array):
        array = np.asarray(array)
        if array.shape != self.shape:
            raise ValueError(f"parameter {self.name!r}: new data has shape {array.shape}, "
                             f"expected {self.shape}")
        self.value = _get_backend(self.backend_name).asarray(np.ascontiguousarray(array, self.dtype))

    @property
    def grad(self):
        return _get_backend(self.backend_name).to_host(self.gradient)

    def to(self, backend=None, dtype=None):
        """Move to another backend and/or dtype (values kept; gradient reset to zero)."""
        host = np.asarray(self.data, dtype=dtype or self.dtype)
        self.backend_name = backend or self.backend_name
        bk = _get_backend(self.backend_name)
        self.value = bk.asarray(np.ascontiguousarray(host))
        self._reset_gradient(bk)
        return self

    def __repr__(self):
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype}, backend={self.backend_name!r})"

"""Parameter: a learnable array and its gradient."""

import numpy as np

from .kernels import get as _get_backend

__all__ = ["Parameter"]


class Parameter:
    """A learnable tensor.

    * ``value`` / ``gradient``: the arrays the backend computes with (NumPy arrays on
      CPU backends, device arrays on a GPU backend).
    * ``data`` / ``grad``: the same as host NumPy arrays. On CPU backends these are the
      very same objects, so ``p.data[...] = 0`` edits the parameter in place; on a GPU
      backend they are copies (assign ``p.data = array`` to upload new values).
    * ``name``: e.g. ``"0.weight"`` inside a ``Sequential``.

    ``backward`` overwrites ``gradient`` (gradients are not accumulated across calls).
    """

    def __init__(self, data, name="", backend="numpy"):
        self.name = name
        self.backend_name = backend
        bk = _get_backend(backend)
        self.value = bk.asarray(np.ascontiguousarray(data))
        self.gradient = bk.zeros(self.value.shape, self.value.dtype)

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
        self.gradient = bk.zeros(self.value.shape, self.value.dtype)
        return self

    def __repr__(self):
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype}, backend={self.backend_name!r})"

"""Saving and loading models as ``.npz``: an architecture description (JSON) plus the
weights, read back with ``allow_pickle=False`` so a file can never run code."""

import json
import zipfile

import numpy as np

from .layers import Layer, layer_config, layer_from_config

FORMAT = "fastnn-model"
VERSION = 1


def save(model, path):
    """Write ``model`` (architecture, dtype, weights and buffers) to ``path`` (.npz)."""
    if not isinstance(model, Layer):
        raise TypeError(f"save: expected a fastnn model, got {type(model).__name__}")
    header = {"format": FORMAT, "version": VERSION, "dtype": str(model.dtype),
              "backend": model.backend_name, "architecture": layer_config(model)}
    arrays = {f"param:{p.name}": np.asarray(p.data) for p in model.parameters()}
    arrays.update({f"buffer:{k}": np.asarray(v) for k, v in model.buffers().items()})
    with open(path, "wb") as f:
        np.savez(f, __header__=np.array(json.dumps(header)), **arrays)


def load(path, backend=None):
    """Read a model written by :func:`save`. ``backend`` defaults to the global default.

    Raises ValueError for a truncated, corrupted or foreign file, or one whose weights do
    not fit its architecture.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            contents = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable fastnn model file ({type(exc).__name__}: {exc})") from exc
    if "__header__" not in contents:
        raise ValueError(f"{path}: not a fastnn model file (no header; is it a plain NumPy archive?)")
    try:
        header = json.loads(str(contents.pop("__header__")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupted model header: {exc}") from exc
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastnn model file (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: model format version {header.get('version')} is not supported "
                         f"(this fastnn reads version {VERSION})")
    model = layer_from_config(header["architecture"], backend=backend, dtype=header["dtype"])
    params = model.parameters()
    expected = {f"param:{p.name}" for p in params}
    present = {k for k in contents if k.startswith("param:")}
    if expected != present:
        raise ValueError(f"{path}: weights do not match the architecture "
                         f"(missing {sorted(expected - present)}, unexpected {sorted(present - expected)})")
    for p in params:
        w = contents[f"param:{p.name}"]
        if w.shape != p.shape or w.dtype != p.dtype:
            raise ValueError(f"{path}: parameter {p.name} has shape {w.shape} {w.dtype}, "
                             f"the architecture needs {p.shape} {p.dtype}")
        p.data = w
    buffers = {k[len("buffer:"):]: v for k, v in contents.items() if k.startswith("buffer:")}
    if buffers:
        model.load_buffers(buffers)
    return model

"""Saving and loading models as ``.npz``: an architecture description (JSON) plus the
weights, read back without pickle, so a file can never run code.

File layout (a zip archive as written by ``np.savez``), one ``.npy`` member each:

* ``__header__``: a 0-d unicode array holding JSON ``{"format": "fastnn-model",
  "version": 1, "dtype": "float32" | "float64", "backend": name, "architecture":
  layer_config(model)}``;
* ``param:<name>``: each parameter (``param:0.weight``), in the model's dtype;
* ``buffer:<name>``: each buffer (``buffer:2.running_var``), in the model's dtype.

Loading is bounded: the header is read first (at most MAX_HEADER_BYTES), each
parameter's shape is computed from the architecture, the total is checked against
``max_parameters`` (default MAX_PARAMETERS), and every member's declared shape and dtype
(its ``.npy`` header) is checked before a byte of its data is read. Any malformed file
gives a ValueError that names the file and what is wrong.
"""

import contextlib
import json
import os
import secrets
import stat
import warnings
import zipfile
from io import BytesIO

import numpy as np

from .backend import BackendUnavailable, get_backend, get_backend_name
from .layers import Layer, _without_init, config_shapes, layer_config, layer_from_config

__all__ = ["save", "load", "FORMAT", "VERSION", "MAX_PARAMETERS", "MAX_HEADER_BYTES"]

FORMAT = "fastnn-model"
VERSION = 1
MAX_PARAMETERS = 50_000_000     # parameter + buffer values fnn.load accepts unless told more
MAX_HEADER_BYTES = 1 << 20      # size of the __header__ member (its .npy form, UCS-4 text)
_HEADER = "__header__.npy"
_CHUNK = 1 << 20


# --- saving -------------------------------------------------------------------------------

def _json_value(obj):
    """NumPy scalars and arrays in a config as the JSON numbers/lists they stand for."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def save(model, path):
    """Write ``model`` (architecture, dtype, backend, weights and buffers) to ``path`` (.npz).

    The file is written to a temporary file in the same folder, flushed to disk, and
    only then renamed over ``path``: a save that fails part-way (a full disk, a config
    that cannot be stored) leaves an existing file at ``path`` as it was. TypeError for
    a configuration value that has no JSON form; ValueError, naming the parameter, for a
    model whose layers share a Parameter (``d2.weight = d1.weight``): the format stores
    each layer's parameters by name and cannot record that two are one array.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"save: expected a fastnn model, got {type(model).__name__}")
    header = {"format": FORMAT, "version": VERSION, "dtype": str(model.dtype),
              "backend": model.backend_name, "architecture": layer_config(model)}
    try:
        text = json.dumps(header, default=_json_value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: the model's configuration cannot be stored as JSON: {exc}") from exc
    _refuse_shared(model)
    arrays = {f"param:{p.name}": np.asarray(p.data) for p in model.parameters()}
    arrays.update({f"buffer:{k}": np.asarray(v) for k, v in model.buffers().items()})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _temporary(folder, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __header__=np.array(text), **arrays)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):   # keep the permissions of the file replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):        # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _refuse_shared(model):
    """ValueError naming a Parameter that two layers of ``model`` share: the file stores
    one array per layer's parameter and cannot say two of them are one, so loading would
    silently give independent copies."""
    from .containers import _parameter_places
    first = {}
    for place, p in _parameter_places(model):
        if id(p) in first and first[id(p)] != place:
            raise ValueError(f"save: parameter {p.name!r} is shared by two layers (it is both "
                             f"{first[id(p)]!r} and {place!r}); the file format cannot record that "
                             "layers share a Parameter, so such a model cannot be saved")
        first.setdefault(id(p), place)


def _temporary(folder, name):
    """(fd, path) of a new file ``.<name>.<random>.tmp`` in ``folder`` (mode 0666 - umask)."""
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


# --- loading ------------------------------------------------------------------------------

def load(path, backend=None, max_parameters=MAX_PARAMETERS):
    """Read a model written by :func:`save`.

    ``backend``: default (None) the backend the model was saved on when it is available
    here, else the global default (with a warning saying so). ``max_parameters``: the
    most parameter plus buffer values accepted (default MAX_PARAMETERS = 50 million);
    raise it to load a bigger model. (The shapes come from the architecture without
    building it; only a user layer that does not define ``_config_shapes`` is built, with
    zero weights, before the check.)

    Raises FileNotFoundError for a missing file and ValueError, naming the file and the
    problem, for a truncated, corrupted or foreign file, a header that is not a fastnn
    model description, a model bigger than ``max_parameters``, or weights and buffers
    that do not fit the architecture.
    """
    if backend is not None:
        backend = get_backend(backend).name   # unknown or unavailable: fails now, saying why
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable fastnn model file ({type(exc).__name__}: {exc})"
                         f"{_npy_hint(path)}") from exc
    with archive:
        try:
            return _load(archive, path, backend, max_parameters)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            if isinstance(exc, BackendUnavailable):
                raise
            raise ValueError(f"{path}: not a readable fastnn model file ({type(exc).__name__}: {exc})") from exc


def _npy_hint(path):
    if isinstance(path, (str, bytes, os.PathLike)):
        with contextlib.suppress(OSError), open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                return "; it is a single NumPy array (.npy), not a fastnn model archive (.npz)"
    return ""


def _load(archive, path, backend, max_parameters):
    names = [info.filename for info in archive.infolist()]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: corrupted model file (an archive member appears twice)")
    if _HEADER not in names:
        raise ValueError(f"{path}: not a fastnn model file (no header; is it a plain NumPy archive?)")
    architecture, dtype, saved_backend = _header(archive, path)
    backend = _backend(path, backend, saved_backend)
    model = None
    try:
        shapes = config_shapes(architecture)
    except ValueError as exc:
        raise ValueError(f"{path}: bad architecture in the model header: {exc}") from exc
    if shapes is None:   # a layer that only building can measure: build first
        model = _build(path, architecture, backend, dtype)
        shapes = _shapes(model)
    members = {f"param:{k}": v for k, v in shapes[0].items()}
    members.update({f"buffer:{k}": v for k, v in shapes[1].items()})
    total = sum(int(np.prod(shape)) for shape in members.values())
    if total > max_parameters:
        raise ValueError(f"{path}: the architecture holds {total:,} parameter and buffer values, more than "
                         f"max_parameters={max_parameters:,} (fastnn.io.MAX_PARAMETERS); pass a larger "
                         "max_parameters to fnn.load to read it")
    if model is None:
        model = _build(path, architecture, backend, dtype)
        if _shapes(model) != shapes:
            raise ValueError(f"{path}: the architecture builds parameters and buffers {_shapes(model)}, "
                             f"not the {shapes} its description promises")
    present = {n[:-4] for n in names if n != _HEADER and n.endswith(".npy")}
    odd = sorted(n for n in names if n != _HEADER and not n.endswith(".npy"))
    if present != set(members) or odd:
        raise ValueError(f"{path}: weights do not match the architecture (missing "
                         f"{sorted(set(members) - present)}, unexpected {sorted(present - set(members)) + odd})")
    for key, shape in members.items():   # every declared shape and dtype, before any data
        with archive.open(f"{key}.npy") as f:
            _npy_header(f, path, key, shape, dtype)
    values = {key: _read_member(archive, path, key, shape, dtype) for key, shape in members.items()}
    for p in model.parameters():
        p.data = values[f"param:{p.name}"]
    buffers = {k[len("buffer:"):]: v for k, v in values.items() if k.startswith("buffer:")}
    if buffers:
        try:
            model.load_buffers(buffers)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: bad buffer values: {exc}") from exc
    return model


def _build(path, architecture, backend, dtype):
    """The model, its parameters left zero (no random initial weights are drawn)."""
    try:
        with _without_init():
            return layer_from_config(architecture, backend=backend, dtype=dtype)
    except ValueError as exc:
        raise ValueError(f"{path}: bad architecture in the model header: {exc}") from exc


def _shapes(model):
    return ({p.name: tuple(p.shape) for p in model.parameters()},
            {k: tuple(np.shape(v)) for k, v in model.buffers().items()})


def _header(archive, path):
    """(architecture, dtype, backend) from the header member, each checked."""
    with archive.open(_HEADER) as f:
        raw = f.read(MAX_HEADER_BYTES + 1)
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"{path}: the model header is larger than {MAX_HEADER_BYTES:,} bytes "
                         "(fastnn.io.MAX_HEADER_BYTES)")
    try:
        text = np.lib.format.read_array(BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: corrupted model header: {exc}") from exc
    if text.shape != () or text.dtype.kind != "U":
        raise ValueError(f"{path}: corrupted model header (a {text.dtype} array of shape {text.shape}, "
                         "expected a JSON string)")
    try:
        header = json.loads(str(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"{path}: corrupted model header: not valid JSON ({what})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupted model header: a JSON {type(header).__name__}, "
                         "expected an object")
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastnn model file (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{path}: model format version {header.get('version')!r} is not supported "
                         f"(this fastnn reads version {VERSION})")
    for key in ("architecture", "dtype"):
        if key not in header:
            raise ValueError(f"{path}: the model header lacks {key!r}")
    dtype = header["dtype"]
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{path}: the model header's dtype is {dtype!r}, expected 'float32' or 'float64'")
    backend = header.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise ValueError(f"{path}: the model header's backend is {backend!r}, expected a name")
    return header["architecture"], np.dtype(dtype), backend


def _backend(path, backend, saved):
    """The backend to build on: the caller's, else the saved one if it runs here."""
    if backend is not None or saved is None:
        return backend
    try:
        return get_backend(saved).name
    except (BackendUnavailable, ValueError) as exc:
        fallback = get_backend_name()
        warnings.warn(f"{path}: the model was saved on backend {saved!r}, which cannot run here "
                      f"({exc}); loading it onto {fallback!r}", RuntimeWarning, stacklevel=4)
        return fallback


def _npy_header(f, path, key, shape, dtype):
    """Read and check one member's .npy header; returns (dtype, fortran_order, bytes)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            found, fortran, found_dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            found, fortran, found_dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    except (ValueError, EOFError) as exc:
        raise ValueError(f"{path}: member {key} is not a readable NumPy array ({exc})") from None
    kind = "parameter" if key.startswith("param:") else "buffer"
    name = key.split(":", 1)[1]
    if tuple(found) != tuple(shape) or found_dtype.newbyteorder("=") != dtype:
        raise ValueError(f"{path}: {kind} {name} has shape {tuple(found)} {found_dtype}, "
                         f"the architecture needs {tuple(shape)} {dtype}")
    return found_dtype, fortran, int(np.prod(shape)) * found_dtype.itemsize


def _read_member(archive, path, key, shape, dtype):
    """One member's array (writable, native byte order), reading exactly its declared size."""
    with archive.open(f"{key}.npy") as f:
        found_dtype, fortran, size = _npy_header(f, path, key, shape, dtype)
        buf = np.empty(size, np.uint8)
        view, pos = memoryview(buf), 0
        while pos < size:
            chunk = f.read(min(_CHUNK, size - pos))
            if not chunk:
                raise ValueError(f"{path}: member {key} is truncated ({pos} of {size} bytes)")
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if f.read(1):
            raise ValueError(f"{path}: member {key} has data beyond its declared shape {tuple(shape)}")
    array = buf.view(found_dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype, copy=False) if found_dtype != dtype else array

"""Data: a bundled digits set, 2-D toy problems, an MNIST (IDX) reader, splits, scalers.

Everything returns NumPy arrays: features ``X`` as float32 of shape (N, features),
class labels ``y`` as int64 of shape (N,). Nothing is downloaded.
"""

import gzip
import os
import struct

import numpy as np

__all__ = [
    "load_digits", "make_xor", "make_moons", "make_circles", "make_spirals", "TOY_DATASETS",
    "read_idx", "load_mnist", "MAX_IDX_BYTES", "train_test_split", "Standardizer", "MinMaxScaler",
    "one_hot", "batches",
]

_HERE = os.path.dirname(__file__)


# --- bundled data ----------------------------------------------------------------

def load_digits(images=False):
    """The 8x8 handwritten digits (1,797 images, 10 classes; see DIGITS.md for the source).

    Returns ``(X, y)``: X float32 (1797, 64) with pixel values 0..16, or with
    ``images=True`` (1797, 1, 8, 8): one channel, NCHW as ``Conv2d`` takes it; y int64
    (1797,) digits 0-9.
    """
    with np.load(os.path.join(_HERE, "digits.npz"), allow_pickle=False) as f:
        X, y = f["images"].astype(np.float32), f["labels"].astype(np.int64)
    return (X.reshape(len(X), 1, 8, 8) if images else X.reshape(len(X), 64)), y


# --- 2-D toy problems (all: X float32 (n, 2), y int64 (n,)) ---------------------------

def _noise(rng, X, noise):
    return (X + rng.normal(0.0, noise, X.shape)).astype(np.float32)


def make_xor(n=200, noise=0.1, seed=0):
    """Four clusters at the corners of a square; class = xor of the coordinate signs.
    No straight line separates the classes: the classic case for a hidden layer."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    y = (corners[:, 0] ^ corners[:, 1]).astype(np.int64)
    return _noise(rng, corners * 2.0 - 1.0, noise), y


def make_moons(n=200, noise=0.1, seed=0):
    """Two interleaving half circles."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0, np.pi, n)
    X = np.where(y[:, None] == 0,
                 np.c_[np.cos(t), np.sin(t)],
                 np.c_[1 - np.cos(t), 0.5 - np.sin(t)])
    return _noise(rng, X, noise), y.astype(np.int64)


def make_circles(n=200, noise=0.05, factor=0.5, seed=0):
    """A small circle (class 1) inside a large one (class 0)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 1, factor, 1.0)
    return _noise(rng, np.c_[r * np.cos(t), r * np.sin(t)], noise), y.astype(np.int64)


def make_spirals(n=200, classes=2, noise=0.05, turns=1.5, seed=0):
    """``classes`` interleaved spiral arms (the CS231n spiral data)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = rng.uniform(0.05, 1.0, n)
    t = r * turns * 2 * np.pi + y * 2 * np.pi / classes
    return _noise(rng, np.c_[r * np.sin(t), r * np.cos(t)], noise), y.astype(np.int64)


TOY_DATASETS = {"xor": make_xor, "moons": make_moons, "circles": make_circles, "spirals": make_spirals}


# --- MNIST-style IDX files ------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 1 << 30   # the largest IDX payload read_idx accepts unless told more (1 GiB)


def read_idx(path, max_bytes=MAX_IDX_BYTES):
    """Read an IDX file (the MNIST format), plain or gzip-compressed (``.gz``).

    Returns an array of the shape and type the header declares (native byte order).
    The header is checked first: a payload larger than ``max_bytes`` (default
    MAX_IDX_BYTES, 1 GiB; MNIST's training images take 47 MB) is refused before anything
    is decompressed, and no more than the declared size is ever read.

    Raises ValueError with the reason for a foreign file (wrong magic number or type
    code), a truncated one, one with trailing bytes, or one declaring too much data.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    kind = "gzip IDX" if opener is gzip.open else "IDX"
    try:
        with opener(path, "rb") as f:
            return _read_idx(f, path, max_bytes)
    except (OSError, EOFError) as exc:   # includes gzip's BadGzipFile and truncated streams
        raise ValueError(f"{path}: cannot read as {kind}: {exc}") from exc


def _read_idx(f, path, max_bytes):
    magic = f.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(magic)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0 or code not in _IDX_TYPES or not 1 <= ndim <= 4:
        raise ValueError(f"{path}: not an IDX file (magic bytes {magic.hex()}; expected 0000 "
                         "followed by a type code 08-0e and 1-4 dimensions)")
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = np.dtype(_IDX_TYPES[code])
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    header = 4 + 4 * ndim
    if size > max_bytes:
        raise ValueError(f"{path}: IDX header declares shape {shape} ({size:,} bytes of data), more than "
                         f"max_bytes={max_bytes:,} (fastnn.data.MAX_IDX_BYTES); pass a larger max_bytes "
                         "to read_idx to read it")
    raw = f.read(size + 1)
    if len(raw) != size:
        found = f"{header + len(raw)} bytes" if len(raw) < size else "more"
        raise ValueError(f"{path}: IDX header promises shape {shape} ({header + size} bytes) but the file "
                         f"has {found} ({'truncated' if len(raw) < size else 'trailing data'})")
    return np.frombuffer(raw, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(images_path, labels_path):
    """MNIST (or Fashion-MNIST) from user-supplied IDX files.

    Returns ``(X, y)``: X float32 (N, 784) scaled to [0, 1], y int64 (N,).
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected images of shape (N, rows, cols), got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{labels_path}: expected {len(images)} labels, got shape {labels.shape}")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


# --- splitting, scaling, encoding -----------------------------------------------------

def train_test_split(X, y, test_size=0.2, seed=None, stratify=False):
    """Shuffle and split into ``X_train, X_test, y_train, y_test``.

    ``test_size``: a fraction in (0, 1) or a number of samples. ``stratify=True``
    keeps each class's share equal in both parts (y must be class labels).
    """
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"train_test_split: X has {n} samples but y has {len(y)}")
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"train_test_split: test_size={test_size!r} leaves no train or no test data (n={n})")
    rng = np.random.default_rng(seed)
    if stratify:
        test = []
        for cls in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == cls))
            test.extend(members[:int(round(len(members) * n_test / n))])
        test = np.array(sorted(test), dtype=np.int64)
        train = np.setdiff1d(np.arange(n), test)
        test, train = rng.permutation(test), rng.permutation(train)
    else:
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


class _Scaler:
    """Fit on training data only; then transform train, validation and test alike."""

    def _fitted(self, X):
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__}: call fit(X_train) before transform")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"{type(self).__name__}: fitted on {self.n_features_} features, got shape {X.shape}")
        return X

    def _start(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"{type(self).__name__}: expected a non-empty (samples, features) array, got {X.shape}")
        self.n_features_ = X.shape[1]
        return X

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def _params(self):
        return ""

    def __repr__(self):
        """``Standardizer()`` before fit; ``Standardizer(fitted on 64 features)`` after."""
        args = [self._params()] if self._params() else []
        if hasattr(self, "n_features_"):
            args.append(f"fitted on {self.n_features_} features")
        return f"{type(self).__name__}({', '.join(args)})"

    def as_layer(self, backend=None, dtype="float32"):
        """A ``fastnn.layers.Standardize`` layer computing this scaler's ``transform``:
        prepend it to a model (``Sequential([scaler.as_layer(), ...])``) so that the
        saved model takes raw inputs. RuntimeError before ``fit``."""
        from ..layers import Standardize
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__}: call fit(X_train) before as_layer")
        mean, std = self._shift_scale()
        return Standardize(mean, std, backend=backend, dtype=dtype)


class Standardizer(_Scaler):
    """Per-feature z-score: (x - mean) / std, statistics from ``fit``. Constant features
    (std 0) are only centred. Output float32."""

    def fit(self, X):
        X = self._start(X)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X):
        return ((self._fitted(X) - self.mean_) / self.std_).astype(np.float32)

    def inverse_transform(self, Z):
        return (self._fitted(Z) * self.std_ + self.mean_).astype(np.float32)

    def _shift_scale(self):
        return self.mean_, self.std_


class MinMaxScaler(_Scaler):
    """Per-feature rescaling to ``feature_range`` (default [0, 1]) from ``fit``'s min/max."""

    def __init__(self, feature_range=(0.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"MinMaxScaler: feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = (float(lo), float(hi))

    def fit(self, X):
        X = self._start(X)
        self.min_, span = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        self.span_ = np.where(span > 0, span, 1.0)
        return self

    def transform(self, X):
        lo, hi = self.feature_range
        return ((self._fitted(X) - self.min_) / self.span_ * (hi - lo) + lo).astype(np.float32)

    def _params(self):
        return "" if self.feature_range == (0.0, 1.0) else f"feature_range={self.feature_range}"

    def _shift_scale(self):
        # (x - min) / span * (hi - lo) + lo  ==  (x - (min - lo * s)) / s  with  s = span / (hi - lo)
        lo, hi = self.feature_range
        scale = self.span_ / (hi - lo)
        return self.min_ - lo * scale, scale


def one_hot(y, num_classes=None, dtype=np.float32):
    """Class labels (N,) -> one-hot rows (N, num_classes)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected 1-D integer labels, got dtype {y.dtype} shape {y.shape}")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes})")
    out = np.zeros((len(y), num_classes), dtype)
    out[np.arange(len(y)), y] = 1
    return out


def batches(X, y=None, batch_size=32, shuffle=True, seed=None):
    """Yield mini-batches ``(X_batch, y_batch)`` (or ``X_batch``) covering the data once."""
    n = len(X)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield (X[idx], y[idx]) if y is not None else X[idx]

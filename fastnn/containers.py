"""Containers: layers made of layers. Sequential (one after another, with ``summary``)
and Residual (``x + block(x)``); both importable from :mod:`fastnn.layers`.

A container names its children's parameters by their place (``"2.weight"``,
``"0.block.1.bias"``) and passes modes, backend and dtype moves down to them.

Layers may share Parameters (``d2.weight = d1.weight``): the shared one is listed once
by ``parameters()``, named by its first place, and receives the sum of both layers'
gradients. A layer object may appear only once in a model: it keeps the cache of one
forward pass, so a second call in the same forward would silently give wrong gradients.
"""

import numpy as np

from .backend import get_backend_name
from .layers import Layer, _positive_int, layer_config, register

__all__ = ["Sequential", "Residual"]


def _parameter_places(layer, prefix=""):
    """(place, parameter) for every parameter of every layer in ``layer``'s tree, in
    order, a shared Parameter once per layer that holds it: ``("2.weight", p)``."""
    if isinstance(layer, _Container):
        for i, child in enumerate(layer.layers):
            yield from _parameter_places(child, prefix + layer._prefix(i))
        return
    for p in layer.parameters():
        yield prefix + getattr(p, "_layer_name", p.name), p


def _name_parameters(layer, prefix, named):
    """Name ``layer``'s parameters by their path: "weight" of layer 2 becomes "2.weight".
    Names are rebuilt from the names the layers gave them, so layers taken out of one
    container into another (``Sequential([scaler_layer, *model.layers])``) are named by
    their new place, not "1.0.weight". A Parameter shared by several layers keeps the
    name of its first place; ``named`` holds the ids of those named so far."""
    if isinstance(layer, _Container):
        for i, child in enumerate(layer.layers):
            _name_parameters(child, prefix + layer._prefix(i), named)
        return
    for p in layer.parameters():
        if id(p) in named:
            continue
        named.add(id(p))
        if not hasattr(p, "_layer_name"):
            p._layer_name = p.name
        p.name = prefix + p._layer_name


def _check_used_once(container, layers):
    """ValueError when one Layer object appears twice anywhere in the tree of ``layers``
    (the children of ``container``, nested containers included)."""
    seen = {}

    def walk(layer, place):
        if id(layer) in seen:
            text = f"{type(layer).__name__}([...])" if isinstance(layer, _Container) else repr(layer)
            raise ValueError(
                f"{type(container).__name__}: the layer {text} appears twice in the model "
                f"(at {seen[id(layer)]!r} and {place!r}). A layer keeps the cache of one forward "
                "pass, so calling it twice in one forward would give wrong gradients; use two "
                "layers that share its Parameters instead (e.g. d2 = Dense(...); "
                "d2.weight = d1.weight)")
        seen[id(layer)] = place
        if isinstance(layer, _Container):
            for i, child in enumerate(layer.layers):
                walk(child, place + "." + layer._prefix(i).rstrip("."))

    for i, layer in enumerate(layers):
        walk(layer, container._prefix(i).rstrip("."))


def _distinct(params):
    """Parameters in order of first appearance, each once (by identity)."""
    seen = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


class _Container(Layer):
    """Shared by Sequential and Residual: children, naming, modes, moves."""

    def __init__(self, layers, backend, dtype):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__}: item {i} is a {type(layer).__name__}, not a fastnn layer")
        _check_used_once(self, layers)
        if dtype is None:
            dtype = layers[0].dtype if layers else "float32"
        super().__init__(backend or (layers[0].backend_name if layers else None), dtype)
        self.layers = layers
        named = set()
        for i, layer in enumerate(layers):
            layer.to(self.backend_name, self.dtype)
            _name_parameters(layer, self._prefix(i), named)

    def _prefix(self, i):
        return f"{i}."

    def parameters(self):
        """Every layer's parameters in order, a Parameter shared by several layers once."""
        return _distinct(p for layer in self.layers for p in layer.parameters())

    def buffers(self):
        return {f"{self._prefix(i)}{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.buffers().items()}

    def load_buffers(self, buffers):
        for i, layer in enumerate(self.layers):
            prefix = self._prefix(i)
            mine = {k[len(prefix):]: v for k, v in buffers.items() if k.startswith(prefix)}
            if mine:
                layer.load_buffers(mine)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def to(self, backend=None, dtype=None):
        super().to(backend, dtype)
        for layer in self.layers:
            layer.to(self.backend_name, self.dtype)
        return self

    def reset_parameters(self, rng, next_layer=None):
        for i, layer in enumerate(self.layers):
            following = self.layers[i + 1] if i + 1 < len(self.layers) else next_layer
            layer.reset_parameters(rng, following)

    def _in_features(self):
        for layer in self.layers:
            features = layer._in_features()
            if features is not None or not layer._keeps_shape:
                return features
        return None

    @property
    def _keeps_shape(self):
        return all(layer._keeps_shape for layer in self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)


@register
class Sequential(_Container):
    """Layers applied one after another; backward runs them in reverse.

    ``Sequential(layers, backend=None, seed=None, dtype=None)``: ``backend`` defaults to
    the global default (see ``fastnn.backend``); ``seed`` re-initialises every layer's
    weights (and dropout masks) from one generator, so the same seed gives the same
    model on every backend; ``dtype`` (default: the first layer's, normally float32)
    converts every layer.
    """

    def __init__(self, layers, backend=None, seed=None, dtype=None):
        super().__init__(layers, backend or get_backend_name(), dtype)
        self.seed = seed
        if seed is not None:
            self.reset_parameters(np.random.default_rng(seed))

    def _forward(self, x):
        for layer in self.layers:
            x = layer._forward(x)
        return x

    def output_shape(self, input_shape):
        for i, layer in enumerate(self.layers):
            try:
                input_shape = layer.output_shape(input_shape)
            except ValueError as exc:
                raise ValueError(f"Sequential layer {i}: {exc}") from None
        return input_shape

    def _backward(self, dout, need_dx=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i]._backward(dout, need_dx or i > 0)
        return dout

    def summary(self, input_shape=None):
        """The model as a table (a string), one row per layer, in aligned columns:

        * ``#``: where the layer sits: ``2``, or ``5.block.0`` inside a container (the
          prefix of its parameters' names); a container's layers follow it, indented;
        * ``layer``: its repr (a container: its type);
        * ``output shape``: ``(N, 10)``, N being the batch; ``?`` where unknown;
        * ``parameters``: learnable values (a container: all of its layers').

        A header names the backend, dtype and input shape; a footer gives the totals of
        parameters and of buffer values (e.g. BatchNorm1d running statistics).

        ``input_shape``: one sample's shape, without the batch axis (``64`` or ``(8, 8)``);
        default: the input width of the first layer that has one (a Dense's
        ``in_features``), unknown when a Flatten comes first. ValueError when a layer
        cannot take the shape that reaches it.
        """
        if input_shape is None:
            features = self._in_features()
            shape = None if features is None else (features,)
        else:
            dims = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
            shape = tuple(_positive_int("Sequential.summary", "each input_shape entry", d) for d in dims)
        rows = []
        _summary_rows(self, "", 0, shape, rows)
        table = [["#", "layer", "output shape", "parameters"]]
        table += [[name, text, _shape_text(out), f"{count:,}"] for name, text, out, count in rows]
        width = [max(len(row[c]) for row in table) for c in range(4)]
        lines = [f"Sequential on backend {self.backend_name!r}, dtype {self.dtype}, input {_shape_text(shape)}"]
        lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c:<{width[2]}}  {d:>{width[3]}}".rstrip()
                  for a, b, c, d in table]
        n_params = sum(p.size for p in self.parameters())
        n_buffers = sum(int(np.size(v)) for v in self.buffers().values())
        lines.append(f"total: {n_params:,} parameters, {n_buffers:,} buffer values")
        return "\n".join(lines)

    def get_config(self):
        """{"layers": [...], "seed": the integer seed, or None (also for a Generator seed)}."""
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            seed = None
        return {"layers": [layer_config(layer) for layer in self.layers],
                "seed": None if seed is None else int(seed)}

    def _repr(self, top=True):
        tail = f", backend={self.backend_name!r}" if top else ""
        if not self.layers:
            return f"Sequential([]{tail})"
        inner = ",\n".join(layer._repr(False) for layer in self.layers).replace("\n", "\n  ")
        return f"Sequential([\n  {inner}\n]{tail})"


def _shape_text(shape):
    return "?" if shape is None else f"(N, {', '.join(map(str, shape))})"


def _summary_rows(container, path, depth, shape, rows):
    """Append [name, text, output shape, parameter count] for each layer of ``container``
    (recursing into nested containers); returns the output shape."""
    for i, layer in enumerate(container.layers):
        name = f"{path}{container._prefix(i)}".rstrip(".")
        count = sum(p.size for p in layer.parameters())
        nested = isinstance(layer, _Container)
        row = [name, "  " * depth + (type(layer).__name__ if nested else repr(layer)), None, count]
        rows.append(row)
        if nested:
            _summary_rows(layer, name + ".", depth + 1, shape, rows)
        try:
            shape = row[2] = layer.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"Sequential.summary: layer {name}: {exc}") from None
    return shape


@register
class Residual(_Container):
    """Skip connection: ``out = x + block(x)``; backward: ``dx = dout + block.backward(dout)``.

    ``block`` is a layer or a list of layers (made a Sequential); it must keep the
    shape of its input. The identity path lets gradients reach early layers of deep
    networks undiminished.
    """

    def __init__(self, block, backend=None, dtype=None):
        if isinstance(block, (list, tuple)):
            block = Sequential(list(block), backend=backend, dtype=dtype)
        super().__init__([block], backend, dtype)

    @property
    def block(self):
        return self.layers[0]

    def _prefix(self, i):
        return "block."

    def output_shape(self, input_shape):
        out = self.block.output_shape(input_shape)
        if None not in (out, input_shape) and tuple(out) != tuple(input_shape):
            raise ValueError(f"Residual: the block maps shape {_shape_text(input_shape)} to {_shape_text(out)}; "
                             "a residual block must keep the shape")
        return input_shape if input_shape is not None else out

    def _repr(self, top=True):
        return f"Residual({self.block._repr(False)})"

    def _forward(self, x):
        x = self._input(x)
        fx = self.block._forward(x)
        if tuple(fx.shape) != tuple(x.shape):
            raise ValueError(f"Residual: the block maps shape {tuple(x.shape)} to {tuple(fx.shape)}; "
                             "a residual block must keep the shape")
        out = self.bk.empty(x.shape, self.dtype)
        self.bk.add(x, fx, out)
        return out

    def _backward(self, dout, need_dx=True):
        dy = self.bk.asarray(dout, self.dtype)
        dblock = self.block._backward(dy, True)
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.add(dy, dblock, dx)
        return dx

    def get_config(self):
        return {"block": layer_config(self.block)}

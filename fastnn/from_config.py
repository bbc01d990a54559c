"""Layer descriptions read back: :func:`layer_from_config` rebuilds a layer (and its
children) from :func:`fastnn.layers.layer_config`'s dict; :func:`config_shapes` tells
the shapes of its parameters and buffers without building it. Both check every
description and refuse containers nested deeper than ``MAX_DEPTH``.

All of these are importable from :mod:`fastnn.layers`.
"""

import inspect
import reprlib

from .containers import Residual, Sequential
from .layers import LAYERS, _init_params

__all__ = ["MAX_DEPTH", "layer_from_config", "config_shapes"]

MAX_DEPTH = 64   # containers nested deeper than this are refused by layer_from_config/config_shapes


def _split_config(config, depth):
    """(class, arguments) of one layer description, its keys checked against the
    constructor; ValueError for anything malformed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"layer description nested deeper than {MAX_DEPTH} containers (fastnn.from_config.MAX_DEPTH)")
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"not a layer description (a dict with a 'type'): {reprlib.repr(config)}")
    kind = config["type"]
    if not isinstance(kind, str) or kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYERS)}")
    cls = LAYERS[kind]
    args = {k: v for k, v in config.items() if k != "type"}
    params = _init_params(cls)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = [] if takes_any else sorted(map(str, set(args) - set(params)))
    if unknown:
        raise ValueError(f"{kind}: unknown configuration keys {unknown}; {kind} takes {sorted(params)}")
    missing = [name for name, p in params.items() if p.default is p.empty and name not in args]
    if missing:
        raise ValueError(f"{kind}: configuration lacks {missing}")
    return cls, kind, args


def _children(cls, args):
    """[(name prefix, description)] of a container's layers, as the built container names them."""
    if cls is Sequential:
        layers = args["layers"]
        if not isinstance(layers, list):
            raise ValueError("Sequential: 'layers' must be a list of layer descriptions, "
                             f"got {reprlib.repr(layers)}")
        seed = args.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Sequential: seed must be an integer or null, got {reprlib.repr(seed)}")
        return [(f"{i}.", c) for i, c in enumerate(layers)]
    return [("block.", args["block"])]


def layer_from_config(config, backend=None, dtype="float32", _depth=0):
    """Rebuild a layer (recursively) from :func:`layer_config`'s output.

    ValueError, naming the layer type, for a description that is not a dict with a
    known ``type``, has keys its constructor does not take (or lacks required ones),
    holds values the constructor refuses, or nests containers deeper than MAX_DEPTH.
    A Sequential's recorded seed is kept in its config but does not redraw weights.
    """
    cls, kind, args = _split_config(config, _depth)
    if cls is Sequential or cls is Residual:
        layers = [layer_from_config(c, backend, dtype, _depth + 1) for _, c in _children(cls, args)]
        if cls is Residual:
            return Residual(layers[0], backend=backend, dtype=dtype)
        model = Sequential(layers, backend=backend, dtype=dtype, seed=None)
        model.seed = args.get("seed")
        return model
    try:
        return cls(**args, backend=backend, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {kind} configuration {reprlib.repr(args)}: {exc}") from exc


def config_shapes(config, _depth=0):
    """({parameter name: shape}, {buffer name: shape}) of the model that ``config`` (a
    :func:`layer_config` description) builds, named as the built model names them
    (``"0.weight"``, ``"3.running_var"``), without building it.

    Returns None when a layer type cannot tell without being built (a user layer that
    does not define ``_config_shapes``). ValueError for a malformed description, as
    :func:`layer_from_config`.
    """
    cls, kind, args = _split_config(config, _depth)
    if cls is Sequential or cls is Residual:
        params, buffers = {}, {}
        for prefix, child in _children(cls, args):
            shapes = config_shapes(child, _depth + 1)
            if shapes is None:
                return None
            params.update({prefix + k: v for k, v in shapes[0].items()})
            buffers.update({prefix + k: v for k, v in shapes[1].items()})
        return params, buffers
    return cls._config_shapes(args)

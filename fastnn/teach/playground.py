"""The Neuron Playground: one self-contained HTML page (no network access) with sliders for a
neuron's inputs, weights, bias and activation, and a hidden-layer mode that draws the
decision map of a small two-layer network.

    fnn.teach.write_playground("out")     # -> out/playground.html

The page computes with the formulas of :mod:`fastnn.teach.neuron`, written again in
JavaScript operation for operation (the same correctly rounded sum, the same
overflow-safe sigmoid, the same reading of tanh as a probability); the browser tests
check that the numbers it shows equal :func:`fastnn.teach.neuron`'s and
:func:`fastnn.teach.two_layer`'s. The two-layer network's weights are drawn by
:func:`fastnn.teach.two_layer` and embedded, with the single layer they collapse into.
"""

import json
import os
from html import escape

from .neuron import ACTIVATIONS, LEAKY_ALPHA, neuron, two_layer

__all__ = ["ACTIVATION_INFO", "DEFAULTS", "NETWORK_HIDDEN", "NETWORK_SEED", "MAP_EXTENT", "playground_data",
           "write_playground"]

# (name on the page, one-line description), in the order of ACTIVATIONS
ACTIVATION_INFO = {
    "sigmoid": ("Sigmoid", "Sigmoid squashes outputs into a 0..1 range, which is useful when you want a "
                           "probability-like score."),
    "tanh": ("Tanh", "Tanh squashes outputs into a -1..1 range centred on zero; (tanh + 1) / 2 reads as "
                     "a probability."),
    "relu": ("ReLU", "ReLU keeps a positive score as it is and turns a negative one into 0, so the neuron "
                     "is either silent or proportional."),
    "leaky_relu": ("Leaky ReLU", f"Leaky ReLU keeps a positive score and multiplies a negative one by "
                                 f"{LEAKY_ALPHA:g}, so the neuron never goes completely silent."),
    "linear": ("Linear", "Linear leaves the score unchanged: the output is the weighted sum itself, "
                         "an unbounded score read by its sign."),
}
assert tuple(ACTIVATION_INFO) == ACTIVATIONS

# The seed's worked example: 0.69 -> 0.67 with sigmoid, 67%, positive.
DEFAULTS = {"inputs": [0.9, 0.3], "weights": [1.2, -0.8], "bias": -0.15, "activation": "sigmoid"}
# Slider ranges (number boxes accept any finite number).
RANGES = {"inputs": (-2.0, 2.0), "weights": (-3.0, 3.0), "bias": (-2.0, 2.0), "step": 0.01}
# A 2 -> 5 -> 1 network whose boundary bends visibly in [-2, 2]^2 for every non-linear
# activation (seed 25 of two_layer's weights; tested in tests/test_browser.py).
NETWORK_HIDDEN = 5
NETWORK_SEED = 25
MAP_EXTENT = (-2.0, 2.0)


def playground_data(hidden=NETWORK_HIDDEN, seed=NETWORK_SEED):
    """What the page embeds: the activations, the defaults and the engine's two-layer network."""
    net = two_layer(DEFAULTS["inputs"], hidden=hidden, activation="linear", seed=seed)
    if not net.collapses:
        raise RuntimeError("the linear two-layer network does not collapse into one layer")
    reference = neuron(DEFAULTS["inputs"], DEFAULTS["weights"], DEFAULTS["bias"], DEFAULTS["activation"])
    return {
        "activations": [{"name": a, "title": ACTIVATION_INFO[a][0], "description": ACTIVATION_INFO[a][1]}
                        for a in ACTIVATIONS],
        "leaky_alpha": LEAKY_ALPHA,
        "defaults": DEFAULTS,
        "ranges": RANGES,
        "network": {"hidden": hidden, "seed": seed, "w1": net.w1.tolist(), "b1": net.b1.tolist(),
                    "w2": net.w2[:, 0].tolist(), "b2": float(net.b2[0]),
                    "collapsed_w": net.collapsed_w[:, 0].tolist(), "collapsed_b": float(net.collapsed_b[0]),
                    "extent": list(MAP_EXTENT)},
        # the engine's numbers for the defaults, shown on the page as the check it starts from
        "reference": {"z": reference.z, "output": reference.output, "confidence": reference.confidence,
                      "label": reference.label, "backend": reference.backend},
    }


def write_playground(out, hidden=NETWORK_HIDDEN, seed=NETWORK_SEED, name="playground.html"):
    """Write the playground page into folder ``out``; returns its path."""
    template_path = os.path.join(os.path.dirname(__file__), "playground.html")
    with open(template_path, encoding="utf-8") as f:
        template = f.read()
    payload = json.dumps(playground_data(hidden, seed), separators=(",", ":")).replace("</", "<\\/")
    page = template.replace("__TITLE__", escape("Neuron Playground")).replace("__DATA__", payload)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path

"""Teaching tools: one neuron worked by hand, a training run you can scrub through, and the
classic training studies.

    import fastnn as fnn
    print(fnn.teach.neuron([0.9, 0.3], [1.2, -0.8], bias=-0.15, activation="sigmoid"))
    print(fnn.teach.two_layer([0.9, 0.3], hidden=3, activation="linear"))
    run = fnn.teach.visualize("moons", hidden="8", lr="balanced", out="viz")   # PNGs + HTML
    study = fnn.teach.studies.vanishing_gradients(out="studies")               # data + PNG
    fnn.teach.write_playground("out")     # the Neuron Playground page, out/playground.html

The same tools are on the command line: ``fastnn neuron``, ``fastnn playground``,
``fastnn visualize``, ``fastnn study NAME`` and ``fastnn serve [DIR]`` (see ``fastnn <command> --help``).
"""

from . import studies
from .commands import add_commands
from .neuron import NeuronResult, TwoLayerResult, neuron, two_layer
from .playground import write_playground
from .studies import STUDIES, Study, run_study
from .visualizer import LR_PRESETS, Checkpoint, VisualRun, visualize

__all__ = ["studies", "add_commands", "NeuronResult", "TwoLayerResult", "neuron", "two_layer", "STUDIES",
           "Study", "run_study", "LR_PRESETS", "Checkpoint", "VisualRun", "visualize", "write_playground"]

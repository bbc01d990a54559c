"""fastnn: see how neural networks learn, with kernels compiled three ways.

    import fastnn as fnn
    model = fnn.Sequential([fnn.Dense(64, 64), fnn.ReLU(), fnn.Dense(64, 10)], seed=0)
    opt = fnn.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=30)

The layers (``fastnn.layers``) call kernels (``fastnn.kernels``) of a backend:
python (interpreted), numpy (the reference), numba, cython, cuda.
"""

from . import data, kernels
from .backend import (BackendUnavailable, available_backends, backend_status, get_backend,
                      get_backend_name, get_num_threads, set_backend, set_num_threads, use_backend,
                      warmup)
from .gradcheck import gradcheck
from .io import load, save
from .layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dense, Dropout, Flatten, Layer, Unflatten,
                     LeakyReLU, MaxPool2d, ReLU, Residual, Sequential, Sigmoid, Softmax, Standardize, Tanh)
from .losses import L1, L2, MSE, BinaryCrossEntropy, Loss, SoftmaxCrossEntropy
from .optim import SGD, Adam, AdamW, CosineLR, StepLR, clip_grad_norm, global_grad_norm
from .parameter import Parameter
from .step import TrainStep
from .training import Callback, EarlyStopping, History, evaluate, fit, predict

from . import distributed, teach  # noqa: E402  (use the names above)

__version__ = "0.1.0"

__all__ = [
    "data", "distributed", "kernels", "BackendUnavailable", "available_backends", "backend_status", "get_backend",
    "get_backend_name", "get_num_threads", "set_backend", "set_num_threads", "use_backend", "warmup",
    "gradcheck", "load", "save", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dense", "Dropout",
    "Flatten", "Unflatten", "Layer", "LeakyReLU", "MaxPool2d", "ReLU", "Residual", "Sequential", "Sigmoid", "Softmax", "Standardize", "Tanh", "L1", "L2", "MSE",
    "BinaryCrossEntropy", "Loss", "SoftmaxCrossEntropy", "SGD", "Adam", "AdamW", "CosineLR", "StepLR",
    "clip_grad_norm", "global_grad_norm", "Parameter", "TrainStep", "Callback", "EarlyStopping", "History",
    "evaluate", "fit", "predict", "teach",
]

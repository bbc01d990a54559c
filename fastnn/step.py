"""One training step: zero the gradients -> forward -> loss -> backward -> (penalties,
clipping) -> update. ``fit``, ``fastnn bench`` and the asv benchmarks all run this.
"""

from .fused import fused_step
from .optim import clip_grad_norm

__all__ = ["TrainStep"]


class TrainStep:
    """``step(x, target) -> (mean loss, number correct or None)`` for one mini-batch.

    ``x``: (N, ...) in the model's dtype, on the model's backend (a host array, or a
    device array on a GPU backend); ``target``: what ``loss`` takes (labels (N,) int64
    for SoftmaxCrossEntropy, the output's shape for MSE / BinaryCrossEntropy). "Correct"
    counts rows (elements for BinaryCrossEntropy) classified right; None for MSE.

    With ``fused=True`` (and no ``regularizers`` or ``clip_norm``) the backend runs the
    whole step as one compiled call where it has one for this model, loss and optimizer
    (``fastnn/fused.py``); the numbers equal the layer-by-layer path's. ``self.fused``
    says which path runs. Gradients are zeroed at the start of every step, so after a
    step ``p.grad`` holds that batch's gradient.
    """

    def __init__(self, model, loss, optimizer, regularizers=(), clip_norm=None, fused=True):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.regularizers, self.clip_norm = tuple(regularizers), clip_norm
        loss.backend_name = model.backend_name
        self._params = model.parameters()
        self._fused = None
        if fused and not self.regularizers and clip_norm is None:
            self._fused = fused_step(model, loss, optimizer)

    @property
    def fused(self):
        """True when the step runs as one compiled call."""
        return self._fused is not None

    def __call__(self, x, target):
        if self._fused is not None:
            return self._fused(x, target)       # replaces the gradients: no zero_grad needed
        self.optimizer.zero_grad()
        model, loss = self.model, self.loss
        out = model._forward(x)
        value = loss.forward(out, target)
        correct = loss.correct(out)
        model._backward(loss._backward(), need_dx=False)
        for reg in self.regularizers:
            value += reg.value(self._params)
            reg.add_grad(self._params)
        if self.clip_norm is not None:
            clip_grad_norm(self._params, self.clip_norm)
        self.optimizer.step()
        return value, correct

    def __repr__(self):
        path = "fused" if self.fused else "layer by layer"
        return f"TrainStep({type(self.model).__name__}, {self.loss!r}, {self.optimizer!r}, {path})"

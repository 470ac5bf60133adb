"""Adam for lib's training loops: torch's own step, without ``torch.optim.Optimizer``'s import of
``torch._dynamo``."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim.adam import adam as adam_step  # the function torch.optim.Adam.step calls

from ._checks import check_real


class Adam:
    """torch's Adam step (``torch.optim.adam.adam``, the function ``torch.optim.Adam.step`` runs,
    with torch's defaults and its fused kernel), for lib's training loops.

    ``torch.optim.Adam.step`` imports ``torch._dynamo`` on its first call (to mark a graph break
    for ``torch.compile``), about 1.3 s of CPU: a tenth of a quick chapter, paid by every chapter
    that trains. This holds the same state (``exp_avg``, ``exp_avg_sq``, a float32 step count on
    the parameters' device) and calls the same kernel, so its iterates are torch.optim.Adam's
    exactly (tested). It offers what lib's loops use: ``param_groups[0]["lr"]`` (a schedule sets
    it), ``zero_grad(set_to_none=True)`` and ``step()``; parameters without a gradient are skipped.
    """

    def __init__(self, params: list[Tensor], lr: float, fused: bool) -> None:
        self.params = list(params)
        self.param_groups = [{"lr": lr}]
        self.fused = fused
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # torch keeps the step on the parameters' device for the fused kernel, on the CPU otherwise
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device if fused else "cpu") for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (torch's default; lib's loops never keep zeroed ones)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        pick = lambda xs: [xs[i] for i in live]  # noqa: E731
        adam_step(pick(self.params), [self.params[i].grad for i in live], pick(self.exp_avg),
                              pick(self.exp_avg_sq), [], pick(self.steps), fused=self.fused or None,
                              amsgrad=False, beta1=0.9, beta2=0.999, lr=self.param_groups[0]["lr"],
                              weight_decay=0.0, eps=1e-8, maximize=False)


def adam(params: list[Tensor], lr: float) -> Adam:
    """Adam (Kingma and Ba 2015, torch's defaults and kernel: :class:`Adam`) on the stacked
    ``(B, ...)`` parameters. Adam is elementwise, so this is exactly ``B`` independent Adams;
    the fused kernel is the fastest form on the CPU too (``benchmarks/batched_training.py``).
    ``params`` is a non-empty list of tensors, ``lr`` a finite learning rate > 0."""
    if not isinstance(params, (list, tuple)) or not params or not all(isinstance(p, Tensor) for p in params):
        raise TypeError("params must be a non-empty list of tensors")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return Adam(params, lr, fused)

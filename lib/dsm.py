"""Denoising score matching: the objective and a trainer.

At one time ``t`` the objective of Vincent (2011), in the form of Gupta et al. (2024), is

    L_t(f) = E || f(a_t x_0 + s_t z) + z / s_t ||^2,      z ~ N(0, I_d),

minimised by the score ``grad log q_t`` with minimum ``d / s_t^2 - E_{q_t}||grad log q_t||^2``
(:func:`lib.metrics.dsm_minimum`). The empirical objective averages over ``m`` samples
``x_i`` with noise draws ``z_i``; the sample-complexity papers fix those draws once
(``noise="fixed"``), practice redraws them every step (``noise="fresh"``). Over a range of
times the objective is ``E_t[lambda(t) L_t(f)]`` with ``t`` log-uniform on ``[gamma, T]``
and weight ``lambda(t) = s_t^2`` (the noise-prediction loss of Ho et al. 2020) or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._checks import (
    ScoreFn,
    as_points,
    call_score,
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_real,
    check_seed,
)
from .forward import noising_inputs
from .optim import adam
from .threads import small_work

WEIGHTINGS = ("sigma2", "none")


def dsm_loss(
    score_fn: ScoreFn,
    x0: Tensor,
    t: Tensor | float,
    z: Tensor | None = None,
    *,
    weighting: str = "none",
    generator: torch.Generator | None = None,
) -> Tensor:
    """The empirical objective ``(1/m) sum_i lambda(t_i) ||f(a_t x_i + s_t z_i) + z_i/s_t||^2``.

    ``t`` is one time (> 0) or one per row; ``z`` defaults to fresh ``N(0, I)`` draws.
    Differentiable in the parameters of ``score_fn``.
    """
    check_callable(score_fn, "score_fn")
    check_choice(weighting, "weighting", WEIGHTINGS)
    x0, t, z = noising_inputs(x0, t, z, generator, allow_zero=False)
    loss = _loss(score_fn, x0, t, z, weighting)
    if not torch.isfinite(loss):
        raise ValueError(f"the DSM loss is {loss.item()}: score_fn returned non-finite values, or values "
                         f"too large to square in {loss.dtype}")
    return loss


def _loss(score_fn: ScoreFn, x0: Tensor, t: Tensor, z: Tensor, weighting: str, name: str = "score_fn") -> Tensor:
    a = torch.exp(-t)
    s = torch.sqrt(-torch.expm1(-2.0 * t))
    if t.ndim == 1:
        a, s = a[:, None], s[:, None]
    # finiteness is judged on the loss (one check, not one per entry)
    residual = call_score(score_fn, a * x0 + s * z, t, name, check_finite=False) + z / s
    per_sample = (residual**2).sum(-1)
    if weighting == "sigma2":
        per_sample = per_sample * (s * s).reshape(-1)
    return per_sample.mean()


@dataclass
class TrainResult:
    """What :func:`train_dsm` returns: the loss at every step, and the settings used."""

    losses: Tensor
    steps: int
    noise: str

    @property
    def final_loss(self) -> float:
        """Mean loss over the last tenth of the steps (single steps are noisy)."""
        tail = max(1, self.steps // 10)
        return float(self.losses[-tail:].mean())


@small_work
def train_dsm(
    model: nn.Module,
    x0: Tensor,
    *,
    t: float | None = None,
    t_range: tuple[float, float] | None = None,
    steps: int = 1000,
    lr: float = 1e-3,
    batch_size: int | None = None,
    optimizer: str = "adam",
    noise: str = "fresh",
    weighting: str = "sigma2",
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Minimise the DSM objective over the parameters of ``model`` on the samples ``x0``.

    Give either one time ``t`` or a range ``t_range = (gamma, T)``. ``batch_size=None``
    means full batch. ``noise="fixed"`` draws one ``(t_i, z_i)`` per sample up front and
    minimises that fixed empirical objective (Gupta et al. 2024); ``"fresh"`` redraws them
    every step. ``seed`` fixes the noise and minibatch draws; the initialisation is the
    model's own (see :class:`lib.networks.ScoreMLP`'s ``seed``).

    If the loss becomes non-finite (the step size is too large), the model's weights are
    set back to those it had before the call and an error is raised, so the same model can
    be trained again with a smaller ``lr``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    ref = params[0]
    x0 = as_points(x0, "x0", getattr(model, "d", None), dtype=ref.dtype, device=ref.device)
    sample_t = _time_sampler(t, t_range, ref)
    steps = check_int(steps, "steps")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    m = x0.shape[0]
    batch = m if batch_size is None else check_int(batch_size, "batch_size", high=m)
    check_choice(optimizer, "optimizer", ("adam", "sgd"))
    check_choice(noise, "noise", ("fresh", "fixed"))
    check_choice(weighting, "weighting", WEIGHTINGS)
    gen = torch.Generator(device=ref.device).manual_seed(check_seed(seed))
    check_bool(progress, "progress")
    opt = adam(params, lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    if noise == "fixed":
        fixed_t, fixed_z = sample_t(m, gen), torch.randn(x0.shape, generator=gen, dtype=x0.dtype, device=x0.device)
    losses = torch.empty(steps, dtype=torch.float64)
    initial = [p.detach().clone() for p in params]
    for step in tqdm(range(steps), desc="DSM training", disable=not progress, leave=False):
        idx = None if batch == m else torch.randperm(m, generator=gen, device=x0.device)[:batch]
        xb = x0 if idx is None else x0[idx]
        if noise == "fixed":
            tb = fixed_t if idx is None or fixed_t.ndim == 0 else fixed_t[idx]
            zb = fixed_z if idx is None else fixed_z[idx]
        else:
            tb = sample_t(batch, gen)
            zb = torch.randn(xb.shape, generator=gen, dtype=x0.dtype, device=x0.device)
        loss = _loss(model, xb, tb, zb, weighting, "model")
        if not torch.isfinite(loss):
            _diverged(params, initial, loss, step, lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
    return TrainResult(losses=losses, steps=steps, noise=noise)


def _diverged(params: list[Tensor], initial: list[Tensor], loss: Tensor, step: int, lr: float) -> None:
    """Put back the weights the model had before training and say so: a diverged model left
    at ~1e30 (or at the last finite but already huge weights) fails again whatever ``lr``
    it is given next."""
    with torch.no_grad():
        for p, keep in zip(params, initial):
            p.copy_(keep)
    where = "the model's initial weights give" if step == 0 else f"training diverged: step {step} gave"
    raise ValueError(
        f"the DSM loss is not finite: {where} {loss.item()}. The model's weights were restored to "
        f"those it had before this call; retry with a smaller lr (now {lr:g}) or check that the "
        "model returns finite values"
    )


def _time_sampler(t: float | None, t_range: tuple[float, float] | None, ref: Tensor):
    """A function ``(n, generator) -> times``: one fixed time, or log-uniform on a range."""
    if (t is None) == (t_range is None):
        raise ValueError("give exactly one of t (a single time) and t_range (gamma, T)")
    if t is not None:
        t = check_real(t, "t", low=0.0, low_open=True)
        fixed = torch.tensor(t, dtype=ref.dtype, device=ref.device)
        return lambda n, gen: fixed
    if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
        raise TypeError("t_range must be a pair (gamma, T)")
    lo = check_real(t_range[0], "t_range[0]", low=0.0, low_open=True)
    hi = check_real(t_range[1], "t_range[1]", low=lo, low_open=True)
    log_lo, log_span = math.log(lo), math.log(hi) - math.log(lo)

    def draw(n: int, gen: torch.Generator) -> Tensor:
        u = torch.rand(n, generator=gen, dtype=ref.dtype, device=ref.device)
        return torch.exp(log_lo + log_span * u)

    return draw

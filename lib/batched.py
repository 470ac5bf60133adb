"""Many small score networks trained as one batched computation.

Sweeps over seeds, sample sizes and times train dozens of identical little MLPs. Looping
over them in Python pays the interpreter, the autograd graph and the optimiser step once
per model and per step; stacking their weights and running every layer as one batched
matrix product (``torch.baddbmm``) pays them once per step for all ``B`` models.

:class:`BatchedScoreMLP` holds ``B`` independent copies of :class:`lib.networks.ScoreMLP`
(same architecture, each its own weights); model ``b`` with ``seeds[b]`` starts from
exactly the weights of ``ScoreMLP(..., seed=seeds[b])``. :func:`train_batched` minimises,
for every model at once, the denoising score-matching objective (Vincent 2011, in the
form of Gupta et al. 2024)

    L_t(f_b) = (1/m_b) sum_i lambda(t) || f_b(a_t x_{b,i} + s_t z_{b,i}) + z_{b,i} / s_t ||^2

on that model's own samples ``x_{b,1..m_b}`` (sample sizes may differ), noise and time,
or the regression loss ``|| f_b(x_t) - s(x_t) ||^2`` on an exact score ``s`` (the "best
network of the class" of the error decomposition of Gaur et al. 2025). The total loss is
the sum of the per-model losses, so each model's gradient is its own loss's gradient, and
Adam, being elementwise, updates each model exactly as if it were alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._checks import (
    ScoreFn,
    as_tensor,
    call_score,
    check_bool,
    check_callable,
    check_choice,
    check_generator,
    check_int,
    check_real,
    check_seed,
)
from .dsm import WEIGHTINGS
from .mixtures import GaussianMixture
from .networks import PARAMETERIZATIONS, ScoreMLP, read_out, time_features
from .optim import adam
from .threads import small_work


class BatchedScoreMLP(nn.Module):
    """``B`` independent ReLU MLPs ``(x, t) -> f_b(x, t)`` in ``R^d`` with one architecture.

    Parameters are as for :class:`lib.networks.ScoreMLP`; ``seeds`` (one per model,
    default ``0, ..., B-1``) seed the initialisations so that model ``b`` equals
    ``ScoreMLP(d, width, hidden_layers, parameterization, seed=seeds[b])``. Layer ``l`` of
    all models is a stacked weight ``(B, n_in, n_out)`` and bias ``(B, 1, n_out)``.
    """

    def __init__(
        self,
        B: int,
        d: int,
        width: int = 64,
        hidden_layers: int = 2,
        parameterization: str = "noise",
        *,
        time_features: bool = True,
        seeds: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.B = check_int(B, "B")
        self.d = check_int(d, "d")
        self.width = check_int(width, "width")
        self.hidden_layers = check_int(hidden_layers, "hidden_layers")
        self.parameterization = check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        self.time_features = bool(time_features)
        seeds = list(range(self.B)) if seeds is None else list(seeds)
        if len(seeds) != self.B:
            raise ValueError(f"seeds must hold B = {self.B} integers, got {len(seeds)}")
        for s in seeds:
            check_int(s, "seeds[b]", low=0)
        singles = [self._single(seed=s, dtype=dtype, device=device) for s in seeds]
        linears = [[m for m in net.net if isinstance(m, nn.Linear)] for net in singles]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].weight.detach().T for lin in linears]).contiguous())
            for i in range(len(linears[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].bias.detach()[None, :] for lin in linears]).contiguous())
            for i in range(len(linears[0])))

    def _single(self, seed: int | None = None, dtype: torch.dtype | None = None,
                device: torch.device | str | None = None) -> ScoreMLP:
        ref = next(iter(self.parameters()), None)
        return ScoreMLP(self.d, self.width, self.hidden_layers, self.parameterization,
                        time_features=self.time_features, seed=seed,
                        dtype=dtype or ref.dtype, device=device or (ref.device if ref is not None else None))

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_models(cls, models: Sequence[ScoreMLP]) -> BatchedScoreMLP:
        """Stack existing :class:`ScoreMLP` networks (same architecture) into one batch."""
        if not models or not all(isinstance(m, ScoreMLP) for m in models):
            raise TypeError("models must be a non-empty sequence of lib.ScoreMLP")
        first = models[0]
        lin0 = [m for m in first.net if isinstance(m, nn.Linear)]
        width, hidden = lin0[0].out_features, len(lin0) - 1
        for net in models:
            lins = [m for m in net.net if isinstance(m, nn.Linear)]
            if (net.d, net.parameterization, net.time_features, len(lins), lins[0].out_features) != (
                    first.d, first.parameterization, first.time_features, len(lin0), width):
                raise ValueError("models must share d, width, hidden_layers, parameterization and time_features")
        out = cls(len(models), first.d, width, hidden, first.parameterization,
                  time_features=first.time_features, dtype=lin0[0].weight.dtype, device=lin0[0].weight.device)
        with torch.no_grad():
            for b, net in enumerate(models):
                lins = [m for m in net.net if isinstance(m, nn.Linear)]
                for i, lin in enumerate(lins):
                    out.weights[i][b].copy_(lin.weight.T)
                    out.biases[i][b, 0].copy_(lin.bias)
        return out

    def model(self, b: int) -> ScoreMLP:
        """A standalone :class:`ScoreMLP` copy of model ``b``."""
        b = check_int(b, "b", low=0, high=self.B - 1)
        net = self._single(seed=0)
        with torch.no_grad():
            lins = [m for m in net.net if isinstance(m, nn.Linear)]
            for i, lin in enumerate(lins):
                lin.weight.copy_(self.weights[i][b].T)
                lin.bias.copy_(self.biases[i][b, 0])
        return net

    def select(self, index: Sequence[int] | Tensor) -> BatchedScoreMLP:
        """A new batch holding copies of the models ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if idx.numel() == 0 or idx.min() < 0 or idx.max() >= self.B:
            raise ValueError(f"index must hold model numbers in [0, {self.B - 1}]")
        out = copy.deepcopy(self)
        out.B = idx.numel()
        with torch.no_grad():
            for i in range(len(self.weights)):
                out.weights[i] = nn.Parameter(self.weights[i][idx].clone())
                out.biases[i] = nn.Parameter(self.biases[i][idx].clone())
        return out

    def states(self) -> list[dict[str, Tensor]]:
        """One dict of weights per model (``w0, b0, w1, ...``; detached copies), e.g. to
        store finished runs one by one (:mod:`lib.sweeps`)."""
        return [{**{f"w{i}": w[b].detach().clone() for i, w in enumerate(self.weights)},
                 **{f"b{i}": c[b].detach().clone() for i, c in enumerate(self.biases)}} for b in range(self.B)]

    def load_states(self, states: Sequence[dict[str, Tensor]]) -> BatchedScoreMLP:
        """Overwrite the ``B`` models' weights with ``states`` (as :meth:`states` returns); returns ``self``."""
        if len(states) != self.B:
            raise ValueError(f"states must hold B = {self.B} dicts, got {len(states)}")
        with torch.no_grad():
            for b, st in enumerate(states):
                for i, (w, c) in enumerate(zip(self.weights, self.biases)):
                    if st[f"w{i}"].shape != w[b].shape or st[f"b{i}"].shape != c[b].shape:
                        raise ValueError(f"states[{b}] does not match this architecture at layer {i}")
                    w[b].copy_(st[f"w{i}"])
                    c[b].copy_(st[f"b{i}"])
        return self

    @property
    def n_params(self) -> int:
        """``P``: parameters of one model (all ``B`` models have the same count)."""
        return sum(p[0].numel() for p in self.parameters())

    @property
    def depth(self) -> int:
        """``D``: the number of linear layers of one model."""
        return len(self.weights)

    # ------------------------------------------------------------------ evaluation
    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Score estimates ``f_b(x_{b,i}, t_{b,i})``, shape ``(B, n, d)``.

        ``x`` has shape ``(B, n, d)`` (each model its own points) or ``(n, d)`` (the same
        points for every model); ``t`` is one time, one per model ``(B,)``, or one per
        point ``(B, n)``, all ``> 0`` (``>= 0`` for the ``"score"`` parameterization).
        """
        ref = self.weights[0]
        x = _batched_points(x, self.B, self.d, ref)
        t = _batched_times(t, self.B, x.shape[1], ref, allow_zero=self.parameterization == "score")
        return self._apply_checked(x, t)

    def evaluate(self, x: Tensor, t: Tensor) -> Tensor:
        """:meth:`forward` on ``x`` ``(B, n, d)`` and ``t`` ``(B, n)`` exactly, with the shapes checked
        but not the values (no data-dependent branch): for hot training loops and for
        ``torch.func`` transforms, whose callers guarantee ``t > 0`` themselves."""
        if not (isinstance(x, Tensor) and isinstance(t, Tensor)):
            raise TypeError("x and t must be tensors")
        if x.ndim != 3 or x.shape[0] != self.B or x.shape[2] != self.d or t.shape != x.shape[:2]:
            raise ValueError(f"x must have shape (B, n, d) = ({self.B}, n, {self.d}) and t shape (B, n), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        return self._apply_checked(x, t)

    def _apply_checked(self, x: Tensor, t: Tensor) -> Tensor:
        """The forward pass on validated ``x`` ``(B, n, d)`` and ``t`` ``(B, n)``."""
        return self._layers(list(self.weights), list(self.biases), x, t)

    def _flat_forward(self, theta: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """Private fast path: :meth:`forward` with the weights read from the flat vector ``theta``
        instead of the module, on ``x`` ``(B, n, d)`` and ``t`` ``(B, n)``, with NO checks.

        ``theta`` has the layout of ``torch.nn.utils.parameters_to_vector(self.parameters())``
        (every model's weights, then biases, layer by layer); the layers are views into it, so
        ``torch.autograd.grad(loss, theta)`` is the flat gradient. For optimisers over one
        parameter vector (:func:`lib.statistical.fit_best_in_class`): the checks of
        :meth:`forward` and the gathering of per-tensor gradients cost more than the
        evaluation itself for these small networks. Callers guarantee shapes, dtype and ``t > 0``.
        """
        views = self._unflatten(theta)
        n = len(self.weights)
        return self._layers(views[:n], views[n:], x, t)

    def _flat_squared_error(self, x: Tensor, t: Tensor, w: Tensor,
                            target: Tensor) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """Private fast path: a function of a flat parameter vector ``theta`` (the layout of
        :meth:`_flat_forward`) returning the weighted squared errors ``E_b = sum_i w_{b,i}
        ||f_b(x_{b,i}, t_{b,i}) - target_{b,i}||^2`` ``(B,)`` and the flat gradient of
        ``sum_b E_b``, with the backward pass written out (no autograd, NO checks).

        For the ReLU layers ``z_l = h_l W_l + b_l``, ``h_{l+1} = relu(z_l)`` and a read-out
        ``f = c_t g + c_0`` linear in the last layer's output ``g`` (:func:`read_out`), the
        output error ``delta = 2 w (f - target) c_t`` propagates as ``grad W_l = h_l^T delta``,
        ``grad b_l = sum_i delta``, ``delta <- (delta W_l^T) 1[h_l > 0]``. For optimisers that
        evaluate these small networks thousands of times (:func:`lib.statistical.fit_best_in_class`),
        autograd's graph and the per-call set-up cost as much as the arithmetic, so everything
        that does not depend on ``theta`` is computed once here. ``tests/test_batched.py``
        checks values and gradient against autograd through :meth:`forward`.
        """
        a, s2 = torch.exp(-t)[..., None], -torch.expm1(-2.0 * t)[..., None]
        h0 = torch.cat([x, time_features(a, s2)], dim=-1) if self.time_features else x
        slope = {"noise": -torch.rsqrt(s2), "mean": a / s2}.get(self.parameterization, 1.0)
        offset = read_out(torch.zeros_like(x), x, a, s2, self.parameterization, check=False)  # f at g = 0
        target, w2 = target - offset, 2.0 * w[..., None] * slope
        shapes = [(p.numel(), p.shape) for p in self.parameters()]
        n = len(self.weights)

        def value_and_grad(theta: Tensor) -> tuple[Tensor, Tensor]:
            views = [v.view(shape) for v, (_, shape) in zip(theta.split([k for k, _ in shapes]), shapes)]
            inputs, h = [], h0
            for i in range(n):
                inputs.append(h)
                h = torch.baddbmm(views[n + i], h, views[i])
                if i < n - 1:
                    h = torch.relu(h)
            residual = slope * h - target
            losses = (w * (residual ** 2).sum(-1)).sum(1)
            delta = w2 * residual
            grads_w, grads_b = [None] * n, [None] * n
            for i in range(n - 1, -1, -1):
                grads_w[i] = torch.bmm(inputs[i].transpose(1, 2), delta)
                grads_b[i] = delta.sum(1, keepdim=True)
                if i > 0:
                    delta = torch.bmm(delta, views[i].transpose(1, 2)) * (inputs[i] > 0)
            return losses, torch.cat([g.reshape(-1) for g in grads_w + grads_b])

        return value_and_grad

    def _unflatten(self, theta: Tensor) -> list[Tensor]:
        """A flat vector in the layout of ``parameters_to_vector(self.parameters())`` as views
        shaped like the parameters (weights, then biases)."""
        params = list(self.parameters())
        return [v.view_as(p) for v, p in zip(theta.split([p.numel() for p in params]), params)]

    def _layers(self, weights: list[Tensor], biases: list[Tensor], x: Tensor, t: Tensor) -> Tensor:
        """The network on ``x`` ``(B, n, d)``, ``t`` ``(B, n)`` with the given stacked layers."""
        a = torch.exp(-t)[..., None]
        s2 = -torch.expm1(-2.0 * t)[..., None]
        h = torch.cat([x, time_features(a, s2)], dim=-1) if self.time_features else x
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return read_out(h, x, a, s2, self.parameterization)


def _batched_points(x: object, B: int, d: int, ref: Tensor) -> Tensor:
    x = as_tensor(x, "x", dtype=ref.dtype, device=ref.device)
    if x.ndim == 2:
        x = x.expand(B, *x.shape)
    if x.ndim != 3 or x.shape[0] != B or x.shape[2] != d:
        raise ValueError(f"x must have shape (B, n, d) = ({B}, n, {d}) or (n, {d}), got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError("x must hold at least one point per model")
    return x


def _batched_times(t: object, B: int, n: int, ref: Tensor, *, allow_zero: bool = False,
                   name: str = "t") -> Tensor:
    """Times as a ``(B, n)`` tensor from a scalar, ``(B,)`` or ``(B, n)``."""
    t = as_tensor(t, name, dtype=ref.dtype, device=ref.device)
    if t.ndim == 0:
        t = t.expand(B, n)
    elif t.ndim == 1 and t.shape[0] == B:
        t = t[:, None].expand(B, n)
    elif not (t.ndim == 2 and t.shape == (B, n)):
        raise ValueError(f"{name} must be a scalar, shape (B,) = ({B},) or (B, n) = ({B}, {n}), got {tuple(t.shape)}")
    if (t < 0).any() or (not allow_zero and (t <= 0).any()):
        raise ValueError(f"{name} must be > 0 (s_t^2 = 1 - exp(-2t) vanishes at t = 0), got min {t.min().item():.3g}")
    return t


# ====================================================================== training
@dataclass
class BatchedTrainResult:
    """What :func:`train_batched` returns: the loss of every model at every step, shape
    ``(steps, B)``, and copies of the model at the requested ``snapshots`` steps."""

    losses: Tensor
    steps: int
    noise: str
    snapshots: dict[int, BatchedScoreMLP] = field(default_factory=dict)

    @property
    def final_loss(self) -> Tensor:
        """Per-model mean loss over the last tenth of the steps, shape ``(B,)``."""
        tail = max(1, self.steps // 10)
        return self.losses[-tail:].mean(0)


def pad_samples(samples: Sequence[Tensor], *, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Stack per-model sample sets of sizes ``m_b`` into ``(B, max m_b, d)`` (zero padded)
    and return it with the counts ``(B,)``, the form :func:`train_batched` takes."""
    if not isinstance(samples, (list, tuple)) or not samples:
        raise TypeError("samples must be a non-empty list of (m_b, d) tensors")
    xs = [as_tensor(s, f"samples[{b}]", dtype=dtype) for b, s in enumerate(samples)]
    d = xs[0].shape[-1] if xs[0].ndim == 2 else None
    for b, s in enumerate(xs):
        if s.ndim != 2 or s.shape[1] != d or s.shape[0] == 0:
            raise ValueError(f"samples[{b}] must have shape (m_b, {d}) with m_b >= 1, got {tuple(s.shape)}")
    counts = torch.tensor([s.shape[0] for s in xs])
    out = torch.zeros(len(xs), int(counts.max()), d, dtype=dtype)
    for b, s in enumerate(xs):
        out[b, : s.shape[0]] = s
    return out, counts


@small_work
def train_batched(
    model: BatchedScoreMLP,
    x0: Tensor,
    *,
    counts: Sequence[int] | Tensor | None = None,
    t: float | Sequence[float] | Tensor | None = None,
    t_range: tuple[float, float] | None = None,
    steps: int = 1000,
    lr: float = 1e-3,
    batch_size: int | None = None,
    noise: str = "fresh",
    weighting: str = "sigma2",
    seeds: int | Sequence[int] = 0,
    rng: str = "shared",
    target_score: ScoreFn | None = None,
    lr_schedule: str = "constant",
    snapshots: Sequence[int] = (),
    progress: bool = True,
) -> BatchedTrainResult:
    """Train all ``B`` models of ``model`` at once with Adam on their own data.

    ``x0`` is ``(B, m, d)`` (model ``b`` uses its first ``counts[b]`` rows; default all) or
    ``(m, d)`` (shared). Give one time ``t`` (a number, or one per model, shape ``(B,)``)
    or a range ``t_range = (gamma, T)`` (times log-uniform on it, as :func:`lib.dsm.train_dsm`).
    ``batch_size=None`` is full batch; model ``b`` uses ``min(batch_size, m_b)`` rows per step.
    ``noise="fixed"`` draws one ``(t_i, z_i)`` per sample up front (the empirical objective of
    Gupta et al. 2024), ``"fresh"`` redraws every step.

    ``rng="per_model"`` draws model ``b``'s minibatches and noise from its own generator
    seeded ``seeds[b]``, in the order :func:`lib.dsm.train_dsm` does: the batch then equals
    ``B`` separate ``train_dsm(model.model(b), x0_b, seed=seeds[b], ...)`` runs (to float
    rounding). ``rng="shared"`` (faster) draws everything for all models from one generator
    seeded ``seeds`` (an int), minibatches with replacement.

    ``target_score(x, t)`` (optional, e.g. ``mixture.score``) replaces the DSM target
    ``-z/s_t`` by the exact score at ``x_t``: plain regression on the score.
    ``lr_schedule="cosine"`` uses ``lr (1 + cos(pi k / steps)) / 2`` at step ``k`` (decays to 0).
    ``snapshots`` lists steps (1..steps) after which a copy of the model is kept.
    """
    if not isinstance(model, BatchedScoreMLP):
        raise TypeError(f"model must be a BatchedScoreMLP, got {type(model).__name__}")
    ref = model.weights[0]
    B, d = model.B, model.d
    x0 = as_tensor(x0, "x0", dtype=ref.dtype, device=ref.device)
    if x0.ndim == 2:
        x0 = x0.expand(B, *x0.shape)
    if x0.ndim != 3 or x0.shape[0] != B or x0.shape[2] != d or x0.shape[1] == 0:
        raise ValueError(f"x0 must have shape (B, m, d) = ({B}, m, {d}) or (m, {d}), got {tuple(x0.shape)}")
    m_max = x0.shape[1]
    if counts is None:
        counts_t = torch.full((B,), m_max, dtype=torch.long)
    else:
        counts_f = as_tensor(counts, "counts").reshape(-1)
        if counts_f.shape[0] != B or (counts_f != counts_f.round()).any() or (counts_f < 1).any() \
                or (counts_f > m_max).any():
            raise ValueError(f"counts must hold B = {B} integer sample sizes in [1, {m_max}]")
        counts_t = counts_f.long()
    steps = check_int(steps, "steps")
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    batch = m_max if batch_size is None else check_int(batch_size, "batch_size")
    check_choice(noise, "noise", ("fresh", "fixed"))
    check_choice(weighting, "weighting", WEIGHTINGS)
    check_choice(rng, "rng", ("shared", "per_model"))
    check_choice(lr_schedule, "lr_schedule", ("constant", "cosine"))
    if target_score is not None:
        check_callable(target_score, "target_score")
    check_bool(progress, "progress")
    snaps = sorted({check_int(k, "snapshots[i]", high=steps) for k in snapshots})
    draw_t = _time_sampler(t, t_range, B, ref)
    per_batch = torch.minimum(counts_t, torch.tensor(batch))  # rows per step, per model
    full = per_batch == counts_t
    nb = int(per_batch.max())
    cols = torch.arange(nb)
    valid = cols[None, :] < per_batch[:, None]  # (B, nb)
    wts = (valid.to(ref.dtype) / per_batch[:, None].to(ref.dtype)).to(ref.device)
    kw = dict(dtype=ref.dtype, device=ref.device)

    if rng == "per_model":
        seed_list = [seeds] * B if isinstance(seeds, int) else list(seeds)
        if len(seed_list) != B:
            raise ValueError(f"seeds must be an int or hold B = {B} integers")
        gens = [torch.Generator(device=ref.device).manual_seed(check_seed(s, "seeds[b]")) for s in seed_list]
    else:
        if not isinstance(seeds, int) or isinstance(seeds, bool):
            raise TypeError("seeds must be an int when rng='shared'")
        gen = torch.Generator(device=ref.device).manual_seed(check_seed(seeds, "seeds"))

    fixed_t = fixed_z = None
    if noise == "fixed":
        if rng == "per_model":
            fixed_t = torch.ones(B, m_max, **kw)  # padding rows get t = 1 (weight 0)
            fixed_z = torch.zeros(B, m_max, d, **kw)
            for b in range(B):
                m_b = int(counts_t[b])
                fixed_t[b, :m_b] = draw_t.one(b, m_b, gens[b])
                fixed_z[b, :m_b] = torch.randn(m_b, d, generator=gens[b], **kw)
        else:
            fixed_t = draw_t.all(m_max, gen)
            fixed_z = torch.randn(B, m_max, d, generator=gen, **kw)

    fixed_target = None
    if noise == "fixed" and target_score is not None:
        # the regression targets at the fixed points x_t, computed once
        fixed_target = _score_target(target_score, _noised(x0, fixed_t, fixed_z), fixed_t)

    opt = adam(list(model.parameters()), lr)
    losses = torch.empty(steps, B, dtype=torch.float64)
    out_snaps: dict[int, BatchedScoreMLP] = {}
    rows = torch.arange(B, device=ref.device)[:, None]
    base_idx = cols[None, :].expand(B, nb).clamp(max=m_max - 1).to(ref.device)
    counts_dev, full_dev = counts_t.to(**kw)[:, None], full.to(ref.device)[:, None]
    for step in tqdm(range(steps), desc="batched DSM training", disable=not progress, leave=False):
        if rng == "per_model":
            idx = base_idx.clone()
            tb = torch.ones(B, nb, **kw)
            zb = torch.zeros(B, nb, d, **kw)
            for b in range(B):
                k, m_b = int(per_batch[b]), int(counts_t[b])
                if not full[b]:
                    idx[b, :k] = torch.randperm(m_b, generator=gens[b], device=ref.device)[:k]
                if noise == "fresh":
                    tb[b, :k] = draw_t.one(b, k, gens[b])
                    zb[b, :k] = torch.randn(k, d, generator=gens[b], **kw)
        else:
            u = torch.rand(B, nb, generator=gen, **kw)
            rand_idx = (u * counts_dev).long().clamp(max=m_max - 1)
            idx = torch.where(full_dev, base_idx, rand_idx)
            if noise == "fresh":
                tb = draw_t.all(nb, gen)
                zb = torch.randn(B, nb, d, generator=gen, **kw)
        if noise == "fixed":
            tb, zb = fixed_t[rows, idx], fixed_z[rows, idx]
        xb = x0[rows, idx]
        xt = _noised(xb, tb, zb)
        if target_score is None:
            target = -zb / torch.sqrt(-torch.expm1(-2.0 * tb))[..., None]
        elif fixed_target is not None:
            target = fixed_target[rows, idx]
        else:
            target = _score_target(target_score, xt, tb)
        per_sample = ((model._apply_checked(xt, tb) - target) ** 2).sum(-1)
        if weighting == "sigma2":
            per_sample = per_sample * -torch.expm1(-2.0 * tb)
        loss_b = (per_sample * wts).sum(1)
        if not torch.isfinite(loss_b).all():
            raise ValueError(f"the loss became non-finite at step {step}; lower lr (now {lr:g})")
        opt.zero_grad(set_to_none=True)
        loss_b.sum().backward()
        if lr_schedule == "cosine":
            opt.param_groups[0]["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))
        opt.step()
        losses[step] = loss_b.detach()
        if step + 1 in snaps:
            out_snaps[step + 1] = copy.deepcopy(model)
    return BatchedTrainResult(losses=losses, steps=steps, noise=noise, snapshots=out_snaps)


def _noised(x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
    """``a_t x_0 + s_t z`` for ``(B, n, d)`` points and ``(B, n)`` times."""
    return torch.exp(-t)[..., None] * x0 + torch.sqrt(-torch.expm1(-2.0 * t))[..., None] * z


def _score_target(target_score: ScoreFn, xt: Tensor, t: Tensor) -> Tensor:
    """The exact score at ``xt`` ``(B, n, d)``, evaluated in float64 on the flattened points."""
    B, n, d = xt.shape
    x, tf = xt.reshape(B * n, d).double(), t.reshape(-1).double()
    uniq = torch.unique(tf)
    with torch.no_grad():
        if uniq.numel() <= B:  # one time per model: the (faster) single-time path per value
            target = torch.empty_like(x)
            for u in uniq:
                rows = tf == u
                target[rows] = call_score(target_score, x[rows], float(u), "target_score")
        else:
            target = call_score(target_score, x, tf, "target_score")
    return target.reshape(B, n, d).to(xt.dtype)


class _TimeDraw:
    """Times for training: fixed per model, or log-uniform on ``[gamma, T]``."""

    def __init__(self, fixed: Tensor | None, log_lo: float, log_span: float, B: int, ref: Tensor):
        self.fixed, self.log_lo, self.log_span, self.B = fixed, log_lo, log_span, B
        self.kw = dict(dtype=ref.dtype, device=ref.device)

    def one(self, b: int, n: int, gen: torch.Generator) -> Tensor:
        """``n`` times for model ``b`` (consumes ``gen`` exactly as train_dsm does)."""
        if self.fixed is not None:
            return self.fixed[b].expand(n)
        return torch.exp(self.log_lo + self.log_span * torch.rand(n, generator=gen, **self.kw))

    def all(self, n: int, gen: torch.Generator) -> Tensor:
        if self.fixed is not None:
            return self.fixed[:, None].expand(self.B, n)
        return torch.exp(self.log_lo + self.log_span * torch.rand(self.B, n, generator=gen, **self.kw))


def _time_sampler(t: object, t_range: tuple[float, float] | None, B: int, ref: Tensor) -> _TimeDraw:
    if (t is None) == (t_range is None):
        raise ValueError("give exactly one of t (one time, or one per model) and t_range (gamma, T)")
    if t is not None:
        tt = as_tensor(t, "t", dtype=ref.dtype, device=ref.device).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(B)
        if tt.numel() != B or (tt <= 0).any():
            raise ValueError(f"t must be one time > 0 or B = {B} times > 0")
        return _TimeDraw(tt.contiguous(), 0.0, 0.0, B, ref)
    if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
        raise TypeError("t_range must be a pair (gamma, T)")
    lo = check_real(t_range[0], "t_range[0]", low=0.0, low_open=True)
    hi = check_real(t_range[1], "t_range[1]", low=lo, low_open=True)
    return _TimeDraw(None, math.log(lo), math.log(hi) - math.log(lo), B, ref)


# ====================================================================== evaluation
def batched_score_errors(
    model: BatchedScoreMLP,
    mixture: GaussianMixture,
    t: float | Sequence[float] | Tensor,
    n: int = 20_000,
    *,
    reference: BatchedScoreMLP | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pointwise errors ``||f_b(x) - g_b(x)||`` at ``n`` draws ``x ~ q_t`` per model, shape ``(B, n)``.

    ``g_b`` is the exact score ``grad log q_t`` of ``mixture``, or model ``b`` of
    ``reference`` (another batch of the same size: e.g. the best network of the class, to
    measure a statistical error). ``t`` is one time or one per model ``(B,)``, ``> 0``.
    With the same ``generator`` state, two calls use the same points, so errors against
    different references are comparable point by point (Minkowski's inequality holds exactly).
    """
    if not isinstance(model, BatchedScoreMLP):
        raise TypeError(f"model must be a BatchedScoreMLP, got {type(model).__name__}")
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if reference is not None and (not isinstance(reference, BatchedScoreMLP) or reference.B != model.B):
        raise TypeError(f"reference must be None or a BatchedScoreMLP with B = {model.B} models")
    if mixture.d != model.d:
        raise ValueError(f"mixture has d = {mixture.d} but model has d = {model.d}")
    n = check_int(n, "n")
    check_generator(generator)
    B = model.B
    tt = as_tensor(t, "t", dtype=torch.float64, device=mixture.device).reshape(-1)
    if tt.numel() == 1:
        tt = tt.expand(B)
    if tt.numel() != B or (tt <= 0).any():
        raise ValueError(f"t must be one time > 0 or B = {B} times > 0")
    x0 = mixture.sample(B * n, generator=generator).reshape(B, n, model.d)
    z = torch.randn(B, n, model.d, generator=generator, dtype=torch.float64, device=x0.device)
    a, s = torch.exp(-tt)[:, None, None], torch.sqrt(-torch.expm1(-2.0 * tt))[:, None, None]
    x = a * x0 + s * z
    with torch.no_grad():
        f = model(x, tt).double()
        if reference is None:
            g = mixture.score(x.reshape(B * n, -1), tt[:, None].expand(B, n).reshape(-1)).reshape(B, n, -1)
        else:
            g = reference(x, tt).double()
    return (f - g).norm(dim=-1)


def mean_and_stderr(values: Tensor) -> tuple[Tensor, Tensor]:
    """Row means of ``values`` ``(B, n)`` and their Monte-Carlo standard errors, each ``(B,)``."""
    v = as_tensor(values, "values")
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"values must have shape (B, n) with n >= 2, got {tuple(v.shape)}")
    return v.mean(1), v.std(1, unbiased=True) / math.sqrt(v.shape[1])

"""Transfer learning of conditional score models through a shared representation of the condition.

The setting of Cheng, Xie, Zhang and Zhang (NeurIPS 2025): a task is a joint law
``P_k(x, y)``; the conditional score is modelled as ``s(x, y, t) = f_k(x, h(y), t)``, where the
*encoder* ``h`` maps the condition ``y in R^{D_y}`` to ``R^{d'}`` and is shared by all tasks,
and the *head* ``f_k`` is a score network of task ``k``. Pre-training fits ``K`` source heads
and one encoder on ``n`` pairs per source; fine-tuning freezes the encoder and fits a new head
on ``m`` target pairs; the baseline trains a head and an encoder from scratch on the ``m`` pairs.
Every phase minimises the conditional DSM objective

    E_t [ s_t^2 || f(a_t x + s_t z, h(y), t) + z / s_t ||^2 ],   t log-uniform on [gamma, T],

whose minimiser is the conditional score ``grad_x log q_t(x | y)``.

The synthetic task family (:class:`LinearInverseTask`) has an exact conditional score: the prior
is a Gaussian mixture in ``R^{d_x}`` with diagonal covariances, and ``y = G x + sigma eps`` with
``G`` having orthonormal columns, so ``w = G^T y = x + sigma G^T eps`` is sufficient (``h*(y) = G^T y``,
``d_y = d_x``). The pair ``(x_t, w)`` is then a Gaussian mixture in ``R^{2 d_x}`` and
``grad_x log q_t(x | y) = grad_x log q_t(x, w)`` is read off :class:`lib.mixtures.GaussianMixture`.

Networks: the encoders and heads of ``R`` independent runs are batched as in :mod:`lib.batched`.
A head is a :class:`lib.batched.BatchedScoreMLP` on the joined input ``(x, h(y))`` whose score
outputs for the ``h`` coordinates are dropped; an MLP encoder is a ``BatchedScoreMLP`` without
time input and with the identity read-out, of which the first ``d'`` outputs are used.

Used in: chap-transfer.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._checks import as_tensor, check_choice, check_generator, check_int, check_real
from .batched import BatchedScoreMLP
from .mixtures import GaussianMixture
from .optim import adam
from .sampling import sample as _sample

# ====================================================================== the task family


def orthonormal_columns(D: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """A ``(D, d)`` matrix with orthonormal columns (QR of a Gaussian matrix), float64."""
    D, d = check_int(D, "D"), check_int(d, "d", high=D)
    check_generator(generator)
    q, r = torch.linalg.qr(torch.randn(D, d, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # unique sign convention


@dataclass(frozen=True)
class LinearInverseTask:
    """The joint law ``x ~ prior``, ``y = G x + noise_sd * eps`` with ``G^T G = I``.

    ``prior`` must have diagonal covariances (per component). The exact posterior
    ``p(x | y)`` depends on ``y`` through ``w = G^T y`` only (Cheng et al. 2025, Assumption 3.1
    with ``h*(y) = G^T y``).
    """

    prior: GaussianMixture
    G: Tensor
    noise_sd: float

    def __post_init__(self) -> None:
        if not isinstance(self.prior, GaussianMixture):
            raise TypeError(f"prior must be a GaussianMixture, got {type(self.prior).__name__}")
        cov = self.prior.covariances
        var = torch.diagonal(cov, dim1=-2, dim2=-1)
        if (cov - torch.diag_embed(var)).abs().max() > 1e-12 * var.max():
            raise ValueError("prior must have diagonal covariances")
        object.__setattr__(self, "_var", var.clone())  # (J, d_x): the diagonals S_j
        G = as_tensor(self.G, "G")
        if G.ndim != 2 or G.shape[1] != self.prior.d:
            raise ValueError(f"G must have shape (D_y, {self.prior.d}), got {tuple(G.shape)}")
        if (G.T @ G - torch.eye(G.shape[1], dtype=G.dtype)).abs().max() > 1e-8:
            raise ValueError("G must have orthonormal columns (G^T G = I)")
        object.__setattr__(self, "G", G)
        check_real(self.noise_sd, "noise_sd", low=0.0, low_open=True)

    @property
    def d_x(self) -> int:
        return self.prior.d

    @property
    def D_y(self) -> int:
        return self.G.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(x, y)``, shapes ``(n, d_x)`` and ``(n, D_y)``, float64."""
        x = self.prior.sample(n, generator=generator)
        eps = torch.randn(n, self.D_y, generator=generator, dtype=torch.float64)
        return x, x @ self.G.T + self.noise_sd * eps

    def sufficient(self, y: Tensor) -> Tensor:
        """``h*(y) = G^T y``, shape ``(n, d_x)``."""
        return as_tensor(y, "y") @ self.G

    def posterior(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The exact posterior ``p(x | y) = sum_j pi'_j N(m'_j, S'_j)`` for each row of ``y``.

        With prior components ``N(m_j, S_j)`` (diagonal) and ``w = G^T y``:
        ``S'_j = (S_j^{-1} + I / sigma^2)^{-1}``, ``m'_j = S'_j (S_j^{-1} m_j + w / sigma^2)`` and
        ``pi'_j ∝ pi_j N(w; m_j, S_j + sigma^2 I)``. Returns weights ``(n, J)``, means
        ``(n, J, d_x)`` and the diagonal covariances ``(J, d_x)``.
        """
        w = self.sufficient(y)
        S, m, v = self._var, self.prior.means, self.noise_sd**2
        post_var = 1.0 / (1.0 / S + 1.0 / v)
        means = post_var * (m / S + w[:, None, :] / v)
        marg = S + v
        log_w = torch.log(self.prior.weights) - 0.5 * (((w[:, None, :] - m) ** 2) / marg + torch.log(marg)).sum(-1)
        return torch.softmax(log_w, dim=-1), means, post_var

    def posterior_mean(self, y: Tensor) -> Tensor:
        """``E[x | y]``, shape ``(n, d_x)``."""
        weights, means, _ = self.posterior(y)
        return (weights[..., None] * means).sum(1)

    def joint_at(self, t: float, U: Tensor | None = None) -> GaussianMixture:
        """The law of ``(x_t, U^T w)``: component ``j`` has mean ``(a m_j, U^T m_j)`` and covariance
        ``[[a^2 S_j + s^2 I, a S_j U], [a U^T S_j, U^T (S_j + sigma^2 I) U]]``; ``U`` ``(d_x, k)`` of rank
        ``k`` (default the identity: the law of ``(x_t, w)`` in ``R^{2 d_x}``)."""
        t = check_real(t, "t", low=0.0)
        a, s2 = math.exp(-t), -math.expm1(-2.0 * t)
        S, m = self._var, self.prior.means
        U = torch.eye(self.d_x, dtype=m.dtype) if U is None else _check_projection(U, self.d_x)
        SU = S[:, :, None] * U  # (J, d_x, k): S_j U
        top = torch.cat([torch.diag_embed(a * a * S + s2), a * SU], dim=-1)
        bottom = torch.cat([a * SU.transpose(1, 2), U.T @ SU + self.noise_sd**2 * U.T @ U], dim=-1)
        return GaussianMixture(self.prior.weights, torch.cat([a * m, m @ U], dim=-1), torch.cat([top, bottom], dim=-2))

    def score(self, x: Tensor, y: Tensor, t: float) -> Tensor:
        """The exact conditional score ``grad_x log q_t(x | y) = grad_x log q_t(x, w)`` at one time ``t``."""
        x = as_tensor(x, "x")
        w = self.sufficient(y)
        if x.ndim != 2 or x.shape != w.shape:
            raise ValueError(f"x must have shape (n, {self.d_x}) with one row per row of y, got {tuple(x.shape)}")
        return self.joint_at(t).score(torch.cat([x, w], dim=-1))[:, : self.d_x]


def _check_projection(U: object, d: int) -> Tensor:
    U = as_tensor(U, "U")
    if U.ndim != 2 or U.shape[0] != d or not 1 <= U.shape[1] <= d:
        raise ValueError(f"U must have shape ({d}, k) with 1 <= k <= {d}, got {tuple(U.shape)}")
    if torch.linalg.matrix_rank(U) < U.shape[1]:
        raise ValueError("U must have full column rank")
    return U


def circle_prior(radius: float, n_components: int = 3, variance: float | Sequence[float] = 0.15,
                 generator: torch.Generator | None = None) -> GaussianMixture:
    """``(1/J) sum_j N(m_j, diag(variance))`` with means at uniform random angles on a circle in ``R^2``."""
    radius = check_real(radius, "radius", low=0.0, low_open=True)
    J = check_int(n_components, "n_components")
    check_generator(generator)
    angle = 2 * math.pi * torch.rand(J, generator=generator, dtype=torch.float64)
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    return _diag_mixture(means, variance)


def axis_prior(half_width: float, n_components: int = 3, variance: Sequence[float] = (0.15, 0.003),
               generator: torch.Generator | None = None) -> GaussianMixture:
    """Means uniform on ``[-half_width, half_width]`` along the first axis, a thin spread along the
    second: a source family that carries almost no information about ``x_2`` given ``y``."""
    half_width = check_real(half_width, "half_width", low=0.0, low_open=True)
    J = check_int(n_components, "n_components")
    check_generator(generator)
    u = half_width * (2 * torch.rand(J, generator=generator, dtype=torch.float64) - 1)
    return _diag_mixture(torch.stack([u, torch.zeros_like(u)], dim=-1), variance)


def _diag_mixture(means: Tensor, variance: float | Sequence[float]) -> GaussianMixture:
    J, d = means.shape
    var = as_tensor(variance, "variance").reshape(-1).expand(d)
    if (var <= 0).any():
        raise ValueError("variance must be > 0")
    return GaussianMixture(torch.full((J,), 1.0 / J, dtype=torch.float64), means, var.expand(J, d).clone())


def sample_tasks(tasks: Sequence[LinearInverseTask], n: int,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` pairs from each task, stacked: ``x`` ``(K, n, d_x)``, ``y`` ``(K, n, D_y)``."""
    if not tasks or not all(isinstance(k, LinearInverseTask) for k in tasks):
        raise TypeError("tasks must be a non-empty sequence of LinearInverseTask")
    pairs = [task.sample(n, generator) for task in tasks]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


# ====================================================================== the network


class SharedEncoderScore(nn.Module):
    """``R`` independent runs of the model ``s_k(x, y, t) = f_k(x, h(y), t)``, ``K`` heads per run.

    Parameters
    ----------
    runs, heads : ``R`` and ``K``.
    d_x, D_y, d_rep : the dimensions of ``x``, of the condition ``y`` and of ``h(y)`` (``d'``).
    encoder_width : ``None`` for a linear encoder ``h(y) = W y + b``; otherwise the width of a
        one-hidden-layer ReLU encoder.
    head_width, head_layers, parameterization : of each head (:class:`lib.networks.ScoreMLP`).
    seeds : one per run (default ``0..R-1``); run ``r`` is initialised from ``seeds[r]`` alone,
        so a batch of runs equals the same runs built one at a time.
    rep_dims : optional, one ``d'_r <= d_rep`` per run: run ``r`` uses only the first ``d'_r``
        encoder outputs (the rest are set to zero), so encoders of several sizes share a batch.
    """

    def __init__(self, runs: int, heads: int, d_x: int, D_y: int, d_rep: int, *,
                 encoder_width: int | None = None, head_width: int = 64, head_layers: int = 2,
                 parameterization: str = "noise", seeds: Sequence[int] | None = None,
                 rep_dims: Sequence[int] | None = None) -> None:
        super().__init__()
        self.R, self.K = check_int(runs, "runs"), check_int(heads, "heads")
        self.d_x, self.D_y = check_int(d_x, "d_x"), check_int(D_y, "D_y")
        self.d_rep = check_int(d_rep, "d_rep", high=D_y)
        seeds = list(range(self.R)) if seeds is None else [check_int(s, "seeds[r]", low=0) for s in seeds]
        if len(seeds) != self.R:
            raise ValueError(f"seeds must hold runs = {self.R} integers, got {len(seeds)}")
        self.seeds = seeds
        self.encoder_width = None if encoder_width is None else check_int(encoder_width, "encoder_width")
        self.encoder = self._make_encoder(seeds)
        self.heads = BatchedScoreMLP(self.R * self.K, self.d_x + self.d_rep, head_width, head_layers,
                                     parameterization, seeds=[1000 * s + k for s in seeds for k in range(self.K)])
        dims = [self.d_rep] * self.R if rep_dims is None else [check_int(v, "rep_dims[r]", high=self.d_rep)
                                                                for v in rep_dims]
        if len(dims) != self.R:
            raise ValueError(f"rep_dims must hold runs = {self.R} integers, got {len(dims)}")
        mask = torch.arange(self.d_rep)[None, :] < torch.tensor(dims)[:, None]
        self.register_buffer("rep_mask", mask.float()[:, None, :], persistent=False)

    def _make_encoder(self, seeds: list[int]) -> nn.Module:
        if self.encoder_width is not None:
            return BatchedScoreMLP(self.R, self.D_y, self.encoder_width, 1, "score", time_features=False,
                                   seeds=[1000 * s + 999 for s in seeds])
        bound = 1.0 / math.sqrt(self.D_y)  # nn.Linear's initialisation
        w = torch.empty(self.R, self.D_y, self.d_rep)
        b = torch.empty(self.R, 1, self.d_rep)
        for r, s in enumerate(seeds):
            g = torch.Generator().manual_seed(1000 * s + 999)
            w[r].uniform_(-bound, bound, generator=g)
            b[r].uniform_(-bound, bound, generator=g)
        return nn.ParameterDict({"weight": nn.Parameter(w), "bias": nn.Parameter(b)})

    @property
    def device(self) -> torch.device:
        """Where the parameters live (``model.to("cuda")`` moves them; inputs follow the model)."""
        return self.rep_mask.device

    def encode(self, y: Tensor) -> Tensor:
        """``h_r(y)`` for the runs' conditions ``y`` ``(R, n, D_y)``; shape ``(R, n, d')``."""
        y = as_tensor(y, "y", dtype=self.rep_mask.dtype, device=self.device)
        if y.ndim != 3 or y.shape[0] != self.R or y.shape[2] != self.D_y:
            raise ValueError(f"y must have shape (R, n, D_y) = ({self.R}, n, {self.D_y}), got {tuple(y.shape)}")
        return self._encode(y)

    def _encode(self, y: Tensor) -> Tensor:
        """:meth:`encode` on a validated ``y`` (the training loop's hot path)."""
        if self.encoder_width is None:
            h = torch.baddbmm(self.encoder["bias"], y, self.encoder["weight"])
        else:
            h = self.encoder.evaluate(y, y.new_ones(y.shape[:2]))[..., : self.d_rep]
        return h * self.rep_mask

    def score(self, x: Tensor, features: Tensor, t: Tensor | float) -> Tensor:
        """``f_{r,k}(x, h, t)`` for points ``x`` ``(R, K, n, d_x)``, features ``(R, K, n, d')`` (or
        ``(R, n, d')``, shared by the heads) and times (a number or ``(R, K, n)``); shape of ``x``."""
        R, K = self.R, self.K
        if x.ndim != 4 or x.shape[:2] != (R, K) or x.shape[3] != self.d_x:
            raise ValueError(f"x must have shape (R, K, n, d_x) = ({R}, {K}, n, {self.d_x}), got {tuple(x.shape)}")
        n = x.shape[2]
        if features.ndim == 3:
            features = features[:, None].expand(R, K, n, self.d_rep)
        if features.shape != (R, K, n, self.d_rep):
            raise ValueError(f"features must have shape ({R}, {K}, {n}, {self.d_rep}), got {tuple(features.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if (t <= 0).any() or not (t.ndim == 0 or t.shape == (R, K, n)):
            raise ValueError(f"t must be a time > 0 or shape ({R}, {K}, {n}) of times > 0")
        return self._score(x, features.to(x.dtype), t.expand(R, K, n))

    def _score(self, x: Tensor, features: Tensor, t: Tensor) -> Tensor:
        """:meth:`score` on validated ``(R, K, n, .)`` inputs and ``(R, K, n)`` times (hot path)."""
        R, K, n = x.shape[:3]
        joined = torch.cat([x, features], dim=-1).reshape(R * K, n, -1)
        out = self.heads.evaluate(joined, t.reshape(R * K, n))
        return out[..., : self.d_x].reshape(R, K, n, self.d_x)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def with_new_heads(self, runs: Sequence[int], heads: int = 1, seeds: Sequence[int] | None = None,
                       rep_dims: Sequence[int] | None = None) -> SharedEncoderScore:
        """A model whose run ``i`` has a copy of this model's encoder ``runs[i]`` and ``heads`` fresh heads."""
        idx = [check_int(r, "runs[i]", low=0, high=self.R - 1) for r in runs]
        seeds = [10_000 + i for i in range(len(idx))] if seeds is None else list(seeds)
        dims = rep_dims if rep_dims is not None else self.rep_mask[idx, 0].sum(-1).long().tolist()
        out = SharedEncoderScore(len(idx), heads, self.d_x, self.D_y, self.d_rep,
                                 encoder_width=self.encoder_width, head_width=self.heads.width,
                                 head_layers=self.heads.hidden_layers,
                                 parameterization=self.heads.parameterization, seeds=seeds, rep_dims=dims
                                 ).to(self.device)  # initialised on the CPU (the same heads on every device)
        with torch.no_grad():
            for dst, src in zip(out.encoder_parameters(), self.encoder_parameters()):
                dst.copy_(src[idx])
        return out


def pick_runs(models: Sequence[SharedEncoderScore], choice: Sequence[int] | Tensor,
              runs: Sequence[int] | None = None) -> SharedEncoderScore:
    """A model whose run ``i`` is run ``runs[i]`` (default ``i``) of ``models[choice[i]]``: e.g. each
    run at its own early-stopping checkpoint, from the ``snapshots`` of :func:`fit`. The models must
    be checkpoints of one batch (same runs, heads and sizes); encoder and heads are copied."""
    models = list(models)
    if not models or not all(isinstance(m, SharedEncoderScore) for m in models):
        raise TypeError("models must be a non-empty sequence of SharedEncoderScore")
    first = models[0]
    names = [n for n, _ in first.named_parameters()]
    shapes = [p.shape for p in first.parameters()]
    if any([n for n, _ in m.named_parameters()] != names or [p.shape for p in m.parameters()] != shapes
           for m in models):
        raise ValueError("models must be checkpoints of one batch (the same parameters and shapes)")
    choice = [check_int(c, "choice[i]", low=0, high=len(models) - 1) for c in torch.as_tensor(choice).tolist()]
    runs = list(range(len(choice))) if runs is None else [check_int(r, "runs[i]", low=0, high=first.R - 1)
                                                          for r in runs]
    if len(runs) != len(choice):
        raise ValueError(f"runs and choice must have the same length, got {len(runs)} and {len(choice)}")
    K = first.K
    out = first.with_new_heads(runs, heads=K, seeds=[first.seeds[r] for r in runs])
    rows = {"encoder": (torch.tensor(runs), torch.tensor(choice)),  # encoder parameters: one row per run
            "heads": (torch.tensor([r * K + k for r in runs for k in range(K)]),
                      torch.tensor(choice).repeat_interleave(K))}
    with torch.no_grad():
        for name, dst in out.named_parameters():
            idx, which = rows[name.split(".")[0]]
            src = torch.stack([dict(m.named_parameters())[name] for m in models])  # (checkpoints, rows, ...)
            dst.copy_(src[which, idx])
    return out


# ====================================================================== training


@dataclass
class TransferTrainResult:
    """Per-run training losses, shape ``(steps, R)``, and copies of the model after the requested
    ``snapshots`` steps (step -> model)."""

    losses: Tensor
    snapshots: dict[int, SharedEncoderScore] = field(default_factory=dict)

    @property
    def final_loss(self) -> Tensor:
        tail = max(1, self.losses.shape[0] // 10)
        return self.losses[-tail:].mean(0)


def fit(model: SharedEncoderScore, x: Tensor, y: Tensor | None = None, *, features: Tensor | None = None,
        counts: Tensor | None = None, steps: int = 1000, lr: float = 3e-3, batch_size: int | None = None,
        t_range: tuple[float, float] = (0.01, 2.0), seeds: Sequence[int] | None = None,
        snapshots: Sequence[int] = (), progress: bool = True) -> TransferTrainResult:
    """Minimise the conditional DSM objective (module docstring) for every run of ``model`` at once.

    ``x`` is ``(R, K, n, d_x)``: run ``r``'s pairs for its ``K`` heads (head ``k`` uses its first
    ``counts[r, k]`` rows; a count of 0 switches the head off). Give the conditions ``y``
    ``(R, K, n, D_y)`` to train encoder and heads jointly (pre-training; from scratch), or
    ``features`` ``(R, K, n, d')`` to train the heads alone on a frozen representation
    (fine-tuning: the features are computed once, the encoder is not touched). A run's loss is the
    mean over its active heads of each head's mean over its minibatch of ``min(batch_size, count)``
    rows. Adam (torch defaults) with the cosine schedule ``lr (1 + cos(pi k / steps)) / 2``;
    run ``r`` draws minibatches, times and noise from its own generator seeded ``seeds[r]``, so a
    batch of runs trains each run as if it were alone (Adam is elementwise). ``snapshots`` lists
    steps (1..steps) after which a copy of the model is kept (checkpoints of the one run, for
    early stopping: the schedule is still the one of ``steps``).
    """
    if not isinstance(model, SharedEncoderScore):
        raise TypeError(f"model must be a SharedEncoderScore, got {type(model).__name__}")
    if (y is None) == (features is None):
        raise ValueError("give exactly one of y (train the encoder too) and features (frozen encoder)")
    R, K, dtype, dev = model.R, model.K, model.rep_mask.dtype, model.device
    x = _check_stack(x, "x", R, K, model.d_x, dtype, device=dev)
    cond = _check_stack(y if y is not None else features, "y" if y is not None else "features", R, K,
                        model.D_y if y is not None else model.d_rep, dtype, n=x.shape[2], device=dev)
    n = x.shape[2]
    counts = torch.full((R, K), n) if counts is None else torch.as_tensor(counts).long()
    if counts.shape != (R, K) or (counts < 0).any() or (counts > n).any() or (counts.sum(1) == 0).any():
        raise ValueError(f"counts must have shape ({R}, {K}) with entries in [0, {n}] and a positive sum per run")
    steps = check_int(steps, "steps")
    snaps = {check_int(k, "snapshots[i]", high=steps) for k in snapshots}
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    b = n if batch_size is None else check_int(batch_size, "batch_size")
    lo = check_real(t_range[0], "t_range[0]", low=0.0, low_open=True)
    hi = check_real(t_range[1], "t_range[1]", low=lo, low_open=True)
    seeds = list(range(R)) if seeds is None else list(seeds)
    if len(seeds) != R:
        raise ValueError(f"seeds must hold R = {R} integers")
    # CPU generators on every device: a run draws the same minibatches, times and noise on CPU and CUDA
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    per = torch.minimum(counts, torch.tensor(b))  # rows per step per head
    nb = int(per.max())
    full = (per == counts)[..., None].to(dev)
    w = (torch.arange(nb) < per[..., None]).to(dtype) / per.clamp_min(1)[..., None].to(dtype)
    w = (w / (counts > 0).sum(1)[:, None, None].to(dtype)).to(dev)  # mean over the run's active heads
    frozen = y is None
    params = list(model.heads.parameters()) + ([] if frozen else model.encoder_parameters())
    opt = adam(params, lr)  # torch's Adam, fused kernel
    base = torch.arange(nb, device=dev).expand(R, K, nb).clamp(max=n - 1)
    rr, kk = torch.arange(R, device=dev)[:, None, None], torch.arange(K, device=dev)[None, :, None]
    counts_f = counts[..., None].to(dtype=dtype, device=dev)
    losses = torch.empty(steps, R, dtype=torch.float64)
    kept: dict[int, SharedEncoderScore] = {}
    for step in tqdm(range(steps), desc="conditional DSM", disable=not progress, leave=False):
        u, logt, z = (v.to(dev) for v in _draws(gens, K, nb, model.d_x, dtype))
        idx = torch.where(full, base, (u * counts_f).long().clamp(max=n - 1))
        t = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * logt)
        s = torch.sqrt(-torch.expm1(-2.0 * t))[..., None]
        xt = torch.exp(-t)[..., None] * x[rr, kk, idx] + s * z
        if frozen:
            feats = cond[rr, kk, idx]
        else:
            feats = model._encode(cond[rr, kk, idx].reshape(R, K * nb, -1)).reshape(R, K, nb, -1)
        per_sample = ((s * model._score(xt, feats, t) + z) ** 2).sum(-1)  # s_t^2 |f + z/s_t|^2
        loss = (per_sample * w).sum((1, 2))
        if not torch.isfinite(loss).all():
            raise ValueError(f"the loss became non-finite at step {step}; lower lr (now {lr:g})")
        for group in opt.param_groups:
            group["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        losses[step] = loss.detach()
        if step + 1 in snaps:
            kept[step + 1] = copy.deepcopy(model)
    return TransferTrainResult(losses, kept)


def _draws(gens: list[torch.Generator], K: int, nb: int, d: int, dtype: torch.dtype):
    """Each run's minibatch positions, log-time fractions and noise from its own generator."""
    u = torch.stack([torch.rand(K, nb, generator=g, dtype=dtype) for g in gens])
    v = torch.stack([torch.rand(K, nb, generator=g, dtype=dtype) for g in gens])
    z = torch.stack([torch.randn(K, nb, d, generator=g, dtype=dtype) for g in gens])
    return u, v, z


def _check_stack(v: object, name: str, R: int, K: int, d: int, dtype: torch.dtype, n: int | None = None,
                 device: torch.device | None = None) -> Tensor:
    v = as_tensor(v, name, dtype=dtype, device=device)
    if v.ndim == 3:  # shared by all runs
        v = v.expand(R, *v.shape)
    if v.ndim != 4 or v.shape[:2] != (R, K) or v.shape[3] != d or v.shape[2] == 0 or (n and v.shape[2] != n):
        want = f"({R}, {K}, {n or 'n'}, {d})"
        raise ValueError(f"{name} must have shape (R, K, n, d) = {want}, got {tuple(v.shape)}")
    return v


# ====================================================================== evaluation


def log_time_grid(n: int, t_range: tuple[float, float] = (0.01, 2.0)) -> Tensor:
    """Midpoints of ``n`` equal cells of ``[log gamma, log T]``: the quadrature nodes of
    ``E_t`` for ``t`` log-uniform (equal weights ``1/n``)."""
    n = check_int(n, "n")
    lo = check_real(t_range[0], "t_range[0]", low=0.0, low_open=True)
    hi = check_real(t_range[1], "t_range[1]", low=lo, low_open=True)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)


@dataclass(frozen=True)
class ScoreTestSet:
    """Test points shared by every arm: ``x_t`` ``(T, N, d_x)`` at the grid times ``t`` ``(T,)``,
    their conditions ``y`` ``(N, D_y)`` and the exact conditional scores ``(T, N, d_x)``."""

    times: Tensor
    y: Tensor
    xt: Tensor
    exact: Tensor


def score_test_set(task: LinearInverseTask, n: int, n_times: int = 12, t_range: tuple[float, float] = (0.01, 2.0),
                   generator: torch.Generator | None = None) -> ScoreTestSet:
    """``n`` test pairs of ``task``, noised at each of ``n_times`` grid times with the same draws."""
    if not isinstance(task, LinearInverseTask):
        raise TypeError(f"task must be a LinearInverseTask, got {type(task).__name__}")
    x0, y = task.sample(check_int(n, "n"), generator)
    times = log_time_grid(n_times, t_range)
    z = torch.randn(n, task.d_x, generator=generator, dtype=torch.float64)
    xt = torch.stack([math.exp(-t) * x0 + math.sqrt(-math.expm1(-2 * t)) * z for t in times.tolist()])
    exact = torch.stack([task.score(xt[i], y, t) for i, t in enumerate(times.tolist())])
    return ScoreTestSet(times, y, xt, exact)


def excess_score_error(model: SharedEncoderScore, test: ScoreTestSet, features: Tensor | None = None,
                       head: int = 0) -> Tensor:
    """``E_t E s_t^2 ||f(x_t, h(y), t) - grad log q_t(x_t | y)||^2`` per run, shape ``(R,)``: the excess
    of the weighted conditional DSM objective over its minimum (up to the weighting of the times,
    the quantity Theorem 3.4 of Cheng et al. bounds). ``features`` ``(R, N, d')`` replaces the
    model's own encoder (e.g. ``h*``)."""
    if not isinstance(test, ScoreTestSet):
        raise TypeError("test must be a ScoreTestSet")
    head = check_int(head, "head", low=0, high=model.K - 1)
    R, (T, N, d) = model.R, test.xt.shape
    kw = dict(dtype=model.rep_mask.dtype, device=model.device)
    with torch.no_grad():
        h = model.encode(test.y.expand(R, N, -1)) if features is None else as_tensor(features, "features", **kw)
        x = test.xt.to(**kw).permute(1, 0, 2).reshape(1, 1, N * T, d).expand(R, model.K, N * T, d)
        t = test.times.to(**kw).repeat(N).expand(R, model.K, N * T)
        feats = h.repeat_interleave(T, dim=1)[:, None].expand(R, model.K, N * T, -1)
        f = model.score(x, feats, t)[:, head].cpu().double().reshape(R, N, T, d)
    exact = test.exact.permute(1, 0, 2)
    s2 = -torch.expm1(-2.0 * test.times)[None, None, :]
    return (s2 * ((f - exact) ** 2).sum(-1)).mean((1, 2))


def zero_score_error(test: ScoreTestSet) -> float:
    """The same error for the zero predictor ``f = 0``: ``E_t E s_t^2 ||grad log q_t(x_t | y)||^2``."""
    s2 = -torch.expm1(-2.0 * test.times)[:, None]
    return float((s2 * (test.exact**2).sum(-1)).mean())


def representation_floor(task: LinearInverseTask, test: ScoreTestSet, U: Tensor) -> Tensor:
    """Per test pair, ``E_t s_t^2 ||grad_x log q_t(x_t | U^T w) - grad_x log q_t(x_t | y)||^2`` over the
    test set's times, shape ``(N,)``: the excess error of the best score that sees ``y`` only through
    ``U^T G^T y`` (``U`` ``(d_x, k)``). The best such score is ``E[grad log q_t(x_t | y) | x_t, U^T w]
    = grad_x log q_t(x_t | U^T w)``, so by Pythagoras no head on a ``k``-dimensional linear encoder
    (``v^T y`` adds to ``U^T w`` only noise independent of ``x``) does better in expectation: the floor
    of the representation dimension (Cheng et al. 2025, the approximation term of Theorem 3.4)."""
    if not isinstance(task, LinearInverseTask):
        raise TypeError(f"task must be a LinearInverseTask, got {type(task).__name__}")
    if not isinstance(test, ScoreTestSet):
        raise TypeError("test must be a ScoreTestSet")
    U = _check_projection(U, task.d_x)
    r = task.sufficient(test.y) @ U
    out = torch.zeros(test.y.shape[0], dtype=torch.float64)
    for i, t in enumerate(test.times.tolist()):  # one mixture per time; all points at once
        proj = task.joint_at(t, U).score(torch.cat([test.xt[i], r], dim=-1))[:, : task.d_x]
        out += -math.expm1(-2.0 * t) * ((proj - test.exact[i]) ** 2).sum(-1)
    return out / test.times.shape[0]


def mean_se(values: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Mean over ``dim`` (the seeds) and its standard error ``sd / sqrt(n)``."""
    v = as_tensor(values, "values")
    n = v.shape[dim]
    if n < 2:
        raise ValueError(f"values need at least 2 entries along dim {dim} for a standard error, got {n}")
    return v.mean(dim), v.std(dim) / math.sqrt(n)


# ====================================================================== sampling and real data


@torch.no_grad()
def sample_conditional(model: SharedEncoderScore, y: Tensor, per_condition: int, *, head: int = 0,
                       process: str = "ode", n_steps: int = 60, T: float = 5.0, gamma: float = 0.01,
                       generator: torch.Generator | None = None) -> Tensor:
    """Draws from every run's model of ``p(x | y)``: ``per_condition`` draws for each row of ``y``
    ``(N, D_y)`` (or ``(R, N, D_y)``), shape ``(R, N, per_condition, d_x)``. Each ``y`` is encoded once;
    the reverse SDE or probability-flow ODE is :func:`lib.sampling.sample`. The default stopping time
    ``gamma = 0.01`` is the smallest time :func:`fit` trains on: below it the network extrapolates."""
    S = check_int(per_condition, "per_condition")
    head = check_int(head, "head", low=0, high=model.K - 1)
    check_choice(process, "process", ("sde", "ode"))
    y = as_tensor(y, "y", dtype=model.rep_mask.dtype, device=model.device)
    if y.ndim == 2:
        y = y.expand(model.R, *y.shape)
    R, N = model.R, y.shape[1]
    feats = model.encode(y).repeat_interleave(S, dim=1)[:, None].expand(R, model.K, N * S, -1)

    def score_fn(xf: Tensor, t: Tensor) -> Tensor:
        x = xf.reshape(R, 1, N * S, model.d_x).expand(R, model.K, N * S, model.d_x).to(feats.dtype)
        return model.score(x, feats, float(t))[:, head].reshape(-1, model.d_x).double()

    out = _sample(score_fn, R * N * S, model.d_x, T=T, gamma=gamma, n_steps=n_steps, process=process,
                  generator=generator, device=model.device)
    return out.reshape(R, N, S, model.d_x)


@dataclass(frozen=True)
class DigitTasks:
    """8x8 digits in ``[-1, 1]^64`` with noisy observations ``y = x + noise_sd * eps``: source pairs
    ``(9, n, 64)`` for digits 1-9, a target pool ``(pool, 64)`` of zeros and held-out test zeros."""

    source_x: Tensor
    source_y: Tensor
    pool_x: Tensor
    pool_y: Tensor
    test_x: Tensor
    test_y: Tensor
    noise_sd: float


def load_digit_tasks(noise_sd: float = 1.0, pool: int = 100, target: int = 0,
                     generator: torch.Generator | None = None) -> DigitTasks:
    """scikit-learn's bundled ``load_digits`` (no download) as a transfer problem: sources are the
    other nine digits (``n`` = the smallest class size, 174), the target digit's images are split
    (in random order) into a pool of ``pool`` and a test set of the rest. Pixels ``v / 8 - 1``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # the digits are an optional extra
        raise ImportError("load_digit_tasks needs scikit-learn: pip install 'learning-the-score[digits]'") from err
    noise_sd = check_real(noise_sd, "noise_sd", low=0.0, low_open=True)
    target = check_int(target, "target", low=0, high=9)
    check_generator(generator)
    data = load_digits()
    x_all = torch.as_tensor(data.data, dtype=torch.float32) / 8.0 - 1.0
    labels = torch.as_tensor(data.target)
    by_digit = {k: x_all[labels == k] for k in range(10)}
    pool = check_int(pool, "pool", high=by_digit[target].shape[0] - 2)
    n = min(v.shape[0] for k, v in by_digit.items() if k != target)
    src = torch.stack([by_digit[k][torch.randperm(by_digit[k].shape[0], generator=generator)[:n]]
                       for k in range(10) if k != target])
    tgt = by_digit[target][torch.randperm(by_digit[target].shape[0], generator=generator)]

    def observe(v: Tensor) -> Tensor:
        return v + noise_sd * torch.randn(v.shape, generator=generator)

    return DigitTasks(src, observe(src), tgt[:pool], observe(tgt[:pool]), tgt[pool:], observe(tgt[pool:]), noise_sd)


def heldout_dsm(model: SharedEncoderScore, x: Tensor, y: Tensor | None = None, n_times: int = 12,
                t_range: tuple[float, float] = (0.01, 2.0), generator: torch.Generator | None = None,
                counts: Sequence[int] | Tensor | None = None, features: Tensor | None = None) -> Tensor:
    """The weighted conditional DSM objective of head 0 on held-out pairs, per run; ``(R,)``:
    ``E_t E |s_t f(x_t, h(y), t) + z|^2`` with ``x_t = e^{-t} x + s_t z`` at the grid times, one noise
    draw per pair and time shared by all runs (so runs compare by paired differences).
    ``x``, ``y`` are ``(N, d_x)``, ``(N, D_y)`` (shared by the runs) or ``(R, N, .)`` (each run its
    own pairs, of which run ``r`` uses the first ``counts[r]``). ``features`` ``(R, N, d')`` replaces
    the model's own encoder (a frozen representation, e.g. fine-tuned heads; ``y`` is then unused and
    may be ``None``). On real data the minimum is unknown: compare runs by differences."""
    kw = dict(dtype=torch.float32, device=model.device)
    x = as_tensor(x, "x", **kw)
    R = model.R
    if features is not None:
        h0 = as_tensor(features, "features", **kw)
        if h0.shape != (R, x.shape[-2], model.d_rep):
            raise ValueError(f"features must have shape (R, N, d') = ({R}, {x.shape[-2]}, {model.d_rep}), "
                             f"got {tuple(h0.shape)}")
        y = x.new_zeros(*x.shape[:-1], model.D_y)  # unused: only its shape is checked
    y = as_tensor(y, "y", **kw)
    if x.ndim == 2:
        x, y = x.expand(R, -1, -1), y.expand(R, -1, -1)
    if x.ndim != 3 or x.shape[0] != R or y.shape[:2] != x.shape[:2] or x.shape[2] != model.d_x:
        raise ValueError(f"x, y must have shapes (N, d_x), (N, D_y) or (R = {R}, N, .), got "
                         f"{tuple(x.shape)}, {tuple(y.shape)}")
    N, d = x.shape[1], x.shape[2]
    c = torch.full((R,), N) if counts is None else torch.as_tensor(counts).long().reshape(-1)
    if c.shape != (R,) or (c < 1).any() or (c > N).any():
        raise ValueError(f"counts must hold R = {R} integers in [1, {N}]")
    times = log_time_grid(check_int(n_times, "n_times"), t_range).to(**kw)
    T = times.shape[0]
    z = torch.randn(T, N, d, generator=generator).to(**kw)  # drawn on the CPU: the same draws on every device
    s = torch.sqrt(-torch.expm1(-2 * times))[None, :, None, None]
    xt = torch.exp(-times)[None, :, None, None] * x[:, None] + s * z  # (R, T, N, d)
    with torch.no_grad():
        h = (model.encode(y) if features is None else h0).repeat(1, T, 1)[:, None].expand(R, model.K, T * N, -1)
        tt = times.repeat_interleave(N).expand(R, model.K, T * N)
        f = model.score(xt.reshape(R, 1, T * N, d).expand(R, model.K, T * N, d), h, tt)[:, 0].reshape(R, T, N, d)
    per_pair = ((s * f + z) ** 2).sum(-1).mean(1)  # (R, N)
    w = (torch.arange(N)[None, :] < c[:, None]).float()
    return (per_pair.cpu() * w).sum(1) / c.float()

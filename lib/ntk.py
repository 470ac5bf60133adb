"""Score estimation in the neural-tangent-kernel (NTK) regime.

Han, Razaviyayn and Xu (ICLR 2024) read denoising score matching as regression with noisy
labels: with the read-out ``s = (a_t f - x) / s_t^2`` the DSM loss at time ``t`` equals
``(a_t^2 / s_t^4) E||f(x_t) - x_0||^2``, so ``f`` regresses the label ``x_0`` on ``x_t``;
the target is ``E[x_0 | x_t]`` and the label noise is ``MMSE(t) = E||x_0 - E[x_0 | x_t]||^2``.
Wide networks trained by gradient descent follow kernel regression with the NTK (Jacot et
al. 2018; Du et al. 2019), and early stopping controls the label noise (Yao, Rosasco and
Caponnetto 2007; Raskutti, Wainwright and Yu 2014).

The analysable model of the chapter: ``f(u) = h^{-1/2} sum_r v_r relu(w_r . u)`` with input
``u = (x, t, 1)``, ``w_r ~ N(0, I)`` trained, ``v_r in {-1, +1}^d`` fixed, units initialised
in pairs ``(w, v), (w, -v)`` so that ``f_0 = 0``. Its NTK is
``(u . u') (1/h) sum_r v_r v_r^T 1[w_r . u > 0] 1[w_r . u' > 0]``, which tends to
``Theta(u, u') I_d`` with ``Theta = (u . u') (pi - theta) / (2 pi)`` as ``h -> infinity``.

Used in: chap-ntk (every experiment).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checks import (
    DEFAULT_DTYPE,
    as_points,
    as_tensor,
    as_times,
    check_choice,
    check_generator,
    check_int,
    check_real,
)
from .metrics import Estimate
from .mixtures import GaussianMixture
from .networks import ScoreMLP, read_out, time_features

TRAINED = ("first", "both")


# --------------------------------------------------------------------- inputs and kernels
def ntk_inputs(x: object, t: object) -> Tensor:
    """The network input ``u = (x, t, 1)``, shape ``(n, d + 2)``; ``t`` is one time or one per row."""
    x = as_points(x, "x")
    t = as_times(t, n=x.shape[0], dtype=x.dtype, device=x.device)
    t = t.expand(x.shape[0]) if t.ndim == 0 else t
    return torch.cat([x, t[:, None], torch.ones_like(t)[:, None]], dim=-1)


def relu_ntk(u: object, u2: object | None = None, *, trained: str = "first") -> Tensor:
    """The infinite-width NTK of the two-layer ReLU network, per output coordinate.

    With ``cos theta = u . u' / (|u| |u'|)`` (Du et al. 2019, the ``H^infinity`` matrix; the
    degree-0 arc-cosine kernel of Cho and Saul 2009 times ``u . u'``):

    * ``trained="first"`` (output layer fixed): ``Theta = (u . u') (pi - theta) / (2 pi)``;
    * ``trained="both"``: adds ``|u| |u'| (sin theta + (pi - theta) cos theta) / (2 pi)``,
      the degree-1 arc-cosine kernel's share from the output layer.

    Returns the ``(n, n2)`` matrix; the vector-valued NTK is this times ``I_d``.
    """
    u = as_points(u, "u")
    same = u2 is None
    u2 = u if same else as_points(u2, "u2", u.shape[1], dtype=u.dtype)
    check_choice(trained, "trained", TRAINED)
    dot = u @ u2.T
    norms = u.norm(dim=1)[:, None] * u2.norm(dim=1)[None, :]
    if (norms == 0).any():
        raise ValueError("u and u2 must have no zero rows (the angle is undefined)")
    cos = (dot / norms).clamp(-1.0, 1.0)
    if same:  # a point's angle with itself is 0; arccos would turn cos's round-off into ~1e-8
        cos.diagonal().fill_(1.0)
    theta = torch.arccos(cos)
    kernel = dot * (math.pi - theta) / (2 * math.pi)
    if trained == "both":
        kernel = kernel + norms * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    return kernel


def relu_ntk_variance(u: object) -> Tensor:
    """``Var[(u . u') 1[w . u > 0] 1[w . u' > 0]] = (u . u')^2 p (1 - p)`` with
    ``p = (pi - theta) / (2 pi)``, ``w ~ N(0, I)``: one unit's share of the finite-width
    NTK's fluctuation. With ``h / 2`` independent pairs, ``E||K_h - K||_F^2`` is
    ``(2 / h)`` times the sum of this matrix's entries."""
    u = as_points(u, "u")
    dot = u @ u.T
    p = relu_ntk(u) / dot.where(dot != 0, torch.ones_like(dot))
    return dot**2 * p * (1 - p)


# --------------------------------------------------------------------- the two-layer model
@dataclass
class TwoLayer:
    """A batch of ``S`` two-layer ReLU networks ``f(u) = h^{-1/2} sum_r v_r relu(w_r . u)``.

    ``W`` has shape ``(S, h, p)`` (trained), ``V`` shape ``(S, h, d)`` with entries ``+-1``
    (fixed). Build one with :func:`two_layer`.
    """

    W: Tensor
    V: Tensor

    @property
    def width(self) -> int:
        return self.W.shape[1]

    def clone(self) -> TwoLayer:
        return TwoLayer(self.W.clone(), self.V.clone())


def two_layer(seeds: int, width: int, p: int, d: int = 1, *, generator: torch.Generator | None = None,
              dtype: torch.dtype = DEFAULT_DTYPE, device: torch.device | str | None = None) -> TwoLayer:
    """``seeds`` networks of even ``width`` on inputs in ``R^p`` with outputs in ``R^d``,
    initialised antisymmetrically: unit ``r + h/2`` copies ``w_r`` and negates ``v_r``, so ``f_0 = 0``
    (up to round-off)."""
    seeds = check_int(seeds, "seeds")
    width = check_int(width, "width", low=2)
    if width % 2 or width >= 2**24:
        raise ValueError(f"width must be even (units come in antisymmetric pairs) and < 2^24, got {width}")
    p, d = check_int(p, "p"), check_int(d, "d")
    check_generator(generator)
    kw = dict(generator=generator, dtype=dtype, device=device)
    half = width // 2
    W = torch.randn(seeds, half, p, **kw)
    V = torch.randint(0, 2, (seeds, half, d), generator=generator, device=device).to(dtype) * 2 - 1
    return TwoLayer(torch.cat([W, W], 1), torch.cat([V, -V], 1))


def _check_model(model: object) -> TwoLayer:
    if not isinstance(model, TwoLayer):
        raise TypeError(f"model must be a TwoLayer (see lib.ntk.two_layer), got {type(model).__name__}")
    return model


def _check_inputs(u: object, model: TwoLayer, name: str = "u") -> Tensor:
    return as_points(u, name, model.W.shape[2], dtype=model.W.dtype, device=model.W.device)


def two_layer_forward(model: TwoLayer, u: object) -> Tensor:
    """``f(u) = h^{-1/2} relu(u W^T) V`` for every network: shape ``(S, n, d)``."""
    model = _check_model(model)
    u = _check_inputs(u, model)
    return torch.relu(u @ model.W.transpose(1, 2)) @ model.V / math.sqrt(model.width)


def two_layer_ntk(model: TwoLayer, u: object, u2: object | None = None, *, full: bool = False) -> Tensor:
    """The finite-width NTK of each network (first layer trained), as one batched product.

    ``full=False``: the diagonal block ``(u . u') (D D'^T) / h``, shape ``(S, n, n2)``, with
    ``D = 1[u W^T > 0]`` the activation patterns (every diagonal block is this, as ``v_rj^2 = 1``).
    ``full=True``: the whole vector NTK ``(u . u') (Phi Phi'^T) / h`` with
    ``Phi[(i, j), r] = D_ir v_rj``, shape ``(S, n d, n2 d)`` (row ``i d + j``).
    """
    model = _check_model(model)
    u = _check_inputs(u, model)
    u2 = u if u2 is None else _check_inputs(u2, model, "u2")
    # 0/1 patterns and their integer inner products (< 2^24) are exact in float32: half the work
    D = (u @ model.W.transpose(1, 2) > 0).float()
    D2 = D if u2 is u else (u2 @ model.W.transpose(1, 2) > 0).float()
    if not full:
        return (u @ u2.T) * (D @ D2.transpose(1, 2)).to(u.dtype) / model.width
    S, n, h = D.shape
    d = model.V.shape[2]
    # Phi = D (x) V as a (S, n d, h) matrix: a 5-operand einsum is far slower than one bmm
    signs = model.V.transpose(1, 2)[:, None].float()
    phi = (D[:, :, None, :] * signs).reshape(S, n * d, h)
    phi2 = phi if u2 is u else (D2[:, :, None, :] * signs).reshape(S, -1, h)
    dots = torch.repeat_interleave(torch.repeat_interleave(u @ u2.T, d, 0), d, 1)
    return dots * (phi @ phi2.transpose(1, 2)).to(u.dtype) / model.width


@dataclass(frozen=True)
class GDRun:
    """Gradient descent on ``(1/2n) sum_i ||f(u_i) - y_i||^2``: predictions at the recorded
    steps (``(len(steps), S, n_eval, d)``), the training loss at every step (``(steps + 1, S)``,
    as ``(1/n) sum ||f - y||^2``) and the final networks."""

    steps: Tensor
    predictions: Tensor
    train_error: Tensor
    model: TwoLayer


def train_two_layer(model: TwoLayer, u: object, y: object, *, steps: int, lr: float,
                    u_eval: object | None = None, record: object | None = None,
                    progress: bool = False) -> GDRun:
    """Full-batch GD on the first layer of every network at once, with the hand-derived gradient

    ``grad_W = (1 / (n sqrt(h))) [((f - y) V^T) * D]^T u``

    of ``(1/2n) sum_i ||f(u_i) - y_i||^2`` (three matrix products a step; the model of Han et
    al. 2024 trains the first layer with the output layer fixed). Predictions at ``u_eval``
    (default: the training inputs) are kept at the step counts in ``record`` (default: all).
    """
    model = _check_model(model).clone()
    u = _check_inputs(u, model)
    d = model.V.shape[2]
    y = as_points(y, "y", d, dtype=u.dtype, device=u.device)
    if y.shape[0] != u.shape[0]:
        raise ValueError(f"y must have one row per input ({u.shape[0]}), got {y.shape[0]}")
    steps = check_int(steps, "steps", low=0)
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    u_eval = u if u_eval is None else _check_inputs(u_eval, model, "u_eval")
    record = torch.arange(steps + 1) if record is None else as_tensor(record, "record").long()
    if record.ndim != 1 or (record < 0).any() or (record > steps).any():
        raise ValueError(f"record must be step counts in [0, {steps}]")
    keep = set(record.tolist())
    n, scale = u.shape[0], 1.0 / math.sqrt(model.width)
    W, V = model.W, model.V
    Vt = V.transpose(1, 2)  # (S, d, h)
    preds, losses = {}, []
    for k in tqdm(range(steps + 1), desc="GD, two-layer", disable=not progress, leave=False):
        pre = u @ W.transpose(1, 2)  # (S, n, h)
        out = torch.relu(pre) @ V * scale
        resid = out - y
        losses.append((resid**2).sum(-1).mean(-1))
        if k in keep:  # on the training inputs the forward pass is already done
            preds[k] = out if u_eval is u else torch.relu(u_eval @ W.transpose(1, 2)) @ V * scale
        if k == steps:
            break
        # d = 1: the (n, h) back-propagated signal is an outer product; broadcasting beats a bmm
        back = resid * Vt if d == 1 else resid @ Vt
        grad = back.masked_fill_(pre <= 0, 0.0).transpose(1, 2) @ u
        W = W - (lr * scale / n) * grad
    out = torch.stack([preds[int(k)] for k in record])
    return GDRun(record, out, torch.stack(losses), TwoLayer(W, V))


# --------------------------------------------------------------------- generic empirical NTK
def score_mlp_function(net: ScoreMLP) -> tuple[Callable[..., Tensor], dict[str, Tensor]]:
    """A functional form ``fn(params, x, t)`` of a :class:`ScoreMLP` and its parameters.

    ``ScoreMLP.forward`` checks its inputs with data-dependent branches, which ``torch.func.vmap``
    cannot trace; this form computes the same ``f(x, t)`` (time features, MLP, read-out)
    without them, for rows ``x`` of shape ``(n, d)`` and times ``t`` of shape ``(n,)``. Times
    below :func:`lib.networks.mean_min_time` are therefore not refused here.
    """
    if not isinstance(net, ScoreMLP):
        raise TypeError(f"net must be a ScoreMLP, got {type(net).__name__}")
    params = {k: v.detach() for k, v in net.net.named_parameters()}

    def fn(p: dict[str, Tensor], x: Tensor, t: Tensor) -> Tensor:
        a, s2 = torch.exp(-t)[:, None], -torch.expm1(-2.0 * t)[:, None]
        inputs = torch.cat([x, time_features(a, s2)], dim=-1) if net.time_features else x
        g = torch.func.functional_call(net.net, p, (inputs,))
        return read_out(g, x, a, s2, net.parameterization, check=False)

    return fn, params


def two_layer_function(model: TwoLayer, seed: int = 0) -> tuple[Callable[..., Tensor], dict[str, Tensor]]:
    """Network ``seed`` of a :class:`TwoLayer` batch as ``fn({"W": W}, x, t)``, input ``(x, t, 1)``."""
    model = _check_model(model)
    seed = check_int(seed, "seed", low=0, high=model.W.shape[0] - 1)
    V, scale = model.V[seed], 1.0 / math.sqrt(model.width)

    def fn(p: dict[str, Tensor], x: Tensor, t: Tensor) -> Tensor:
        u = torch.cat([x, t[:, None], torch.ones_like(t)[:, None]], dim=-1)
        return torch.relu(u @ p["W"].T) @ V * scale

    return fn, {"W": model.W[seed].clone()}


def empirical_ntk(fn: Callable[..., Tensor], params: dict[str, Tensor], x: object, t: object,
                  x2: object | None = None, t2: object | None = None) -> Tensor:
    """The empirical NTK ``J(x) J(x')^T`` of ``fn(params, x, t)`` (Jacot et al. 2018), shape
    ``(n d, n2 d)`` with row ``i d + j`` for output ``j`` at point ``i``.

    The per-point Jacobians come from ``torch.func.vmap(torch.func.jacrev(...))`` over the
    points, then one product: no Python loop over points or outputs.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict name -> tensor")
    ref = next(iter(params.values()))
    J = _jacobian(fn, params, *_points_and_times(x, t, ref))
    J2 = J if x2 is None else _jacobian(fn, params, *_points_and_times(x2, t2, ref, "x2", "t2"))
    return J @ J2.T


def _points_and_times(x, t, ref, xname="x", tname="t") -> tuple[Tensor, Tensor]:
    x = as_points(x, xname, dtype=ref.dtype, device=ref.device)
    t = as_times(t, tname, n=x.shape[0], dtype=ref.dtype, device=ref.device)
    return x, t.expand(x.shape[0]) if t.ndim == 0 else t


def _jacobian(fn, params, x: Tensor, t: Tensor) -> Tensor:
    def one(p, xi, ti):
        return fn(p, xi[None], ti[None])[0]

    jac = torch.func.vmap(torch.func.jacrev(one), in_dims=(None, 0, 0))(params, x, t)
    n, d = x.shape[0], next(iter(jac.values())).shape[1]
    return torch.cat([j.reshape(n * d, -1) for j in jac.values()], dim=1)


def autograd_ntk(fn: Callable[..., Tensor], params: dict[str, Tensor], x: object, t: object) -> Tensor:
    """The same NTK as :func:`empirical_ntk` from a Python loop of ``torch.autograd.grad`` over
    points and outputs: what one writes without ``torch.func``. Kept as the reference."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict name -> tensor")
    ref = next(iter(params.values()))
    x, t = _points_and_times(x, t, ref)
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    rows = []
    for i in range(x.shape[0]):
        out = fn(leaves, x[i : i + 1], t[i : i + 1])[0]
        for j in range(out.shape[0]):
            grads = torch.autograd.grad(out[j], list(leaves.values()), retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    J = torch.stack(rows)
    return J @ J.T


# --------------------------------------------------------------------- kernel gradient descent
class KernelGD:
    """Kernel gradient descent ``f_{k+1} = f_k - (eta / n) K (f_k - y)`` from ``f_0 = 0``, for
    every step count at once (Yao, Rosasco and Caponnetto 2007).

    With ``K / n = V diag(l) V^T``, ``f_k(x) = (1/n) K(x, X) V diag(phi_k(l)) V^T y`` where
    ``phi_k(l) = (1 - (1 - eta l)^k) / l = -expm1(k log1p(-eta l)) / l``, which tends to ``eta k``
    as ``l -> 0`` and to ``1 / l`` as ``k -> infinity`` (the interpolant ``K(x, X) K^{-1} y``).
    Round-off negative eigenvalues are clamped to 0; no division by a small ``l`` is done.
    ``eta`` must lie in ``(0, 1 / l_max]``, so that every factor ``1 - eta l`` is in ``[0, 1)``;
    the default is ``1 / l_max``. Step counts may be ``inf``.
    """

    def __init__(self, K: object, y: object, lr: float | None = None) -> None:
        K = as_tensor(K, "K")
        if K.ndim != 2 or K.shape[0] != K.shape[1]:
            raise ValueError(f"K must be a square (n, n) matrix, got {tuple(K.shape)}")
        if (K - K.T).abs().max() > 1e-8 * K.abs().max():
            raise ValueError("K must be symmetric")
        y = as_tensor(y, "y", dtype=K.dtype)
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2 or y.shape[0] != K.shape[0]:
            raise ValueError(f"y must have shape (n,) or (n, d) with n = {K.shape[0]}, got {tuple(y.shape)}")
        self.n = K.shape[0]
        evals, self.vecs = torch.linalg.eigh(K / self.n)
        self.evals = evals.clamp_min(0.0)
        lmax = float(self.evals[-1])
        if lmax <= 0:
            raise ValueError("K must have a positive eigenvalue")
        self.lr = 1.0 / lmax if lr is None else check_real(lr, "lr", low=0.0, low_open=True)
        if self.lr * lmax > 1 + 1e-12:
            raise ValueError(f"lr must lie in (0, 1 / l_max] = (0, {1 / lmax:.4g}] for K / n, got {self.lr:.4g}")
        self.coef = self.vecs.T @ y  # (n, d): y in the eigenbasis

    def _log_keep(self, steps: object) -> tuple[Tensor, Tensor]:
        """Step counts ``k`` and ``k log(1 - eta l_i)`` (shape ``(len(steps), n)``); 0 where ``l = 0``."""
        k = _step_counts(steps)
        el = (self.lr * self.evals).clamp(max=1.0 - 1e-15)  # eta l = 1 would give 0 * log(0)
        log_q = torch.log1p(-el)[None]
        return k, torch.where(log_q == 0, torch.zeros_like(log_q), k[:, None] * log_q)

    def shrinkage(self, steps: object) -> Tensor:
        """``phi_k(l_i)`` for each step count (shape ``(len(steps), n)``)."""
        k, log_keep = self._log_keep(steps)
        decay = -torch.expm1(log_keep)  # 1 - (1 - eta l)^k, accurate when eta l k is small
        safe = self.evals.where(self.evals > 0, torch.ones_like(self.evals))
        # on the null space phi = eta k; k = inf gives the minimum-norm limit (0 there)
        null = torch.where(torch.isinf(k), torch.zeros_like(k), self.lr * k)[:, None]
        return torch.where(self.evals > 0, decay / safe, null)

    def predict(self, steps: object, K_eval: object | None = None) -> Tensor:
        """Predictions after each step count at the training points (``K_eval=None``) or at the
        points whose kernel rows against the training points are ``K_eval`` (``(m, n)``):
        shape ``(len(steps), m, d)``."""
        phi = self.shrinkage(steps)
        weights = self.vecs @ (phi[:, :, None] * self.coef[None]) / self.n  # (k, n, d)
        if K_eval is None:
            return (self.vecs * self.evals) @ (self.vecs.T @ weights) * self.n
        K_eval = as_tensor(K_eval, "K_eval", dtype=self.vecs.dtype)
        if K_eval.ndim != 2 or K_eval.shape[1] != self.n:
            raise ValueError(f"K_eval must have shape (m, {self.n}), got {tuple(K_eval.shape)}")
        return K_eval @ weights

    def train_error(self, steps: object) -> Tensor:
        """``(1/n) sum_i ||f_k(x_i) - y_i||^2 = (1/n) sum_i (1 - eta l_i)^{2k} ||(V^T y)_i||^2``."""
        _, log_keep = self._log_keep(steps)
        return torch.exp(2 * log_keep) @ (self.coef**2).sum(-1) / self.n


    def dof(self, steps: object) -> Tensor:
        """Effective degrees of freedom ``tr S_k = sum_i (1 - (1 - eta l_i)^k)`` of the fitted
        values ``f_k(X) = S_k y`` after each step count."""
        _, log_keep = self._log_keep(steps)
        return -torch.expm1(log_keep).sum(-1)

    def risk_estimate(self, steps: object, noise: float) -> Tensor:
        """Mallows' C_p (1973), an unbiased estimate of the in-sample error
        ``(1/n) sum_i ||f_k(x_i) - f*(x_i)||^2`` up to a constant when the label noise has total
        variance ``noise`` at every point: ``train_error(k) + 2 noise tr(S_k) / n - noise``."""
        noise = check_real(noise, "noise", low=0.0)
        return self.train_error(steps) + noise * (2 * self.dof(steps) / self.n - 1)


def _step_counts(steps: object) -> Tensor:
    """Step counts as a 1-D float64 tensor of values ``>= 0`` (``inf`` allowed)."""
    if isinstance(steps, Tensor):
        k = steps.to(torch.float64)
    elif isinstance(steps, (int, float)) and not isinstance(steps, bool):
        k = torch.tensor([float(steps)], dtype=torch.float64)
    else:
        try:
            k = torch.as_tensor(steps, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            kind = type(steps).__name__
            raise TypeError(f"steps must be a number or a 1-D sequence of step counts, got {kind}") from err
    k = k[None] if k.ndim == 0 else k
    if k.ndim != 1 or torch.isnan(k).any() or (k < 0).any():
        raise ValueError("steps must be a 1-D sequence of step counts >= 0 (inf allowed)")
    return k


def interpolant(K: object, y: object, K_eval: object) -> Tensor:
    """The minimum-norm kernel interpolant ``K(x, X) K^{-1} y`` (least squares, float64)."""
    K = as_tensor(K, "K")
    y = as_tensor(y, "y", dtype=K.dtype)
    y = y[:, None] if y.ndim == 1 else y
    K_eval = as_tensor(K_eval, "K_eval", dtype=K.dtype)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or y.shape[0] != K.shape[0] or K_eval.shape[-1] != K.shape[0]:
        raise ValueError(f"need K (n, n), y (n, d) and K_eval (m, n); got {tuple(K.shape)}, "
                         f"{tuple(y.shape)}, {tuple(K_eval.shape)}")
    driver = "gelsd" if K.device.type == "cpu" else None  # gelsd (SVD-based) exists on the CPU only
    return K_eval @ torch.linalg.lstsq(K, y, driver=driver).solution


def risk_stop(kgd: KernelGD, steps: object, noise: float) -> int:
    """The index of ``steps`` that minimises Mallows' C_p (:meth:`KernelGD.risk_estimate`):
    a stopping rule that, like the discrepancy principle, needs only the noise level, but
    compares fits through their estimated error instead of a threshold on the training error."""
    if not isinstance(kgd, KernelGD):
        raise TypeError(f"kgd must be a KernelGD, got {type(kgd).__name__}")
    return int(kgd.risk_estimate(steps, noise).argmin())


def discrepancy_stop(train_error: object, level: float) -> int:
    """The first index at which the (non-increasing) training error is ``<= level``: the
    discrepancy principle, stopping when the fit reaches the label-noise level (here
    ``MMSE(t)``). Returns the last index if the error never gets there."""
    err = as_tensor(train_error, "train_error")
    if err.ndim != 1 or err.numel() == 0:
        raise ValueError("train_error must be a non-empty 1-D sequence")
    level = check_real(level, "level", low=0.0)
    below = (err <= level).nonzero()
    return int(below[0]) if below.numel() else err.numel() - 1


# --------------------------------------------------------------------- the regression view
def posterior_mmse(mixture: GaussianMixture, t: float, n: int = 20_000, *,
                   generator: torch.Generator | None = None) -> Estimate:
    """``MMSE(t) = E||x_0 - E[x_0 | x_t]||^2 = E tr Cov(x_0 | x_t)``, the label noise of the
    regression view (Han et al. 2024).

    Given ``x_t = x`` and component ``k``, ``x_0`` is Gaussian with mean
    ``mu_k(x) = m_k + a_t S_k C_k^{-1} (x - a_t m_k)`` and covariance
    ``S_k - a_t^2 S_k C_k^{-1} S_k`` (``C_k = a_t^2 S_k + s_t^2 I``); so
    ``tr Cov = sum_k r_k (tr P_k + |mu_k|^2) - |sum_k r_k mu_k|^2``, averaged over ``x ~ q_t``
    by Monte Carlo (a Rao–Blackwellised estimate, with its standard error).
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    t = check_real(t, "t", low=0.0, low_open=True)
    n = check_int(n, "n", low=2)
    check_generator(generator)
    x = mixture.sample(n, t=t, generator=generator)
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    S = mixture.covariances
    C = a * a * S + s2 * torch.eye(mixture.d, dtype=S.dtype, device=S.device)
    gain = a * torch.linalg.solve(C, S).transpose(-2, -1)  # a S C^{-1} (S, C symmetric)
    post_trace = torch.diagonal(S - a * gain @ S, dim1=-2, dim2=-1).sum(-1)  # (K,)
    means = mixture.means[None] + torch.einsum("kde,nke->nkd", gain, x[:, None] - a * mixture.means[None])
    r = mixture.responsibilities(x, t)
    mean = torch.einsum("nk,nkd->nd", r, means)
    tr = r @ post_trace + (r * (means**2).sum(-1)).sum(-1) - (mean**2).sum(-1)
    return Estimate(tr.mean().item(), tr.std().item() / math.sqrt(n))


def regression_data(mixture: GaussianMixture, n: int, t: object, *,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` training pairs of the regression view: returns ``(x_t, t, x_0)`` with
    ``x_t = a_t x_0 + s_t z``; ``t`` is one time or a ``(n,)`` tensor of times."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    n = check_int(n, "n")
    check_generator(generator)
    t = as_times(t, n=n, allow_zero=False)
    t = t.expand(n) if t.ndim == 0 else t
    x0 = mixture.sample(n, generator=generator)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return torch.exp(-t)[:, None] * x0 + torch.sqrt(-torch.expm1(-2 * t))[:, None] * z, t, x0

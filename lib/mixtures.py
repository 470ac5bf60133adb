"""Gaussian mixtures whose noised scores are known in closed form.

If ``q_0 = sum_k w_k N(m_k, S_k)``, the forward process gives
``q_t = sum_k w_k N(a_t m_k, C_k)`` with ``C_k = a_t^2 S_k + s_t^2 I``, and

    grad log q_t(x) = sum_k r_k(x) C_k^{-1} (a_t m_k - x),

where ``r_k(x) = softmax_k(log w_k + log N(x; a_t m_k, C_k))`` are the posterior weights
of the components (Gupta et al. 2024; Shah et al. 2023). Writing ``S_k = U_k diag(l_k) U_k^T``
makes ``C_k = U_k diag(a_t^2 l_k + s_t^2) U_k^T``, so one eigendecomposition per component
serves every ``t``, one ``t`` for all points or one per point. Everything is float64 by
default and uses log-sum-exp, so scores stay accurate far into the tails.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    DEFAULT_DTYPE,
    _all_finite,
    as_points,
    as_tensor,
    as_times,
    check_bool,
    check_device,
    check_float_dtype,
    check_generator,
    check_int,
    check_real,
    rel_tol,
    require_finite,
)

# Rows per chunk are chosen so that the (rows, K, d) work arrays stay near this size.
_CHUNK_ELEMENTS = 1 << 22
# On the CPU the single-time forms run in chunks whose widest work array holds about this many
# elements (a few hundred kB): they stay in cache and reuse memory, where whole-array
# temporaries of tens of MB would be freshly paged in for every operation (2-3x slower).
_CACHE_ELEMENTS = 1 << 16
# Isotropic and diagonal components in at most this many dimensions use the
# coordinates-first layout (see GaussianMixture._coords_first_terms).
_COORDS_FIRST_MAX_D = 4
# Per-time constants kept per mixture (see GaussianMixture._form).
_FORMS_KEPT = 8
_FORM_MAX_ELEMENTS = 1 << 16  # K d (K d^2 for full covariances) beyond which none is kept (<= ~12 MB in all)


@dataclass(frozen=True)
class _Noised:
    """Per-point quantities of ``q_t`` in each component's eigenbasis."""

    log_resp: Tensor  # (n, K) log r_k(x)
    log_prob: Tensor  # (n,)   log q_t(x)
    scaled_diff: Tensor  # (n, K, d) C_k^{-1}(x - a_t m_k), in the eigenbasis of S_k
    var: Tensor  # (K, d) or (n, K, d) eigenvalues of C_k
    a: Tensor  # scalar or (n, 1, 1)


@dataclass(frozen=True)
class _Form:
    """Per-time constants of the single-time closed forms (see ``GaussianMixture._precision``)."""

    kind: str  # "shared" (one variance v), "iso" (v_k I), "diag" or "full"
    center: Tensor  # (d,) c = E_{q_t} x
    means: Tensor  # (K, d) m_k
    const: Tensor  # (K, 1) the x-free part of log w_k N(x; a_t m_k, C_k)
    precision: Tensor  # (K, d) C_k^{-1} mu_k; full: (K d, d) the stacked W_k^T
    inv: object  # shared: 1/v; iso: (K,) 1/v_k; diag: (K, d) 1/v_ki; full: (K d, d) -[W_k]_k^T
    mean_t: Tensor  # (K, d) m_k - G_k mu_k; full: (K d, d) the stacked rows of G_k W_k^{-T}
    gain: object = None  # shared: g; iso, diag: (K, d) eigenvalues of G_k
    mu_white: Tensor | None = None  # full: (K d, 1) W_k^T mu_k, stacked
    pair: _Pair | None = None  # two components, not full: the logistic form's constants
    reach: float = math.inf  # largest |x - c| whose quadratic forms stay finite (see _centred)


@dataclass(frozen=True)
class _Pair:
    """Constants of the two-component forms: component 1 against component 2 (index 0, 1).

    With two components the softmax is ``r_1 = sigmoid(j_1 - j_2)``, ``r_2 = 1 - r_1``, and
    every ``sum_k r_k c_k`` is ``c_2 + r_1 (c_1 - c_2)``: the same formulas with one
    difference of the joints instead of both, and outer products instead of ``(n, 2)``
    matrix products."""

    dconst: float  # const_1 - const_2
    dprec: Tensor  # (d,) C_1^{-1} mu_1 - C_2^{-1} mu_2
    dsq: Tensor | None  # (d,) 1/v_1 - 1/v_2 in every coordinate (None: one shared variance)
    prec2: Tensor  # (d,) C_2^{-1} mu_2
    mean2: Tensor  # (d,) m_2 - G_2 mu_2
    dmean: Tensor  # (d,)
    inv: object  # 1/v (shared) or (1/v_2, 1/v_1 - 1/v_2): numbers
    gain: object  # g (shared) or (g_2, g_1 - g_2): (d,) eigenvalues of G_k


def _two_components(form: _Form) -> _Form:
    """``form`` with its two-component constants (see :class:`_Pair`) where they pay: for one
    shared variance or two isotropic components (1.1-1.25x per call at d = 5 to 64). Diagonal
    components keep the general form, whose per-coordinate weights ``sum_k r_k / v_ki`` one
    ``(n, 2) x (2, d)`` product gives faster than an outer product does."""
    d1 = lambda v: v[0] - v[1]  # noqa: E731
    if form.kind == "shared":
        dsq, inv, gain = None, form.inv, form.gain
    elif form.kind == "iso":
        inv = (form.inv[1].item(), d1(form.inv).item())
        dsq, gain = torch.full_like(form.precision[0], inv[1]), (form.gain[1], d1(form.gain))
    else:
        return form
    pair = _Pair(d1(form.const[:, 0]).item(), d1(form.precision), dsq, form.precision[1],
                 form.mean_t[1], d1(form.mean_t), inv, gain)
    return dataclasses.replace(form, pair=pair)


class GaussianMixture:
    """``sum_k w_k N(m_k, S_k)`` in ``R^d`` with the exact score of every ``q_t``.

    Parameters
    ----------
    weights : (K,) positive, summing to 1.
    means : (K, d); a 1-D tensor of length K is read as K means in one dimension.
    covariances : a number ``v`` (every ``S_k = v I``), shape ``(K,)`` (``S_k = v_k I``),
        ``(K, d)`` (diagonal ``S_k``) or ``(K, d, d)`` (full, symmetric positive definite).
    dtype, device : where the parameters live; float64 on the CPU by default.
    """

    def __init__(
        self,
        weights: object,
        means: object,
        covariances: object = 1.0,
        *,
        dtype: torch.dtype = DEFAULT_DTYPE,
        device: torch.device | str | None = None,
    ) -> None:
        check_float_dtype(dtype)
        w = _weights(weights, dtype, device)
        m = as_tensor(means, "means", dtype=dtype, device=device)
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2 or m.shape[0] != w.shape[0] or m.shape[1] == 0:
            raise ValueError(
                f"means must have shape (K, d) with K = {w.shape[0]} (the number of weights) "
                f"and d >= 1, got {tuple(m.shape)}"
            )
        self.weights, self.means = w, m
        self.K, self.d = m.shape
        self._set_covariances(as_tensor(covariances, "covariances", dtype=dtype, device=device))
        _check_scale(m, self._evals)
        self._rotated_means = self._rotate(m[None])[0] if self._evecs is not None else m

    # ----------------------------------------------------------------- construction
    def _set_covariances(self, cov: Tensor) -> None:
        K, d = self.K, self.d
        if cov.ndim == 0 or cov.ndim == 1:
            lam = cov.expand(K) if cov.ndim == 0 else cov
            if lam.shape != (K,):
                raise ValueError(f"covariances of shape (K,) need K = {K}, got {tuple(cov.shape)}")
            self._evals, self._evecs = lam[:, None].expand(K, d).clone(), None
        elif cov.ndim == 2:
            if cov.shape != (K, d):
                raise ValueError(f"diagonal covariances must have shape ({K}, {d}), got {tuple(cov.shape)}")
            self._evals, self._evecs = cov.clone(), None
        elif cov.ndim == 3:
            if cov.shape != (K, d, d):
                raise ValueError(f"covariances must have shape ({K}, {d}, {d}), got {tuple(cov.shape)}")
            scale = cov.abs().amax(dim=(-2, -1), keepdim=True)
            if ((cov - cov.transpose(-2, -1)).abs() > rel_tol(cov.dtype, d) * scale).any():
                raise ValueError("covariances must be symmetric")
            self._evals, self._evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-2, -1)))
        else:
            raise ValueError(f"covariances must be a number or have 1 to 3 dimensions, got {cov.ndim}")
        if (self._evals <= 0).any():
            raise ValueError("covariances must be positive definite (all eigenvalues > 0)")

    @property
    def covariances(self) -> Tensor:
        """The ``(K, d, d)`` covariance matrices ``S_k``."""
        if self._evecs is None:
            return torch.diag_embed(self._evals)
        return self._evecs @ torch.diag_embed(self._evals) @ self._evecs.transpose(-2, -1)

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GaussianMixture:
        """A copy with parameters on ``device`` in ``dtype``."""
        device = check_device(device)
        dtype = self.dtype if dtype is None else check_float_dtype(dtype)
        return GaussianMixture(
            self.weights.to(device=device, dtype=dtype),
            self.means.to(device=device, dtype=dtype),
            self.covariances.to(device=device, dtype=dtype),
            dtype=dtype,
        )

    def noised(self, t: float) -> GaussianMixture:
        """The mixture ``q_t``: means ``a_t m_k``, covariances ``a_t^2 S_k + s_t^2 I``."""
        t = check_real(t, "t", low=0.0)
        a2, s2 = math.exp(-2 * t), -math.expm1(-2 * t)
        eye = torch.eye(self.d, dtype=self.dtype, device=self.device)
        return GaussianMixture(
            self.weights, math.exp(-t) * self.means, a2 * self.covariances + s2 * eye, dtype=self.dtype
        )

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, d={self.d}, dtype={self.dtype})"

    # ----------------------------------------------------------------- moments
    def mean(self) -> Tensor:
        """``E[x_0] = sum_k w_k m_k``."""
        return self.weights @ self.means

    def second_moment(self) -> Tensor:
        """``m_2 = E||x_0||^2 = sum_k w_k (||m_k||^2 + tr S_k)``."""
        return self.weights @ ((self.means**2).sum(-1) + self._evals.sum(-1))

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        t: float = 0.0,
        generator: torch.Generator | None = None,
        return_labels: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``n`` draws from ``q_t`` (``q_0`` by default), optionally with component labels."""
        n = check_int(n, "n")
        t = check_real(t, "t", low=0.0)
        check_generator(generator)
        return_labels = check_bool(return_labels, "return_labels")
        kw = dict(generator=generator, dtype=self.dtype, device=self.device)
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        # In the eigenbasis, the component's noised law has independent coordinates.
        z = torch.randn(n, self.d, **kw) * torch.sqrt(a * a * self._evals[labels] + s2)
        if self._evecs is not None:
            z = torch.einsum("nde,ne->nd", self._evecs[labels], z)
        x = a * self.means[labels] + z
        return (x, labels) if return_labels else x

    # ----------------------------------------------------------------- exact quantities
    def log_prob(self, x: Tensor, t: Tensor | float = 0.0) -> Tensor:
        """``log q_t(x)`` for points ``x`` of shape ``(n, d)``; shape ``(n,)``.

        One time or one per row take the same path: each component's quadratic form is
        computed from ``x - a_t m_k`` directly. (The expanded precision form that serves
        ``score`` cancels large terms for narrow components far from the mixture's mean,
        which the log-density, unlike the score, does not forgive.)
        """
        return self._map(x, t, lambda nz: nz.log_prob)

    def score(self, x: Tensor, t: Tensor | float = 0.0) -> Tensor:
        """The exact score ``grad log q_t(x) = sum_k r_k(x) C_k^{-1}(a_t m_k - x)``.

        ``t`` is one time or one per row of ``x``; the result has the shape of ``x``.
        """
        return self._map(x, t, lambda nz: -self._unrotate(nz.log_resp.exp()[..., None] * nz.scaled_diff),
                         (lambda pt, out: pt[1](out), self.d))

    def posterior_mean(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Tweedie's denoiser ``E[x_0 | x_t = x] = (x + s_t^2 grad log q_t(x)) / a_t``.

        Computed per component as ``m_k + a_t S_k C_k^{-1}(x - a_t m_k)``, which stays
        accurate for large ``t`` where dividing by ``a_t`` would not.
        """

        def fn(nz: _Noised) -> Tensor:
            evals = self._evals if nz.var.ndim == 2 else self._evals[None]
            cond = self._rotated_means + nz.a * evals * nz.scaled_diff
            return self._unrotate(nz.log_resp.exp()[..., None] * cond)

        return self._map(x, t, fn, (lambda pt, out: pt[2](out), self.d))

    def responsibilities(self, x: Tensor, t: Tensor | float = 0.0) -> Tensor:
        """Posterior component weights ``r_k(x)`` under ``q_t``; shape ``(n, K)``."""
        return self._map(x, t, lambda nz: nz.log_resp.exp(),
                         (lambda pt, out: torch.exp(pt[0](), out=out), self.K))

    def cdf(self, x: Tensor, t: float = 0.0) -> Tensor:
        """The distribution function of ``q_t`` in one dimension (``d = 1``)."""
        if self.d != 1:
            raise ValueError(f"cdf needs a one-dimensional mixture, this one has d = {self.d}")
        x = as_tensor(x, "x", dtype=self.dtype, device=self.device)
        t = check_real(t, "t", low=0.0)
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        sd = torch.sqrt(a * a * self._evals[:, 0] + s2)
        z = (x[..., None] - a * self.means[:, 0]) / sd
        return (torch.special.ndtr(z) * self.weights).sum(-1)

    # ----------------------------------------------------------------- internals
    def _map(self, x: Tensor, t: Tensor | float, fn, fast=None) -> Tensor:
        """Apply ``fn`` to the per-point terms, in row chunks that bound memory.

        With one scalar ``t`` and a ``fast`` reader (of :meth:`_precision_terms`), the
        single-time closed forms are used instead.
        """
        # The fast forms check finiteness on each chunk's centred points, which are in cache
        # then (a separate pass over all of x, read from memory, costs up to a fifth of a call).
        x = as_points(x, "x", self.d, dtype=self.dtype, device=self.device, finite=False)
        # A plain non-negative number needs no tensor (as_times raises the messages otherwise).
        plain = isinstance(t, Real) and not isinstance(t, bool) and math.isfinite(t) and t >= 0
        t = float(t) if plain else as_times(t, n=x.shape[0], dtype=self.dtype, device=self.device)
        if fast is not None and (plain or t.ndim == 0):
            form = self._form(float(t), x)
            reader, width = fast
            rows = self._precision_rows(x)
            chunks = range(0, x.shape[0], rows)
            part = lambda i: x[i : i + rows]  # noqa: E731
            if self._tracks_grad(x):  # autograd cannot record writes into a given output
                return torch.cat([reader(self._precision_terms(part(i), form), None) for i in chunks])
            # Each chunk writes straight into its rows of the output: no per-chunk result to copy.
            out = x.new_empty(x.shape[0], width)
            terms = self._precision_terms
            if self.d <= _COORDS_FIRST_MAX_D:
                buffer = x.new_empty(self.d, min(rows, x.shape[0]))
                terms = self._precision_terms if form.kind == "full" else self._coords_first_terms
                terms = functools.partial(terms, buffer=buffer)
            for i in chunks:
                reader(terms(part(i), form), out[i : i + rows])
            return out
        # per-row times: every variance is at least min(eigenvalue, 1) (a convex combination of
        # the two) and |a_t m_k| <= |m_k|, so this reach from the origin holds at every time
        _within_reach(x, _reach(torch.clamp(self._evals, max=1.0), self.means), 1, "the origin")
        if plain:
            t = as_times(t, n=x.shape[0], dtype=self.dtype, device=self.device)
        work = lambda xs, ts: fn(self._noised_terms(xs, ts))  # noqa: E731
        return _by_rows(work, x, t, max(1, _CHUNK_ELEMENTS // (self.K * self.d)))

    def _tracks_grad(self, x: Tensor) -> bool:
        """Whether autograd records this call (points or parameters that require gradients)."""
        params = (x, self.weights, self.means, self._evals, self._evecs)
        return torch.is_grad_enabled() and any(p is not None and p.requires_grad for p in params)

    def _form(self, t: float, x: Tensor) -> _Form:
        """``_precision(t)``, remembered for the last few times: repeated calls at one time (batches
        of an evaluation, a benchmark, a plot) skip rebuilding the per-time constants. The key
        holds the parameters' version counters, so changing them in place rebuilds it; under
        autograd it is always rebuilt, so that gradients reach the parameters. Large forms (full
        covariances in high dimension) are not kept: they would hold memory, and their cost,
        O(K d^2), is small next to a call's O(n K d^2)."""
        size = self.K * self.d * (self.d if self._kind == "full" else 1)
        if self._tracks_grad(x) or size > _FORM_MAX_ELEMENTS:
            return self._precision(t)
        params = (self.weights, self.means, self._evals, self._evecs)
        key = (t, *(p._version if p is not None else -1 for p in params))
        cache = self.__dict__.setdefault("_forms", {})
        form = cache.get(key)
        if form is None:
            if len(cache) >= _FORMS_KEPT:
                cache.pop(next(iter(cache)))  # the oldest entry
            form = cache[key] = self._precision(t)
        return form

    @functools.cached_property
    def _kind(self) -> str:
        """``"iso"`` (``S_k = v_k I``), ``"diag"`` or ``"full"``: which closed form applies."""
        if self._evecs is not None:
            return "full"
        return "iso" if bool((self._evals == self._evals[:, :1]).all()) else "diag"

    def _precision(self, t: float) -> _Form:
        """Per-time constants of the single-time forms, centred at ``c = E_{q_t} x`` (which
        keeps the quadratic forms free of large cancellations far from the origin).

        With ``mu_k = a_t m_k - c`` and ``C_k`` the covariance of component ``k`` of ``q_t``:
        one shared variance ``C_k = v I`` needs only ``x.mu_k`` (one matrix product gives the
        responsibilities, another the score ``(sum_k r_k mu_k - x) / v``); isotropic components
        with different variances ``v_k`` add ``-||x||^2 / 2 v_k`` (one norm per point), diagonal
        ``C_k`` need ``x^2`` and ``x`` against the stacked precisions (two products); a full
        ``C_k`` is whitened, ``C_k^{-1} = W_k W_k^T`` with ``W_k = U_k diag(var_k)^{-1/2}``, by
        one matrix product with the stacked ``W_k``. The posterior mean
        ``m_k + a_t S_k C_k^{-1}(x - a_t m_k)`` reuses the same terms with ``G_k = a_t S_k C_k^{-1}``.
        """
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        var = a * a * self._evals + s2  # eigenvalues of C_k, (K, d)
        center = a * self.mean()
        mu = a * self.means - center  # centred component means
        log_norm = torch.log(self.weights) - 0.5 * (torch.log(var).sum(-1) + self.d * math.log(2 * math.pi))
        gain = a * self._evals / var  # eigenvalues of G_k = a S_k C_k^{-1}
        kind = self._kind
        reach = _reach(var, mu)
        if kind == "full":
            white = self._evecs * torch.rsqrt(var)[:, None, :]  # W_k, (K, d, d)
            mu_white = torch.einsum("kde,kd->ke", white, mu).reshape(-1, 1)  # W_k^T mu_k, stacked
            stacked_t = white.transpose(1, 2).reshape(self.K * self.d, self.d)  # [W_k^T]_k: [W_k^T x]_k
            # G_k (x - a m_k) = U_k diag(a l_k) W_k^T (x - a m_k): the stacked rows scaled by a l_k
            mean_t = (a * self._evals).reshape(-1, 1) * stacked_t
            return _Form(kind, center, self.means, log_norm[:, None], stacked_t.contiguous(),
                         -stacked_t.contiguous(), mean_t.contiguous(), mu_white=mu_white, reach=reach)
        form = dataclasses.replace(self._scalar_precision(kind, var, center, mu, log_norm, gain), reach=reach)
        return _two_components(form) if self.K == 2 else form

    def _scalar_precision(self, kind: str, var: Tensor, center: Tensor, mu: Tensor, log_norm: Tensor,
                          gain: Tensor) -> _Form:
        """The forms of :meth:`_precision` for isotropic and diagonal components."""
        inv = 1.0 / var
        if kind == "iso" and bool((var[:, 0] == var[0, 0]).all()):
            v_inv = inv[0, 0].item()
            const = log_norm - 0.5 * v_inv * (mu * mu).sum(-1)
            # G = g I for all k: E[x_0|x] = sum_k r_k (m_k - g mu_k) + g x
            g = gain[0, 0].item()
            return _Form("shared", center, self.means, const[:, None], v_inv * mu, v_inv, self.means - g * mu, g)
        b = mu * inv  # C_k^{-1} mu_k
        const = (log_norm - 0.5 * (mu * b).sum(-1))[:, None]
        if kind == "iso":  # v_k differ: -||x||^2 / 2 v_k is one outer product
            return _Form(kind, center, self.means, const, b, inv[:, 0].contiguous(), self.means - gain * mu, gain)
        return _Form(kind, center, self.means, const, b, inv, self.means - gain * mu, gain)

    def _precision_rows(self, x: Tensor) -> int:
        """Rows per chunk for the single-time forms: cache-sized on the CPU, large on a GPU."""
        width = self.K * self.d if self._kind == "full" else self.K + self.d
        if x.device.type != "cpu":
            return max(1, _CHUNK_ELEMENTS // width)
        return max(256, _CACHE_ELEMENTS // width)

    def _precision_terms(self, x: Tensor, form: _Form, buffer: Tensor | None = None) -> tuple:
        """``(log r, score, posterior mean)`` at one time by matrix products, each as a thunk
        (the last two write into a given output): only what the caller reads is computed.

        The per-component terms are laid out components-first, ``(K, n)``: the softmax over
        the few components then reduces across rows of contiguous memory, which vectorises,
        where a reduction along a last axis of length ``K`` would not. No ``(n, K, d)`` array
        is formed except the whitened residuals of full covariances, which read the centred
        points only through one product: given a ``buffer`` (few dimensions, no autograd; see
        :meth:`_coords_first_terms`) they are centred into it coordinates-first.
        """
        kind = form.kind
        if kind == "full" and buffer is not None:
            xt = _centred(torch.sub(x.T, form.center[:, None], out=buffer[:, : x.shape[0]]), x, form.reach, 0)
        else:
            xc = _centred(x - form.center, x, form.reach, 1)
            xt = xc.T  # (d, n), a view: the products read it transposed
        if kind == "full":
            resid = torch.addmm(form.mu_white, form.precision, xt, beta=-1.0)  # W_k^T (x - a m_k), (K d, n)
            per_k = resid.view(self.K, self.d, -1)
            quad = torch.linalg.vecdot(per_k, per_k, dim=1)  # (K, n)
            joint = torch.add(form.const, quad, alpha=-0.5)
            r = torch.softmax(joint, 0)
            log_r = lambda: torch.log_softmax(joint, 0).T  # noqa: E731
            per_k.mul_(r[:, None, :])
            score = lambda out: torch.mm(resid.T, form.inv, out=out)  # noqa: E731  -sum_k r_k W_k W_k^T (x - a m_k)
            mean = lambda out: torch.mm(r.T, form.means, out=out).addmm_(resid.T, form.mean_t)  # noqa: E731
            return log_r, score, mean
        if form.pair is not None:
            return _pair_terms(xc, form.pair)
        joint = torch.addmm(form.const, form.precision, xt)  # const_k + x.C_k^{-1} mu_k, (K, n)
        if kind == "iso":  # -||x||^2 / 2 v_k
            # (x * x) @ 1 is a matrix-vector product: for small d several times faster than
            # a sum along the last axis
            sq = (xc * xc) @ torch.ones(self.d, dtype=x.dtype, device=x.device)
            joint.addr_(form.inv, sq, alpha=-0.5)
        elif kind == "diag":  # -sum_i x_i^2 / 2 v_ki: the square against the stacked precisions
            joint.addmm_(form.inv, (xc * xc).T, alpha=-0.5)
        # One fused softmax across the components (max, exp, sum, divide): 2-3x faster here
        # than the separate steps of _normalise.
        r = torch.softmax(joint, 0)
        log_r = lambda: torch.log_softmax(joint, 0).T  # noqa: E731
        rt = r.T  # (n, K), a view
        if kind == "shared":  # one variance v: (sum_k r_k mu_k - x) / v
            score = lambda out: torch.addmm(xc, rt, form.precision, beta=-form.inv, out=out)  # noqa: E731
            mean = lambda out: torch.addmm(xc, rt, form.mean_t, beta=form.gain, out=out)  # noqa: E731
        else:  # sum_k r_k C_k^{-1} mu_k - x * sum_k r_k C_k^{-1}
            inv = form.inv[:, None] if kind == "iso" else form.inv
            score = lambda out: torch.mm(rt, form.precision, out=out).addcmul_(xc, rt @ inv, value=-1.0)  # noqa: E731
            mean = lambda out: torch.mm(rt, form.mean_t, out=out).addcmul_(xc, rt @ form.gain)  # noqa: E731
        return log_r, score, mean

    def _coords_first_terms(self, x: Tensor, form: _Form, buffer: Tensor) -> tuple:
        """:meth:`_precision_terms` for isotropic and diagonal components in few dimensions,
        with the points laid out coordinates-first, ``(d, n)``, in ``buffer`` (no autograd).

        With ``d`` of 2 or 3, every elementwise step on ``(n, d)`` rows broadcasts along an
        axis too short to vectorise (and the products have an inner dimension of 2 or 3);
        transposed once, each step runs along the ``n`` points instead (about 1.5-2x faster
        per call at d = 2). The formulas are those of :meth:`_precision_terms`.
        """
        xc = _centred(torch.sub(x.T, form.center[:, None], out=buffer[:, : x.shape[0]]), x, form.reach, 0)  # (d, n)
        kind = form.kind
        joint = torch.addmm(form.const, form.precision, xc)  # (K, n)
        if kind == "iso":
            joint.addr_(form.inv, (xc * xc).sum(0), alpha=-0.5)
        elif kind == "diag":
            joint.addmm_(form.inv, xc * xc, alpha=-0.5)
        r = torch.softmax(joint, 0)
        log_r = lambda: torch.log_softmax(joint, 0).T  # noqa: E731

        def write(per_k: Tensor, scale: Tensor | float, out: Tensor) -> Tensor:
            # per_k^T r + scale * x, with scale a number or one weight per point (and coordinate)
            res = per_k.T @ r  # (d, n)
            if isinstance(scale, float):
                res.add_(xc, alpha=scale)
            else:
                res.addcmul_(xc, scale)
            return out.T.copy_(res) if out is not None else res.T

        if kind == "shared":
            score = lambda out: write(form.precision, -form.inv, out)  # noqa: E731
            mean = lambda out: write(form.mean_t, form.gain, out)  # noqa: E731
        else:
            inv = form.inv[:, None] if kind == "iso" else form.inv
            score = lambda out: write(form.precision, -(inv.T @ r), out)  # noqa: E731
            mean = lambda out: write(form.mean_t, form.gain.T @ r, out)  # noqa: E731
        return log_r, score, mean

    def _noised_terms(self, x: Tensor, t: Tensor) -> _Noised:
        a = torch.exp(-t)
        s2 = -torch.expm1(-2.0 * t)
        if t.ndim == 1:
            a, s2 = a[:, None, None], s2[:, None, None]
        var = a * a * self._evals + s2  # eigenvalues of C_k
        xr = self._rotate(x) if self._evecs is not None else x[:, None, :]
        diff = xr - a * self._rotated_means
        scaled = diff / var
        log_det = torch.log(var).sum(-1)
        log_n = -0.5 * ((diff * scaled).sum(-1) + log_det + self.d * math.log(2 * math.pi))
        joint = torch.log(self.weights) + log_n
        lse = torch.logsumexp(joint, dim=-1)
        return _Noised(joint - lse[:, None], lse, scaled, var, a)

    def _rotate(self, x: Tensor) -> Tensor:
        """Coordinates of each row of ``x`` (shape ``(n, d)``) in every eigenbasis: ``(n, K, d)``."""
        if x.ndim == 3:  # (1, K, d): per-component vectors
            return torch.einsum("kde,nkd->nke", self._evecs, x)
        return torch.einsum("kde,nd->nke", self._evecs, x)

    def _unrotate(self, v: Tensor) -> Tensor:
        """``sum_k U_k v_k`` for per-component vectors ``v`` of shape ``(n, K, d)``."""
        if self._evecs is None:
            return v.sum(1)
        return torch.einsum("kde,nke->nd", self._evecs, v)


def _pair_terms(xc: Tensor, pair: _Pair) -> tuple:
    """The thunks of :meth:`GaussianMixture._precision_terms` for two isotropic components,
    by the logistic form (see :class:`_Pair`); ``xc`` are the centred points."""
    delta = torch.mv(xc, pair.dprec).add_(pair.dconst)  # j_1 - j_2
    if pair.dsq is not None:
        delta.addmv_(xc * xc, pair.dsq, alpha=-0.5)
    r1 = torch.sigmoid(delta)
    log_r = lambda: torch.stack([F.logsigmoid(delta), F.logsigmoid(-delta)], 1)  # noqa: E731

    def affine(base: Tensor, step: Tensor, scale: object, sign: float, out: Tensor | None) -> Tensor:
        # base + r_1 step + sign * xc * (scale_2 + r_1 dscale), scale a number or (value at 2, difference)
        acc = torch.addr(base.expand(xc.shape[0], -1), r1, step, out=out)
        if isinstance(scale, float):
            return acc.add_(xc, alpha=sign * scale)
        lo, diff = scale
        if isinstance(lo, float):
            return acc.addcmul_(xc, torch.mul(r1, diff).add_(lo)[:, None], value=sign)
        return acc.addcmul_(xc, torch.addr(lo.expand(xc.shape[0], -1), r1, diff), value=sign)

    score = lambda out: affine(pair.prec2, pair.dprec, pair.inv, -1.0, out)  # noqa: E731
    mean = lambda out: affine(pair.mean2, pair.dmean, pair.gain, 1.0, out)  # noqa: E731
    return log_r, score, mean


def _centred(xc: Tensor, x: Tensor, reach: float, coords: int) -> Tensor:
    """The centred points ``xc = x - c`` of the single-time forms, checked to be finite and
    within ``reach`` of the centre (:func:`_reach`: farther out the quadratic forms overflow
    and the score would be NaN). One norm of the chunk, a vectorised pass over it in cache,
    checks both: it is finite and at most ``reach`` exactly when every point is (a NaN or inf
    makes it non-finite; the norm of all points bounds each one's, and only when it exceeds
    ``reach`` are the points' own norms, along the coordinate axis ``coords``, needed)."""
    if torch.linalg.vector_norm(xc).item() <= reach:
        return xc
    if not _all_finite(xc):
        require_finite(x, "x")
        raise ValueError("x is out of range: x - E[x_t] overflows")
    _within_reach(xc, reach, coords, "E[x_t], the mixture's mean at time t")
    return xc


def _within_reach(diff: Tensor, reach: float, coords: int, what: str) -> None:
    """Raise unless every point (its coordinates along axis ``coords`` of ``diff``) lies within
    ``reach``; non-finite entries raise :func:`require_finite`'s error. One pass (the largest
    entry) decides all but points within a factor ``sqrt(d)`` of the reach."""
    if diff.numel() == 0:
        return
    low, high = torch.aminmax(diff)
    m = max(-low.item(), high.item())
    if not math.isfinite(m):
        require_finite(diff, "x")
    if m * math.sqrt(diff.shape[coords]) <= reach:
        return
    # the norm of diff / m overflows only where diff itself is beyond any reach
    if m * torch.linalg.vector_norm(diff / m, dim=coords).max().item() > reach:
        raise ValueError(f"x is out of range: the points must lie within {reach:.3g} of {what} (farther out "
                         "the squared distances over the variances overflow and the result would be NaN)")


def _reach(var: Tensor, mu: Tensor) -> float:
    """How far from the centre points may lie: ``|x - c| <= reach`` keeps every quadratic form
    ``(x - c - mu_k)^T C_k^{-1} (x - c - mu_k) <= (|x - c| + |mu_k|)^2 / min var`` below the
    dtype's largest number by a margin of ``1e-8`` (sums over coordinates and components, and
    the products with the precisions, stay finite)."""
    big = torch.finfo(var.dtype).max * _SCALE_MARGIN
    return math.sqrt(big * var.min().item()) - mu.norm(dim=-1).max().item()


def _weights(weights: object, dtype: torch.dtype, device) -> Tensor:
    """Positive weights summing to 1 up to rounding in the dtype they were computed in
    (float32 softmax weights miss 1 by ~1e-7), renormalised so they sum to 1 in ``dtype``."""
    source = weights.dtype if isinstance(weights, Tensor) and weights.is_floating_point() else dtype
    w = as_tensor(weights, "weights", dtype=dtype, device=device)
    if w.ndim != 1 or w.numel() == 0:
        raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(w.shape)}")
    if (w <= 0).any():
        raise ValueError(f"weights must all be > 0, got min {w.min().item():.3g}")
    total = w.sum().item()
    coarser = max(source, dtype, key=lambda d: torch.finfo(d).eps)
    tol = rel_tol(coarser, w.numel())
    if abs(total - 1.0) > tol:
        raise ValueError(f"weights must sum to 1 (to within {tol:.2g}), got sum {total:.10g}")
    return w / w.sum()


# Squared means over variances (and the variances themselves) must stay this far below the
# dtype's largest number, so that the quadratic forms of the exact score stay finite.
_SCALE_MARGIN = 1e-8


def _check_scale(means: Tensor, evals: Tensor) -> None:
    """Refuse parameters whose squared scales overflow the dtype (the score would be NaN)."""
    limit = torch.finfo(means.dtype).max * _SCALE_MARGIN
    m2 = means.double().abs().amax() ** 2  # float64 even for float32 parameters: no overflow here
    ratio, big = (m2 / evals.double().amin()).item(), max(evals.double().amax().item(), m2.item())
    if not (ratio < limit and big < limit):
        raise ValueError(
            f"means and covariances are out of range for {means.dtype}: need max|m|^2 / min variance "
            f"and max variance below {limit:.3g}, got {ratio:.3g} and {big:.3g}"
        )


def _by_rows(work, x: Tensor, t: Tensor, rows: int) -> Tensor:
    """``work(x, t)`` on row chunks of at most ``rows`` rows, written into one output."""
    n = x.shape[0]
    if n <= rows:
        return work(x, t)
    out = None
    for i in range(0, n, rows):
        part = work(x[i : i + rows], t if t.ndim == 0 else t[i : i + rows])
        if out is None:
            out = part.new_empty((n, *part.shape[1:]))
        out[i : i + part.shape[0]] = part
    return out


def _normalise(joint: Tensor, floor: float | None = -600.0) -> tuple[Tensor, Tensor, Tensor]:
    """``(log softmax, logsumexp, softmax)`` over the last axis with one ``exp`` (torch's
    ``logsumexp`` is slow for the few components a mixture has).

    Below ``e^floor`` a weight is zero to double precision next to the largest (which is 1);
    clamping there keeps it (and its products downstream) out of subnormal numbers, whose
    arithmetic runs tens of times slower on CPUs; log r keeps the exact value. ``floor=None``
    lets such weights underflow to 0 instead (EM's M-step divides by a column's total, where a
    clamped column would weight its points equally).
    """
    top = joint.amax(-1, keepdim=True)
    shifted = joint - top
    # In place saves two allocations, but autograd (the student scores' gradients) needs
    # the out-of-place forms.
    inplace = not (torch.is_grad_enabled() and joint.requires_grad)
    clamped = shifted if floor is None else torch.clamp_min(shifted, floor)
    if floor is None and inplace:
        clamped = clamped.clone()
    e = clamped.exp_() if inplace else clamped.exp()
    total = e.sum(-1, keepdim=True)
    log_total = torch.log(total)
    return shifted - log_total, (top + log_total).squeeze(-1), e.div_(total) if inplace else e / total


# --------------------------------------------------------------------- named mixtures
def symmetric_two(mu: object, *, dtype: torch.dtype = DEFAULT_DTYPE) -> GaussianMixture:
    """``0.5 N(mu, I) + 0.5 N(-mu, I)``, the mixture of Shah et al. (2023); its score is
    ``tanh(mu_t . x) mu_t - x`` with ``mu_t = exp(-t) mu``."""
    mu = as_tensor(mu, "mu", dtype=check_float_dtype(dtype))
    if mu.ndim != 1 or mu.numel() == 0:
        raise ValueError(f"mu must be a vector of shape (d,) with d >= 1, got {tuple(mu.shape)}")
    w = torch.tensor([0.5, 0.5], dtype=dtype, device=mu.device)
    return GaussianMixture(w, torch.stack([mu, -mu]), 1.0, dtype=dtype, device=mu.device)


R_MAX = 1e6  # the largest separation hardness_pair accepts (see its docstring)


def hardness_pair(eta: float, R: float) -> tuple[GaussianMixture, GaussianMixture]:
    """The pair of Gupta et al. (2024): ``p1 = (1-eta) N(0,1) + eta N(-R,1)`` and
    ``p2 = (1-eta) N(0,1) + eta N(R,1)``; hard to tell apart from ``o(1/eta)`` samples,
    yet their scores differ by about ``eta R^2`` in squared L2.

    ``R`` is at most ``1e6``: the exact score at one time carries an absolute rounding error
    of about ``eps R`` (``1e-10`` at ``R = 1e6`` in float64), and far beyond that nothing is left.
    """
    eta = check_real(eta, "eta", low=0.0, high=1.0, low_open=True, high_open=True)
    R = check_real(R, "R", low=0.0, high=R_MAX, low_open=True)
    w = [1.0 - eta, eta]
    return GaussianMixture(w, [0.0, -R]), GaussianMixture(w, [0.0, R])


def equal_weights(means: object, variance: float = 1.0) -> GaussianMixture:
    """``(1/K) sum_k N(m_k, variance I)``: the K-component model of Shah et al. (2023)."""
    m = as_tensor(means, "means")
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.numel() == 0:
        raise ValueError(f"means must have shape (K,) or (K, d) with K, d >= 1, got {tuple(m.shape)}")
    variance = check_real(variance, "variance", low=0.0, low_open=True)
    K = m.shape[0]
    return GaussianMixture(torch.full((K,), 1.0 / K, dtype=m.dtype, device=m.device), m, variance, device=m.device)


def demo_1d() -> GaussianMixture:
    """A lopsided three-component mixture on the line, used for pictures and tests."""
    return GaussianMixture([0.25, 0.5, 0.25], [-2.5, 0.5, 3.0], [0.3, 0.5, 0.2])


def demo_2d() -> GaussianMixture:
    """Four components in the plane with full, differently shaped covariances."""

    def cov(sx: float, sy: float, rho: float) -> list[list[float]]:
        return [[sx * sx, rho * sx * sy], [rho * sx * sy, sy * sy]]

    return GaussianMixture(
        [0.3, 0.3, 0.25, 0.15],
        [[-2.0, -1.0], [2.0, -1.5], [0.5, 2.0], [-2.5, 2.5]],
        [cov(0.5, 0.9, 0.6), cov(0.8, 0.4, -0.5), cov(0.9, 0.5, 0.3), cov(0.35, 0.35, 0.0)],
    )

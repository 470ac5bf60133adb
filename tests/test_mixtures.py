"""The mixture's exact scores against independent references."""

import math
import re

import numpy as np
import pytest
import torch

import lib
from lib.mixtures import GaussianMixture


def random_mixture(seed: int, K: int, d: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g, dtype=torch.float64) + 0.2
    A = torch.randn(K, d, d, generator=g, dtype=torch.float64)
    cov = A @ A.transpose(-1, -2) / d + 0.2 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture(w / w.sum(), 2 * torch.randn(K, d, generator=g, dtype=torch.float64), cov)


def reference_log_prob(mix: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    """log q_t straight from the definition, with torch.distributions."""
    a, s2 = math.exp(-t), -math.expm1(-2 * t)
    cov = a * a * mix.covariances + s2 * torch.eye(mix.d, dtype=torch.float64)
    comp = torch.distributions.MultivariateNormal(a * mix.means, covariance_matrix=cov)
    return torch.logsumexp(comp.log_prob(x[:, None, :]) + mix.weights.log(), dim=-1)


@pytest.mark.parametrize("seed,K,d", [(0, 3, 2), (1, 5, 4), (2, 2, 7)])
@pytest.mark.parametrize("t", [1e-4, 1e-2, 0.3, 1.0, 10.0])
def test_score_matches_autograd_of_log_prob(seed, K, d, t):
    mix = random_mixture(seed, K, d)
    x = mix.sample(64, t=t, generator=torch.Generator().manual_seed(seed + 10))
    far = torch.randn(16, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    x = torch.cat([x, 4 * far, 30 * far])  # tails too: the expanded quadratic forms must not cancel
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reference_log_prob(mix, xr, t).sum(), xr)
    score = mix.score(x, t)
    rel = (score - grad).norm(dim=1) / grad.norm(dim=1).clamp_min(1e-300)
    assert rel.max().item() <= 1e-10
    assert torch.allclose(mix.log_prob(x, t), reference_log_prob(mix, x, t), rtol=0, atol=1e-10)


def test_per_row_times_equal_scalar_calls():
    mix = random_mixture(3, 4, 3)
    x = mix.sample(6, generator=torch.Generator().manual_seed(0))
    ts = torch.tensor([0.0, 1e-3, 0.1, 0.5, 2.0, 8.0], dtype=torch.float64)
    per_row = mix.score(x, ts)
    one_by_one = torch.cat([mix.score(x[i : i + 1], ts[i].item()) for i in range(6)])
    assert torch.allclose(per_row, one_by_one, rtol=1e-13, atol=1e-13)


def test_noised_mixture_has_the_time_t_score():
    mix = random_mixture(4, 3, 2)
    x = torch.randn(20, 2, dtype=torch.float64)
    assert torch.allclose(mix.noised(0.7).score(x, 0.0), mix.score(x, 0.7), atol=1e-12)


def test_symmetric_two_score_is_tanh_form():
    mu = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
    x = torch.randn(50, 3, dtype=torch.float64)
    for t in (0.0, 0.2, 3.0):
        mu_t = math.exp(-t) * mu
        expected = torch.tanh(x @ mu_t)[:, None] * mu_t - x
        assert torch.allclose(lib.symmetric_two(mu).score(x, t), expected, atol=1e-12)


def test_posterior_mean_is_tweedie():
    mix = random_mixture(5, 3, 3)
    x = torch.randn(30, 3, dtype=torch.float64)
    for t in (0.05, 0.5, 3.0):
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        tweedie = (x + s2 * mix.score(x, t)) / a
        assert torch.allclose(mix.posterior_mean(x, t), tweedie, atol=1e-9)


def test_posterior_mean_matches_monte_carlo_regression():
    """E[x0 | x_t] is the regression target: residuals x0 - E[x0|x_t] average to zero
    against any function of x_t (here the coordinates of x_t)."""
    mix = lib.demo_2d()
    gen = torch.Generator().manual_seed(1)
    x0 = mix.sample(200_000, generator=gen)
    xt, _ = lib.perturb(x0, 0.4, generator=gen)
    resid = x0 - mix.posterior_mean(xt, 0.4)
    prod = resid[:, :, None] * xt[:, None, :]
    mean, se = prod.mean(0), prod.std(0) / math.sqrt(x0.shape[0])
    assert (mean.abs() < 4 * se).all()


def test_sample_moments():
    mix = lib.demo_2d()
    x = mix.sample(400_000, generator=torch.Generator().manual_seed(2))
    se = x.std(0) / math.sqrt(x.shape[0])
    assert ((x.mean(0) - mix.mean()).abs() < 4 * se).all()
    sq = (x**2).sum(1)
    assert abs(sq.mean() - mix.second_moment()) < 4 * sq.std() / math.sqrt(x.shape[0])
    emp_cov = torch.cov(x.T)
    true_cov = (mix.weights[:, None, None] * (mix.covariances + mix.means[:, :, None] * mix.means[:, None, :])).sum(0)
    true_cov = true_cov - mix.mean()[:, None] * mix.mean()[None, :]
    assert torch.allclose(emp_cov, true_cov, atol=0.03)


def test_noised_samples_follow_q_t():
    mix = lib.demo_1d()
    t = 0.3
    x = mix.sample(100_000, t=t, generator=torch.Generator().manual_seed(3))
    grid = torch.linspace(-4, 4, 9, dtype=torch.float64)
    emp = (x[:, 0][None, :] <= grid[:, None]).double().mean(1)
    # Kolmogorov–Smirnov-sized tolerance at n = 1e5: sqrt(log(2/0.001)/(2n)) ~ 0.006
    assert (emp - mix.cdf(grid, t)).abs().max() < 0.006


def test_responsibilities_sum_to_one_and_cdf_limits():
    mix = lib.demo_1d()
    x = torch.linspace(-10, 10, 101, dtype=torch.float64)[:, None]
    r = mix.responsibilities(x, 0.2)
    assert torch.allclose(r.sum(1), torch.ones(101, dtype=torch.float64))
    c = mix.cdf(torch.tensor([-50.0, 50.0], dtype=torch.float64))
    assert c[0] < 1e-12 and abs(c[1] - 1) < 1e-12


def test_large_batch_is_chunked_consistently():
    mix = random_mixture(6, 8, 16)
    x = torch.randn(50_000, 16, dtype=torch.float64)
    full = mix.score(x, 0.2)
    assert torch.allclose(full[-10:], mix.score(x[-10:], 0.2), atol=1e-12)


def test_hardness_pair_and_constructors():
    p1, p2 = lib.hardness_pair(0.01, 10.0)
    assert p1.means[1, 0] == -10.0 and p2.means[1, 0] == 10.0
    assert lib.equal_weights([[0.0, 1.0], [2.0, 3.0]]).K == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(weights=[0.5, 0.6], means=[0.0, 1.0]), "weights must sum to 1"),
        (dict(weights=[1.2, -0.2], means=[0.0, 1.0]), "weights must all be > 0"),
        (dict(weights=[0.5, 0.5], means=[[0.0], [1.0], [2.0]]), "means must have shape"),
        (dict(weights=[0.5, 0.5], means=[0.0, 1.0], covariances=[1.0, -1.0]), "positive definite"),
        (dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]],
              covariances=[[[1.0, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]), "symmetric"),
        (dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]], covariances=torch.ones(3, 2, 2)),
         "covariances must have shape"),
        (dict(weights=[0.5, 0.5], means=[float("nan"), 1.0]), "means must be finite"),
        (dict(weights="abc", means=[0.0, 1.0]), "weights must be"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GaussianMixture(**kwargs)


def test_bad_calls():
    mix = lib.demo_2d()
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="t must be >= 0"):
        mix.score(x, -0.1)
    with pytest.raises(ValueError, match="x must have d = 2"):
        mix.score(torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError, match="x must be finite"):
        mix.score(torch.full((2, 2), float("inf")), 0.1)
    with pytest.raises(ValueError, match="t must be a scalar or shape"):
        mix.score(x, torch.zeros(4))
    with pytest.raises(ValueError, match="n must be >= 1"):
        mix.sample(0)
    with pytest.raises(TypeError, match="generator"):
        mix.sample(3, generator=1)
    with pytest.raises(ValueError, match="one-dimensional"):
        mix.cdf(x)
    with pytest.raises(ValueError, match="t must lie in"):
        mix.noised(-1.0)
    with pytest.raises(ValueError, match="mu must be a vector"):
        lib.symmetric_two(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="eta must lie in"):
        lib.hardness_pair(1.5, 10)
    with pytest.raises(ValueError, match="R must lie in"):
        lib.hardness_pair(0.1, -1)
    with pytest.raises(ValueError, match="variance must lie in"):
        lib.equal_weights([0.0, 1.0], variance=0.0)


# ----------------------------------------------------------------- float64 stability of the closed forms
def _mixture_of_kind(kind: str, K: int, d: int, scale: float, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=torch.float64)
    w = torch.rand(K, **kw) + 0.1
    means = scale * (2 * torch.rand(K, d, **kw) - 1)
    if kind == "isotropic":
        cov = 0.3 + torch.rand(K, **kw)
    elif kind == "shared":
        cov = 0.5
    elif kind == "diagonal":
        cov = 0.3 + torch.rand(K, d, **kw)
    else:
        A = torch.randn(K, d, d, **kw)
        cov = A @ A.transpose(-1, -2) / d + 0.3 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture(w / w.sum(), means, cov)


def _long_double_reference(mix: GaussianMixture, x: torch.Tensor, t: float):
    """Score, log q_t, r_k and the component scores s_k in numpy's long double, from the
    differences x - a m_k in each component's eigenbasis (no expanded quadratic forms)."""
    L = np.longdouble
    lam, X, m = mix._evals.numpy().astype(L), x.numpy().astype(L), mix.means.numpy().astype(L)
    a, s2 = np.exp(-L(t)), -np.expm1(-2 * L(t))
    var = a * a * lam + s2
    joint, comp = [], []
    for k in range(mix.K):
        U = None if mix._evecs is None else mix._evecs[k].numpy().astype(L)
        y = X - a * m[k] if U is None else (X - a * m[k]) @ U
        joint.append(np.log(L(mix.weights[k].item())) - 0.5 * ((y * y / var[k]).sum(1) + np.log(var[k]).sum()
                                                             + mix.d * np.log(2 * L(math.pi))))
        g = -y / var[k]
        comp.append(g if U is None else g @ U.T)
    J = np.stack(joint, 1)
    top = J.max(1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(J - top).sum(1))
    r = np.exp(J - lse[:, None])
    comp = np.stack(comp, 1)
    f64 = lambda v: torch.tensor(v.astype(np.float64))  # noqa: E731
    return f64((r[..., None] * comp).sum(1)), f64(lse), f64(r), f64(comp)


@pytest.mark.parametrize("kind", ["isotropic", "shared", "diagonal", "full"])
@pytest.mark.parametrize("d", [1, 2, 10, 1000])
@pytest.mark.parametrize("scale", [1.0, 100.0])
@pytest.mark.parametrize("K", [2, 3])
def test_closed_forms_are_stable_far_out(kind, d, scale, K):
    """t from 1e-8 to 50, d up to 1000, means up to 100, points 50 standard deviations out and
    on the boundary between two components: every closed form matches a long-double reference
    to 1e-10 relative, except for the rounding of the quadratic forms themselves where two
    components compete. That part is bounded (Higham's gamma_n bound for sums of n products)
    by Delta = gamma_{d+8} max_k (||x|| + 2 max_j ||a m_j||)^2 / v_k, v_k the smallest variance of
    component k, and moves the score by at most 2 Delta sum_k r_k ||s_k - s||."""
    if kind == "full" and d == 1000:
        d = 250  # the long-double reference's d x d products take seconds each beyond this
    mix = _mixture_of_kind(kind, K, d, scale, seed=d)
    u = 2.0**-53
    gamma = (d + 8) * u / (1 - (d + 8) * u)
    for t in (1e-8, 1e-2, 1.0, 50.0):
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        gen = torch.Generator().manual_seed(1)
        x = mix.sample(10, t=t, generator=gen)
        z = torch.randn(10, d, generator=gen, dtype=torch.float64)
        far = x + 50 * math.sqrt(a * a * mix._evals.max().item() + s2) * z / z.norm(dim=1, keepdim=True)
        mid = 0.5 * a * (mix.means[0] + mix.means[1]).expand(2, d)
        x = torch.cat([x, far, mid])
        score, log_p = mix.score(x, t), mix.log_prob(x, t)
        ref, ref_lp, r, comp = _long_double_reference(mix, x, t)
        assert torch.isfinite(score).all() and torch.isfinite(log_p).all()
        v_min = (a * a * mix._evals + s2).amin(1)
        big = (x.norm(dim=1, keepdim=True) + 2 * a * mix.means.norm(dim=1).max()) ** 2 / v_min
        delta = gamma * big.amax(1)
        spread = (r[..., None] * (comp - ref[:, None, :])).norm(dim=-1).sum(1)
        err = (score - ref).norm(dim=1)
        assert (err <= 1e-10 * ref.norm(dim=1) + 2 * delta * spread).all(), (t, (err / ref.norm(dim=1)).max())
        assert ((log_p - ref_lp).abs() <= 1e-12 * ref_lp.abs() + delta).all(), t


@pytest.mark.parametrize("kind", ["isotropic", "shared", "diagonal", "full"])
@pytest.mark.parametrize("t", [1e-6, 0.1, 3.0, 30.0])
@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("K", [2, 4])
def test_single_time_forms_equal_the_per_row_forms(kind, t, d, K):
    """One scalar t takes the matrix-product forms (coordinates-first for d = 2, components-first
    for d = 5; the logistic form for K = 2); the same time given per row takes the direct
    per-component path. Score, posterior mean and responsibilities agree, in the bulk and 30
    standard deviations out, across more rows than one chunk holds."""
    mix = _mixture_of_kind(kind, K, d, 10.0, seed=7)
    gen = torch.Generator().manual_seed(2)
    n = 2 * mix._precision_rows(torch.zeros(1, d, dtype=torch.float64)) + 17  # three chunks, the last short
    x = mix.sample(n, t=t, generator=gen)
    x[:50] += 30 * torch.randn(50, d, generator=gen, dtype=torch.float64)
    per_row = torch.full((x.shape[0],), t, dtype=torch.float64)
    for name in ("score", "posterior_mean", "responsibilities"):
        fast, slow = getattr(mix, name)(x, t), getattr(mix, name)(x, per_row)
        scale = slow.norm(dim=1, keepdim=True).clamp_min(1e-300)
        assert fast.shape == slow.shape and torch.isfinite(fast).all(), name
        assert ((fast - slow).norm(dim=1, keepdim=True) <= 1e-10 * scale + 1e-13).all(), name


def test_remembered_time_constants_follow_the_parameters():
    """The per-time constants are reused across calls at one time, but an in-place change of
    the parameters rebuilds them, and under autograd they carry the parameters' gradients."""
    mix = _mixture_of_kind("isotropic", 3, 4, 3.0, seed=5)
    x = mix.sample(50, t=0.2, generator=torch.Generator().manual_seed(0))
    first = mix.score(x, 0.2)
    assert torch.equal(mix.score(x, 0.2), first)
    with torch.no_grad():
        mix.means.add_(1.0)
    fresh = GaussianMixture(mix.weights, mix.means.clone(), mix._evals[:, 0].clone())
    assert torch.allclose(mix.score(x, 0.2), fresh.score(x, 0.2), rtol=1e-13, atol=1e-13)
    assert not torch.allclose(mix.score(x, 0.2), first)
    means = mix.means.clone().requires_grad_(True)
    tracked = GaussianMixture(mix.weights, means, mix._evals[:, 0].clone())
    with torch.no_grad():
        tracked.score(x, 0.2)  # remembered without gradients ...
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(tracked.score(x, 0.2).sum(), means)  # ... rebuilt with them
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("d", [1, 2, 6])
def test_far_points_raise_instead_of_a_nan_score(d):
    """Finite points whose squared distance over the variances overflows raise ValueError on
    every path (one time, one time per row, two components, full covariances), and points just
    inside the stated reach give finite values: nothing returns NaN silently."""
    g = torch.Generator().manual_seed(3)
    mixtures = [lib.GaussianMixture([0.3, 0.7], torch.randn(2, d, generator=g, dtype=torch.float64), 0.04),
                lib.GaussianMixture([0.2, 0.3, 0.5], torch.randn(3, d, generator=g, dtype=torch.float64),
                                    torch.stack([a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)
                                                 for a in torch.randn(3, d, d, generator=g, dtype=torch.float64)]))]
    for mix in mixtures:
        for t in (0.0, 0.3, torch.full((4,), 0.3, dtype=torch.float64)):
            far = torch.zeros(4, d, dtype=torch.float64)
            far[1, 0] = 1e200
            with pytest.raises(ValueError, match="x is out of range") as raised:
                mix.score(far, t)
            match = re.search(r"within ([0-9.e+]+)", str(raised.value))
            inside = torch.zeros(4, d, dtype=torch.float64)
            inside[1, 0] = 0.5 * float(match.group(1))
            for values in (mix.score(inside, t), mix.posterior_mean(inside, t), mix.responsibilities(inside, t)):
                assert torch.isfinite(values).all()


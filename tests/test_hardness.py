"""lib.hardness: quadrature score metrics in 1-D against closed forms, the hardness pair's
formulas, and ERM over a finite class of scores."""

import math

import pytest
import torch
from scipy import stats

import lib
from lib.hardness import (
    finite_class_erm,
    hardness_theory,
    linear_sampler_variance,
    quadrature_1d,
    score_l2_distance_1d,
    score_quantile_error_1d,
)

TIMES = torch.tensor([0.0, 0.05, 0.3, 1.0, 2.5], dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian(mean, var):
    return lib.GaussianMixture([1.0], [mean], [var])


def noised_var(var, t):
    return torch.exp(-2 * t) * var - torch.expm1(-2 * t)


# ----------------------------------------------------------------------- quadrature
def test_quadrature_integrates_moments_of_a_mixture():
    """sum w = 1, sum w x = E x_t, sum w x^2 = E x_t^2, for several times at once."""
    mix = lib.demo_1d()
    x, w = quadrature_1d(mix, TIMES)
    assert x.shape == w.shape == (len(TIMES), 8001)
    a = torch.exp(-TIMES)
    mean = a * mix.mean()[0]
    second = a**2 * mix.second_moment() - torch.expm1(-2 * TIMES)
    torch.testing.assert_close(w.sum(-1), torch.ones_like(TIMES), rtol=0, atol=1e-13)
    torch.testing.assert_close((w * x).sum(-1), mean, rtol=0, atol=1e-12)
    torch.testing.assert_close((w * x * x).sum(-1), second, rtol=1e-12, atol=0)


def test_quadrature_single_time_has_one_axis():
    x, w = quadrature_1d(gaussian(1.0, 2.0), 0.4, points=101)
    assert x.shape == w.shape == (101,)


# ----------------------------------------------------------------------- L2 distance: closed forms
def test_l2_distance_of_shifted_gaussians():
    """p = N(c, v), q = N(-c, v): s_p - s_q = -2 a_t c / v_t everywhere, so the squared
    distance is (2 a_t c / v_t)^2 with v_t = a_t^2 v + s_t^2."""
    c, v = 1.7, 0.6
    got = score_l2_distance_1d(gaussian(c, v), gaussian(-c, v), TIMES)
    want = (2 * torch.exp(-TIMES) * c / noised_var(v, TIMES)) ** 2
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_l2_distance_of_scaled_gaussians():
    """p = N(0, v1), q = N(0, v2): s_p - s_q = x (1/v2_t - 1/v1_t), so E_p = v1_t (1/v2_t - 1/v1_t)^2."""
    v1, v2 = 0.3, 2.0
    got = score_l2_distance_1d(gaussian(0.0, v1), gaussian(0.0, v2), TIMES)
    a1, a2 = noised_var(v1, TIMES), noised_var(v2, TIMES)
    torch.testing.assert_close(got, a1 * (1 / a2 - 1 / a1) ** 2, rtol=1e-11, atol=1e-15)


def test_l2_distance_to_a_score_function_and_to_itself():
    """A callable score: the standard-normal score -x against N(0, v) is (1 - 1/v_t)^2 v_t;
    a mixture against itself is exactly 0."""
    v = 0.25
    got = score_l2_distance_1d(gaussian(0.0, v), lambda x, t: -x, TIMES)
    vt = noised_var(v, TIMES)
    torch.testing.assert_close(got, (1 - 1 / vt) ** 2 * vt, rtol=1e-11, atol=1e-15)
    assert score_l2_distance_1d(lib.demo_1d(), lib.demo_1d(), TIMES).abs().max() == 0


def test_l2_distance_agrees_with_monte_carlo():
    """Against lib.score_l2_error on a three-component mixture (4 standard errors)."""
    mix, other = lib.demo_1d(), lib.GaussianMixture([0.5, 0.5], [-1.0, 1.5], [0.5, 0.3])
    quad = score_l2_distance_1d(mix, other, 0.2).item()
    mc = lib.score_l2_error(other.score, mix, 0.2, 200_000, generator=gen())
    assert abs(quad - mc.value) < 4 * mc.stderr


# ----------------------------------------------------------------------- the hardness pair
@pytest.mark.parametrize("eta", [0.001, 0.01, 0.1, 0.5])
@pytest.mark.parametrize("R", [2.0, 5.0, 10.0, 20.0])
def test_hardness_l2_within_the_proved_bound(eta, R):
    """|E_{p1,t}|s1 - s2|^2 - eta b^2| <= the bound of hardness_theory, at every time."""
    p1, p2 = lib.hardness_pair(eta, R)
    got = score_l2_distance_1d(p1, p2, TIMES)
    th = hardness_theory(eta, R, TIMES)
    assert ((got - th.l2_approx).abs() <= th.l2_error_bound * (1 + 1e-9) + 1e-13).all()


def test_hardness_l2_is_eta_r2_e_minus_2t_for_separated_components():
    """eta = 0.01, R = 10: within 2% of eta R^2 e^{-2t} up to t = 0.5 (the bound says so too)."""
    t = torch.tensor([0.0, 0.1, 0.3, 0.5], dtype=torch.float64)
    p1, p2 = lib.hardness_pair(0.01, 10.0)
    got = score_l2_distance_1d(p1, p2, t)
    want = 0.01 * 100 * torch.exp(-2 * t)
    assert ((got / want - 1).abs() < 0.02).all()
    assert (hardness_theory(0.01, 10.0, t).relative_bound < 0.02).all()


def test_hardness_tv_is_exact_and_matches_quadrature():
    """TV(p1_t, p2_t) = eta (1 - 2 Phi(-a_t R)) against lib.tv_1d; TV(N(0,1), p1) = eta (1 - 2 Phi(-R/2))."""
    for eta, R in [(0.01, 10.0), (0.2, 1.5), (0.05, 4.0)]:
        p1, p2 = lib.hardness_pair(eta, R)
        th = hardness_theory(eta, R, TIMES[:4])
        quad = torch.tensor([lib.tv_1d(p1, p2, t=float(t)) for t in TIMES[:4]], dtype=torch.float64)
        torch.testing.assert_close(quad, th.tv, rtol=1e-7, atol=1e-12)
        main = lib.tv_1d(gaussian(0.0, 1.0), p1)
        assert main == pytest.approx(eta * (1 - 2 * stats.norm.sf(R / 2)), rel=1e-7)


def test_hardness_theory_shapes_and_overlap():
    th = hardness_theory(0.01, 10.0, 0.1)
    assert th.l2_approx.ndim == 0 and th.tv.ndim == 0
    # the overlap is a Bayes error: at most the smaller prior weight
    th2 = hardness_theory(0.3, 0.5, TIMES)
    assert (th2.overlap <= 0.3 + 1e-15).all() and (th2.overlap >= 0).all()


# ----------------------------------------------------------------------- quantile error
@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_quantile_of_scaled_gaussians(delta):
    """p = N(0, v1), q = N(0, v2): |s_p - s_q| = |c x| with c = 1/v2_t - 1/v1_t, so
    D^delta = |c| sqrt(v1_t) Phi^{-1}(1 - delta/2); the grid resolves it to ~1e-4."""
    v1, v2 = 0.5, 1.8
    got = score_quantile_error_1d(gaussian(0.0, v1), gaussian(0.0, v2), TIMES, delta)
    a1, a2 = noised_var(v1, TIMES), noised_var(v2, TIMES)
    want = (1 / a2 - 1 / a1).abs() * a1.sqrt() * stats.norm.ppf(1 - delta / 2)
    torch.testing.assert_close(got, want, rtol=2e-3, atol=1e-12)


def test_quantile_of_a_constant_error_and_several_deltas():
    """A constant error 2 a_t c / v_t (shifted Gaussians) is its own quantile at every delta."""
    deltas = torch.tensor([0.001, 0.3, 0.9], dtype=torch.float64)
    got = score_quantile_error_1d(gaussian(1.0, 1.0), gaussian(-1.0, 1.0), TIMES, deltas)
    assert got.shape == (len(TIMES), 3)
    want = (2 * torch.exp(-TIMES))[:, None].expand(-1, 3)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_hardness_quantile_collapses_above_eta():
    """Main-component score -x against p1: D^delta ~ a_t R below eta, ~ 0 at 2 eta."""
    p1, _ = lib.hardness_pair(0.01, 10.0)
    d = score_quantile_error_1d(p1, lambda x, t: -x, TIMES[:3], torch.tensor([0.005, 0.02]))
    torch.testing.assert_close(d[:, 0], 10 * torch.exp(-TIMES[:3]), rtol=1e-3, atol=0)
    assert (d[:, 1] < 1e-3).all()
    one = score_quantile_error_1d(p1, lambda x, t: -x, 0.05, 0.005)
    assert one.ndim == 0 and one.item() == pytest.approx(d[1, 0].item(), rel=1e-12)


# ----------------------------------------------------------------------- ERM over a finite class
def test_erm_losses_equal_lib_dsm_loss():
    """Each entry of losses is lib.dsm_loss of that hypothesis on that prefix with the same noise."""
    p1, p2 = lib.hardness_pair(0.2, 3.0)
    x0 = p1.sample(5 * 40, generator=gen()).reshape(5, 40)
    z = torch.randn(5, 40, generator=gen(1), dtype=torch.float64)
    res = finite_class_erm([p1, p2, lambda x, t: -x], x0, 0.3, z=z, sizes=[1, 7, 40])
    assert res.losses.shape == (3, 5, 3) and res.choice.shape == (5, 3)
    for h, f in enumerate([p1.score, p2.score, lambda x, t: -x]):
        for i in range(5):
            for j, n in enumerate([1, 7, 40]):
                want = lib.dsm_loss(f, x0[i, :n, None], 0.3, z[i, :n, None]).item()
                assert res.losses[h, i, j].item() == pytest.approx(want, rel=1e-12)
    torch.testing.assert_close(res.choice, res.losses.argmin(0))


def test_erm_finds_the_truth_with_enough_data():
    """Against globally wrong hypotheses (shifted by 1), the true score wins at m = 2000 in
    every trial: its expected margin is 1 per sample, the loss noise ~ sqrt(C_t / m)."""
    mix = lib.demo_1d()
    x0 = mix.sample(30 * 2000, generator=gen()).reshape(30, 2000)
    hyp = [lambda x, t: mix.score(x, t) + 1.0, mix, lambda x, t: mix.score(x, t) - 1.0]
    res = finite_class_erm(hyp, x0, 0.5, generator=gen(2))
    assert (res.choice == 1).all()
    assert res.frequency(1).item() == 1.0


def test_erm_picks_the_wrong_member_of_the_pair_half_the_time_without_minority_points():
    """Given samples from the main component only, the class {s1, s2} is symmetric under
    (x, z) -> (-x, -z): P(choose s2) = 1/2. Clopper-Pearson 99.9% interval over 4000 trials."""
    p1, p2 = lib.hardness_pair(0.01, 10.0)
    x0 = torch.randn(4000, 20, generator=gen(5), dtype=torch.float64)
    res = finite_class_erm([p1, p2], x0, 0.1, generator=gen(6))
    k = int((res.choice[:, 0] == 1).sum())
    ci = stats.binomtest(k, 4000).proportion_ci(confidence_level=0.999)
    assert ci.low < 0.5 < ci.high


def test_erm_breaks_exact_ties_uniformly():
    """Two copies of one hypothesis tie exactly on every trial: each is chosen about half the
    time (Clopper-Pearson 99.9%). So do s1 and s2 of the pair on one main-component point,
    where they often agree to the last bit, with the main score -x as a third member."""
    p1, p2 = lib.hardness_pair(0.01, 10.0)
    x0 = torch.randn(4000, 1, generator=gen(7), dtype=torch.float64)
    res = finite_class_erm([p1, p1], x0, 0.1, generator=gen(8))
    k = int((res.choice == 1).sum())
    ci = stats.binomtest(k, 4000).proportion_ci(confidence_level=0.999)
    assert ci.low < 0.5 < ci.high
    res3 = finite_class_erm([p1, p2, lambda x, t: -x], x0, 0.1, generator=gen(9))
    k1, k2 = int((res3.choice == 0).sum()), int((res3.choice == 1).sum())
    ci = stats.binomtest(k1, k1 + k2).proportion_ci(confidence_level=0.999)
    assert ci.low < 0.5 < ci.high


def test_erm_prefix_sizes_are_nested():
    """sizes=[m] on the first n columns equals sizes=[n] on all columns."""
    p1, p2 = lib.hardness_pair(0.1, 4.0)
    x0 = p1.sample(3 * 30, generator=gen()).reshape(3, 30, 1)
    z = torch.randn(3, 30, 1, generator=gen(1), dtype=torch.float64)
    full = finite_class_erm([p1, p2], x0, 0.2, z=z, sizes=torch.tensor([10, 30]))
    part = finite_class_erm([p1, p2], x0[:, :10], 0.2, z=z[:, :10])
    torch.testing.assert_close(full.losses[..., :1], part.losses)


# ----------------------------------------------------------------------- bad inputs
def test_bad_inputs():
    p1, p2 = lib.hardness_pair(0.01, 10.0)
    two_d = lib.demo_2d()
    with pytest.raises(TypeError, match="p must be a GaussianMixture"):
        quadrature_1d("p1", 0.1)
    with pytest.raises(ValueError, match="one-dimensional"):
        quadrature_1d(two_d, 0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        quadrature_1d(p1, -0.1)
    with pytest.raises(ValueError, match="points must be >= 3"):
        quadrature_1d(p1, 0.1, points=2)
    with pytest.raises(ValueError, match="width"):
        quadrature_1d(p1, 0.1, width=0.0)
    with pytest.raises(TypeError, match="q must be callable"):
        score_l2_distance_1d(p1, 3.0, 0.1)
    with pytest.raises(ValueError, match="q must be one-dimensional"):
        score_l2_distance_1d(p1, two_d, 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        score_l2_distance_1d(p1, lambda x, t: x / 0.0, 0.1)
    with pytest.raises(ValueError, match="t must be a scalar"):
        score_l2_distance_1d(p1, p2, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="delta"):
        score_quantile_error_1d(p1, p2, 0.1, 1.0)
    with pytest.raises(ValueError, match="eta must lie in"):
        hardness_theory(0.6, 10.0, 0.1)
    with pytest.raises(ValueError, match="R must lie in"):
        hardness_theory(0.01, 0.0, 0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        hardness_theory(0.01, 10.0, -1.0)
    x0 = torch.randn(4, 10, dtype=torch.float64)
    with pytest.raises(TypeError, match="hypotheses must be a non-empty list"):
        finite_class_erm([], x0, 0.1)
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be callable"):
        finite_class_erm([p1, "s2"], x0, 0.1)
    with pytest.raises(ValueError, match="x0 must have shape"):
        finite_class_erm([p1], torch.randn(10), 0.1)
    with pytest.raises(ValueError, match="t must lie in"):
        finite_class_erm([p1], x0, 0.0)
    with pytest.raises(ValueError, match="z must have the shape"):
        finite_class_erm([p1], x0, 0.1, z=torch.randn(4, 9))
    with pytest.raises(ValueError, match="sizes must hold integers"):
        finite_class_erm([p1], x0, 0.1, sizes=[0, 5])
    with pytest.raises(ValueError, match="sizes must hold integers"):
        finite_class_erm([p1], x0, 0.1, sizes=[11])
    with pytest.raises(ValueError, match="non-finite"):
        finite_class_erm([lambda x, t: x / 0.0], x0, 0.1)
    with pytest.raises(TypeError, match="generator"):
        finite_class_erm([p1], x0, 0.1, generator=1)
    res = finite_class_erm([p1, p2], x0, 0.1)
    with pytest.raises(ValueError, match="hypothesis must be"):
        res.frequency(2)
    assert math.isfinite(res.losses.sum().item())


def test_linear_sampler_variance_matches_the_sampler():
    """lib.sample with the score -x from N(0, 1): sample variance within 4 standard errors v sqrt(2/n)."""
    v = linear_sampler_variance(10.0, 1e-3, 60)
    n = 40_000
    out = lib.sample(lambda x, t: -x, n, 1, T=10.0, gamma=1e-3, n_steps=60, generator=torch.Generator().manual_seed(2))
    assert out.var().item() == pytest.approx(v, abs=4 * v * math.sqrt(2 / n))
    assert v > 1.0  # the discretisation widens the output
    with pytest.raises(ValueError):
        linear_sampler_variance(10.0, 1e-3, 0)

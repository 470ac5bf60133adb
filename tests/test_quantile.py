"""lib.quantile: the D^delta estimator, its confidence
interval, per-time profiles, the score corruptions and the Kolmogorov distance."""

import math

import pytest
import torch
from scipy import stats

import lib
from lib.quantile import (
    DriftCorruption,
    LocalizedCorruption,
    kolmogorov_distance_1d,
    quantile_band,
    quantile_profile,
    tail_threshold,
    weighted_quantile_error,
)

STD_NORMAL = lib.GaussianMixture([1.0], [0.0])  # N(0, 1): q_t = N(0, 1) for every t


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def abs_normal_quantile(delta):
    """The (1 - delta)-quantile of |N(0,1)|: Phi^{-1}(1 - delta/2)."""
    return stats.norm.ppf(1 - delta / 2)


# ----------------------------------------------------------------------- the estimator
def test_band_agrees_with_metrics_quantile_error():
    e = torch.randn(3, 1000, generator=gen(), dtype=torch.float64).abs()
    deltas = [0.01, 0.05, 0.3]
    band = quantile_band(e, torch.tensor(deltas, dtype=torch.float64), 0.9)
    assert band.value.shape == (3, 3)
    for i in range(3):
        for j, d in enumerate(deltas):
            q = lib.quantile_error(e[i], d, 0.9)
            assert (band.value[i, j].item(), band.lower[i, j].item(), band.upper[i, j].item()) == (
                q.value, q.lower, q.upper)


@pytest.mark.parametrize("n", [7, 10, 100, 1000, 4321])
@pytest.mark.parametrize("delta", [0.001, 0.01, 0.05, 0.1, 0.29, 0.5, 0.7, 0.9])
def test_band_value_satisfies_the_definition(n, delta):
    """Empirical D^delta = smallest sample value e with #(errors > e) <= delta n."""
    e = torch.rand(n, generator=gen(n), dtype=torch.float64)
    v = quantile_band(e, delta).value.item()
    assert (e > v).sum().item() <= delta * n + 1e-9
    below = e[e < v]
    if below.numel():
        assert (e > below.max()).sum().item() > delta * n


def test_quantile_error_index_rounding():
    """(1 - 0.7) * 10 is 3.0000000000000004 in floating point: the rank must still be 3."""
    e = torch.arange(1.0, 11.0, dtype=torch.float64)  # 1..10; D^0.7 = 3 (7 values exceed it)
    assert lib.quantile_error(e, 0.7).value == 3.0


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_known_quantile_of_abs_normal(delta):
    """|N(0,1)|: the estimate lies within 4 asymptotic SE, sqrt(delta(1-delta)/n) / f(xi), of
    Phi^{-1}(1 - delta/2), and the 99.9% interval holds it."""
    n = 200_000
    e = torch.randn(n, generator=gen(1), dtype=torch.float64).abs()
    xi = abs_normal_quantile(delta)
    band = quantile_band(e, delta, 0.999)
    se = math.sqrt(delta * (1 - delta) / n) / (2 * stats.norm.pdf(xi))
    assert abs(band.value.item() - xi) < 4 * se
    assert band.lower.item() <= xi <= band.upper.item()
    q = lib.quantile_error(e, delta, 0.999)
    assert abs(q.value - xi) < 4 * se and q.lower <= xi <= q.upper


def exact_coverage(n, delta, confidence):
    """[e_(l), e_(u)] covers xi iff l <= #(errors <= xi) <= u - 1, #(...) ~ Binomial(n, 1 - delta)."""
    tail = (1 - confidence) / 2
    lo = int(stats.binom.ppf(tail, n, 1 - delta))
    hi = int(stats.binom.ppf(1 - tail, n, 1 - delta)) + 1
    return stats.binom.cdf(hi - 1, n, 1 - delta) - stats.binom.cdf(lo - 1, n, 1 - delta)


@pytest.mark.parametrize("n,delta,confidence", [(200, 0.1, 0.9), (500, 0.02, 0.95), (60, 0.25, 0.8)])
def test_interval_coverage_by_simulation(n, delta, confidence):
    """2000 repetitions: coverage >= nominal - 3 binomial SE (the interval is conservative),
    and within 3 SE of the exact coverage implied by the binomial argument."""
    reps = 2000
    e = torch.randn(reps, n, generator=gen(2), dtype=torch.float64).abs()
    xi = abs_normal_quantile(delta)
    band = quantile_band(e, delta, confidence)
    covered = ((band.lower <= xi) & (xi <= band.upper)).double().mean().item()
    se = math.sqrt(confidence * (1 - confidence) / reps)
    assert covered >= confidence - 3 * se
    exact = exact_coverage(n, delta, confidence)
    assert exact >= confidence
    assert abs(covered - exact) < 3 * math.sqrt(exact * (1 - exact) / reps) + 1e-12


def test_band_interval_ends_beyond_the_sample_are_infinite():
    band = quantile_band(torch.rand(5, generator=gen(), dtype=torch.float64), 0.01, 0.99)
    assert math.isinf(band.upper.item())


def test_weighted_quantile_matches_the_definition():
    """Random discrete laws: the answer e has mass(err > e) <= delta, and every smaller error
    value has mass above it > delta."""
    g = gen(3)
    for _ in range(20):
        e = torch.rand(50, generator=g, dtype=torch.float64)
        w = torch.rand(50, generator=g, dtype=torch.float64)
        w = w / w.sum()
        delta = torch.rand(1, generator=g).item() * 0.98 + 0.01
        v = weighted_quantile_error(e, w, delta).item()
        assert w[e > v].sum() <= delta + 1e-12
        below = e[e < v]
        if below.numel():
            assert w[e > below.max()].sum() > delta


def test_weighted_quantile_equal_weights_agrees_with_the_sample_estimator():
    e = torch.rand(4, 333, generator=gen(1), dtype=torch.float64)
    for delta in (0.01, 0.2, 0.7):
        got = weighted_quantile_error(e, torch.ones(333, dtype=torch.float64), delta)
        want = quantile_band(e, delta).value
        torch.testing.assert_close(got, want, rtol=0, atol=0)



def test_weighted_quantile_bad_inputs():
    with pytest.raises(ValueError, match="delta"):
        weighted_quantile_error(torch.rand(5), torch.ones(5), 0.0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        weighted_quantile_error(torch.rand(5), -torch.ones(5), 0.1)
    with pytest.raises(ValueError, match="do not broadcast"):
        weighted_quantile_error(torch.rand(5), torch.ones(4), 0.1)
    with pytest.raises(ValueError, match="errors must have shape"):
        weighted_quantile_error(torch.tensor(1.0), torch.ones(1), 0.1)


# ----------------------------------------------------------------------- per-time profile
def test_profile_of_a_known_error_distribution():
    """q_t = N(0,1) and f = -2x: the error |x| ~ |N(0,1)| at every t, so D^delta = Phi^{-1}(1 - delta/2)
    and the squared L2 error is 1, for all times at once."""
    times = torch.tensor([0.01, 0.3, 2.0], dtype=torch.float64)
    deltas = torch.tensor([0.02, 0.2], dtype=torch.float64)
    n = 100_000
    prof = quantile_profile(lambda x, t: -2 * x, STD_NORMAL, times, deltas, n, confidence=0.999, generator=gen(4))
    assert prof.value.shape == (3, 2)
    for j, d in enumerate(deltas.tolist()):
        xi = abs_normal_quantile(d)
        se = math.sqrt(d * (1 - d) / n) / (2 * stats.norm.pdf(xi))
        assert (prof.value[:, j] - xi).abs().max() < 4 * se
        assert ((prof.lower[:, j] <= xi) & (xi <= prof.upper[:, j])).all()
    assert ((prof.l2 - 1).abs() < 4 * prof.l2_se).all()
    assert torch.allclose(prof.sigma, torch.sqrt(1 - torch.exp(-2 * times)))


def test_profile_of_a_constant_offset():
    """f = s + c: the error is c at every point, so D^delta = c for every delta."""
    mix = lib.demo_1d()
    c = 0.7
    prof = quantile_profile(lambda x, t: mix.score(x, t) + c, mix, torch.tensor([0.05, 0.5]),
                            torch.tensor([0.01, 0.3, 0.9], dtype=torch.float64), 2000, generator=gen())
    assert torch.allclose(prof.value, torch.full_like(prof.value, c), atol=1e-12)
    assert torch.allclose(prof.rms, torch.full_like(prof.rms, c), atol=1e-12)


def test_profile_of_the_exact_score_is_zero():
    mix = lib.demo_2d()
    prof = quantile_profile(mix.score, mix, torch.tensor([0.01, 1.0]), 0.05, 500, generator=gen())
    assert prof.value.abs().max() == 0 and prof.l2.max() == 0


# ----------------------------------------------------------------------- regions and corruptions
def test_tail_threshold_has_the_mass_in_1d():
    mix = lib.demo_1d()
    times = torch.tensor([0.001, 0.1, 1.0, 5.0], dtype=torch.float64)
    for mass in (0.001, 0.01, 0.3):
        u = tail_threshold(mix, times, mass)
        surv = torch.stack([1 - mix.cdf(u[i : i + 1], float(t))[0] for i, t in enumerate(times)])
        assert torch.allclose(surv, torch.full_like(surv, mass), atol=1e-10)
    assert tail_threshold(mix, 0.1, 0.2).ndim == 0


def test_tail_threshold_along_a_direction_in_2d():
    """Monte Carlo: the fraction of q_t beyond u_t along v is the mass (4 binomial SE)."""
    mix = lib.demo_2d()
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    mass, t, n = 0.05, 0.2, 200_000
    u = tail_threshold(mix, t, mass, direction=v)
    x = mix.sample(n, t=t, generator=gen(5))
    frac = (x @ (v / v.norm()) > u).double().mean().item()
    assert abs(frac - mass) < 4 * math.sqrt(mass * (1 - mass) / n)


def test_drift_corruption_has_its_exact_errors():
    mix = lib.demo_1d()
    c = 0.3
    corr = DriftCorruption(mix, c)
    times = torch.tensor([0.001, 0.1, 1.0], dtype=torch.float64)
    s = torch.sqrt(1 - torch.exp(-2 * times))
    assert torch.allclose(corr.l2(times), (c / s) ** 2)
    prof = quantile_profile(corr, mix, times, torch.tensor([0.001, 0.5], dtype=torch.float64), 1000, generator=gen())
    assert torch.allclose(prof.value, (c / s)[:, None].expand(3, 2), rtol=1e-10)
    assert torch.allclose(corr.quantile(times, 0.3), c / s)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    assert torch.allclose(corr(x, 0.1) - mix.score(x, 0.1), torch.full_like(x, c / s[1].item()))


def test_localized_corruption_has_the_same_l2_and_zero_quantile_error():
    """err = c/(s_t sqrt(mass)) on q_t-mass `mass`: L2 = c^2/s_t^2 (4 MC SE), D^delta = 0 above
    the mass and c/(s_t sqrt(mass)) below, the fraction of points hit = mass (binomial)."""
    mix = lib.demo_1d()
    c, mass, n = 0.2, 0.02, 100_000
    corr = LocalizedCorruption(mix, c, mass)
    times = torch.tensor([0.002, 0.1, 1.0], dtype=torch.float64)
    s = torch.sqrt(1 - torch.exp(-2 * times))
    prof = quantile_profile(corr, mix, times, torch.tensor([0.005, 0.05], dtype=torch.float64), n, generator=gen(6))
    assert ((prof.l2 - (c / s) ** 2).abs() < 4 * prof.l2_se).all()
    assert torch.allclose(prof.value[:, 0], c / (s * math.sqrt(mass)))
    assert (prof.value[:, 1] == 0).all()
    assert torch.allclose(corr.quantile(times, 0.005), c / (s * math.sqrt(mass)))
    assert (corr.quantile(times, 0.05) == 0).all()
    x = mix.sample(n, t=0.1, generator=gen(7))
    hit = (corr.error(x, 0.1) != 0).double().mean().item()
    assert abs(hit - mass) < 4 * math.sqrt(mass * (1 - mass) / n)


def test_localized_corruption_direction_and_per_row_times():
    mix = lib.demo_1d()
    inward, outward = LocalizedCorruption(mix, 0.1, 0.1), LocalizedCorruption(mix, 0.1, 0.1, push="outward")
    x = torch.tensor([[10.0], [-10.0]], dtype=torch.float64)
    assert inward.error(x, 0.5)[0, 0] < 0 and outward.error(x, 0.5)[0, 0] > 0
    assert inward.error(x, 0.5)[1, 0] == 0
    xs = mix.sample(50, t=0.3, generator=gen())
    ts = torch.linspace(0.01, 2.0, 50, dtype=torch.float64)
    rowwise = torch.cat([inward(xs[i : i + 1], ts[i]) for i in range(50)])
    assert torch.allclose(inward(xs, ts), rowwise)


def test_corruption_of_another_base_score():
    """With base = -x the corrupted score is -x plus the error, whatever the mixture's score."""
    mix = lib.demo_1d()
    corr = DriftCorruption(mix, 0.5, base=lambda x, t: -x)
    x = torch.zeros(3, 1, dtype=torch.float64)
    assert torch.allclose(corr(x, 1.0), torch.full_like(x, 0.5 / math.sqrt(1 - math.exp(-2))))


# ----------------------------------------------------------------------- Kolmogorov distance
def test_kolmogorov_distance_is_the_supremum():
    """Exact sup over x agrees with a fine-grid brute force (which can only be smaller)."""
    mix = lib.demo_1d()
    x = mix.sample(300, t=0.1, generator=gen(8))
    ks = kolmogorov_distance_1d(x, mix, t=0.1)
    grid = torch.sort(torch.cat([x[:, 0], x[:, 0] - 1e-9])).values
    emp = torch.searchsorted(torch.sort(x[:, 0]).values, grid, right=True).double() / 300
    brute = (emp - mix.cdf(grid, 0.1)).abs().max().item()
    assert brute <= ks + 1e-12 and ks - brute < 1e-6
    assert ks < 1.63 / math.sqrt(300)  # 1% critical value of the Kolmogorov distribution


def test_kolmogorov_distance_of_a_shift():
    """N(h, 1) samples against N(0, 1): sup |Phi(x - h) - Phi(x)| = 2 Phi(h/2) - 1."""
    n, h = 200_000, 0.5
    x = torch.randn(n, 1, generator=gen(9), dtype=torch.float64) + h
    ks = kolmogorov_distance_1d(x, STD_NORMAL)
    assert abs(ks - (2 * stats.norm.cdf(h / 2) - 1)) < 1.63 / math.sqrt(n)


# ----------------------------------------------------------------------- bad inputs
def test_bad_inputs():
    mix = lib.demo_1d()
    with pytest.raises(ValueError, match="delta"):
        quantile_band(torch.rand(10), 1.5)
    with pytest.raises(ValueError, match="delta"):
        quantile_band(torch.rand(10), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="errors"):
        quantile_band(torch.rand(1), 0.1)
    with pytest.raises(ValueError, match="confidence"):
        quantile_band(torch.rand(10), 0.1, 1.0)
    with pytest.raises(TypeError, match="score_fn"):
        quantile_profile("not a score", mix, [0.1], 0.1)
    with pytest.raises(TypeError, match="mixture"):
        quantile_profile(mix.score, "mix", [0.1], 0.1)
    with pytest.raises(ValueError, match="times"):
        quantile_profile(mix.score, mix, [0.0, 0.1], 0.1)
    with pytest.raises(ValueError, match="n"):
        quantile_profile(mix.score, mix, [0.1], 0.1, n=1)
    with pytest.raises(ValueError, match="mass"):
        tail_threshold(mix, 0.1, 1.0)
    with pytest.raises(ValueError, match="direction"):
        tail_threshold(mix, 0.1, 0.1, direction=[0.0])
    with pytest.raises(TypeError, match="mixture"):
        tail_threshold("mix", 0.1, 0.1)
    with pytest.raises(ValueError, match="mass"):
        LocalizedCorruption(mix, 0.1, 0.0)
    with pytest.raises(ValueError, match="push"):
        LocalizedCorruption(mix, 0.1, 0.1, push="sideways")
    with pytest.raises(ValueError, match="size"):
        DriftCorruption(mix, -0.1)
    with pytest.raises(TypeError, match="base"):
        DriftCorruption(mix, 0.1, base=3)
    with pytest.raises(TypeError, match="mixture"):
        DriftCorruption("mix", 0.1)
    with pytest.raises(ValueError, match="delta"):
        DriftCorruption(mix, 0.1).quantile(0.1, 0.0)
    with pytest.raises(ValueError, match="delta"):
        LocalizedCorruption(mix, 0.1, 0.1).quantile(0.1, 1.0)
    with pytest.raises(ValueError, match="t"):
        DriftCorruption(mix, 0.1)(torch.zeros(2, 1), 0.0)
    with pytest.raises(ValueError, match="mixture"):
        kolmogorov_distance_1d(torch.zeros(5, 2), lib.demo_2d())
    with pytest.raises(ValueError, match="samples"):
        kolmogorov_distance_1d(torch.zeros(5, 2), mix)

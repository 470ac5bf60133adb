"""lib.badsets: quantile-accurate scores with arbitrary errors on bad sets, and the path KL."""

import math

import pytest
import torch

import lib
from lib.badsets import (
    GEOMETRIES,
    BadSetScores,
    _score_1d,
    drift_path_kl,
    mixture_icdf_1d,
    random_bad_set_scores,
)
from lib.hardness import quadrature_1d
from lib.quantile import weighted_quantile_error


@pytest.fixture(scope="module")
def mix():
    return lib.demo_1d()


def test_icdf_inverts_the_distribution_function(mix):
    t = torch.tensor([1e-3, 0.1, 1.0, 3.0], dtype=torch.float64)
    u = torch.tensor([[1e-6], [0.01], [0.5], [0.999]], dtype=torch.float64)
    x = mixture_icdf_1d(mix, t, u)
    for i in range(u.shape[0]):
        for j, tj in enumerate(t.tolist()):
            assert mix.cdf(x[i, j:j + 1], tj).item() == pytest.approx(u[i, 0].item(), rel=1e-9, abs=1e-15)


def test_icdf_rejects_bad_levels(mix):
    with pytest.raises(ValueError, match="u must lie"):
        mixture_icdf_1d(mix, torch.tensor(0.5), torch.tensor(1.0))
    with pytest.raises(ValueError, match="one-dimensional"):
        mixture_icdf_1d(lib.demo_2d(), torch.tensor(0.5), torch.tensor(0.5))


def test_fast_score_equals_the_mixture_score(mix):
    y = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    for t in (1e-3, 0.3, 2.0):
        want = mix.score(y.reshape(-1, 1), t).reshape(500, 3)
        assert torch.allclose(_score_1d(mix, y, torch.tensor(t, dtype=torch.float64)), want, atol=1e-10)


@pytest.fixture(scope="module")
def ensemble(mix):
    times = lib.time_grid(3.0, 1e-3, 40)[:-1]
    delta = torch.tensor([1e-3, 5e-3, 2e-2, 1e-2] * 4, dtype=torch.float64)
    scores, kinds = random_bad_set_scores(mix, times, delta, 0.1, generator=torch.Generator().manual_seed(1))
    return times, delta, scores, kinds


def test_bad_sets_have_mass_delta_and_the_right_shape(mix, ensemble):
    times, delta, sc, kinds = ensemble
    for k in (0, 17, 39):
        t = times[k].item()
        mass = mix.cdf(sc.hi[:, k].clamp(-1e3, 1e3), t) - mix.cdf(sc.lo[:, k].clamp(-1e3, 1e3), t)
        assert torch.allclose(mass, delta, rtol=1e-8, atol=1e-14)
    geom = kinds["geometry"]
    assert torch.isinf(sc.hi[geom == GEOMETRIES.index("upper tail")]).all()
    assert torch.isinf(sc.lo[geom == GEOMETRIES.index("lower tail")]).all()
    fixed = geom == GEOMETRIES.index("fixed band")
    if fixed.any():  # one quantile range for every step
        u = mix.cdf(sc.lo[fixed, 0], times[0].item())
        assert torch.allclose(mix.cdf(sc.lo[fixed, 20], times[20].item()), u, rtol=1e-8)
    assert (sc.c <= 0.1).all() and (sc.big >= 1).all() and (sc.big <= 100).all()


def test_every_score_meets_the_quantile_condition(mix, ensemble):
    """Quadrature check of D^delta_{q_t}(f, score) = c / s_t when the bad set holds mass delta: just above
    delta the quantile skips the bad set, just below it sees the large error (the grid's nodes
    carry the bad set's mass only to about 10%, hence the factors 1.2 and 0.8)."""
    times, delta, sc, _ = ensemble
    for k in (0, 25, 39):
        t = times[k]
        x, w = quadrature_1d(mix, t.item(), points=20001)
        y = x[:, None].expand(-1, len(delta)).contiguous()
        err = (sc(y, t) - mix.score(x[:, None], t.item())).abs().T  # (J, points)
        above = torch.stack([weighted_quantile_error(err[j], w, 1.2 * delta[j].item()) for j in range(len(delta))])
        below = torch.stack([weighted_quantile_error(err[j], w, 0.8 * delta[j].item()) for j in range(len(delta))])
        assert (above <= sc.c / lib.sigma(t) * (1 + 1e-9) + 1e-12).all()
        assert torch.allclose(below, torch.maximum(sc.big, sc.c) / lib.sigma(t), rtol=1e-9)
        assert torch.allclose(err.max(1).values, torch.maximum(sc.big, sc.c) / lib.sigma(t), rtol=1e-9)


def test_visits_are_recorded_and_repair_removes_the_bad_sets(mix, ensemble):
    times, delta, sc, _ = ensemble
    y = torch.stack([0.5 * (sc.lo[:, 5].clamp(-50) + sc.hi[:, 5].clamp(max=50))] * 2)  # inside each set
    y = torch.where(torch.isfinite(sc.lo[:, 5]) & torch.isfinite(sc.hi[:, 5]), y,
                    torch.where(torch.isinf(sc.hi[:, 5]), sc.lo[:, 5] + 0.1, sc.hi[:, 5] - 0.1))
    sc.reset(2)
    bad = sc(y, times[5])
    assert sc.visited.all()
    sc.repaired = True
    good = sc(y, times[5])
    sc.repaired = False
    base = mix.score(y.reshape(-1, 1), times[5].item()).reshape(y.shape)
    assert torch.allclose((good - base).abs(), (sc.c / lib.sigma(times[5])).expand_as(y), rtol=1e-9)
    assert torch.allclose((bad - base).abs(), (sc.big / lib.sigma(times[5])).expand_as(y), rtol=1e-9)


def test_scores_reject_unknown_times_and_shapes(ensemble):
    times, _, sc, _ = ensemble
    with pytest.raises(ValueError, match="not one of the sampler times"):
        sc(torch.zeros(3, sc.lo.shape[0], dtype=torch.float64), 0.123456)
    with pytest.raises(ValueError, match="columns"):
        sc(torch.zeros(3, 2, dtype=torch.float64), times[0])


def test_random_ensemble_validates_its_arguments(mix):
    times = lib.time_grid(3.0, 1e-3, 10)[:-1]
    with pytest.raises(ValueError, match="delta"):
        random_bad_set_scores(mix, times, torch.tensor([0.6]), 0.1)
    with pytest.raises(ValueError, match="geometries"):
        random_bad_set_scores(mix, times, torch.tensor([0.01]), 0.1, geometries=("nowhere",))
    with pytest.raises(ValueError, match="big_range"):
        random_bad_set_scores(mix, times, torch.tensor([0.01]), 0.1, big_range=(0.0, 1.0))
    assert isinstance(random_bad_set_scores(mix, times, torch.tensor([0.01]), 0.1)[0], BadSetScores)


def test_drift_path_kl_is_the_gaussian_chain_rule_and_tends_to_girsanov():
    times = lib.time_grid(3.0, 1e-3, 50)
    h = times[:-1] - times[1:]
    direct = ((2 * torch.expm1(h)) ** 2 / (2 * torch.expm1(2 * h)) / lib.sigma(times[:-1]) ** 2).sum()
    kl = drift_path_kl(times, torch.tensor(0.3, dtype=torch.float64)).item()
    assert kl == pytest.approx(0.09 * direct.item(), rel=1e-12)
    fine = lib.time_grid(3.0, 1e-3, 20000)
    girsanov = 0.5 * (math.log(math.expm1(6.0)) - math.log(math.expm1(2e-3)))  # int dt / s_t^2
    assert drift_path_kl(fine, torch.tensor(1.0)).item() == pytest.approx(girsanov, rel=2e-3)
    with pytest.raises(ValueError, match="decrease"):
        drift_path_kl(torch.tensor([0.1, 0.2]), torch.tensor(1.0))

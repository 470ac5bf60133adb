"""lib.bounds: the published sample-count formulas, checked against hand computation."""

import math

import pytest
import torch

from lib import bounds


def test_each_formula_at_a_hand_computed_point():
    eps, gamma, d, P, D = 0.1, 1e-3, 2.0, 1000.0, 3.0
    L = math.log(1 / gamma)
    assert bounds.oko2023(eps, d).item() == pytest.approx(eps ** -d, rel=1e-12)
    assert bounds.chen2023(eps, gamma, d).item() == pytest.approx((eps * gamma) ** -d, rel=1e-12)
    assert bounds.block2020(eps, gamma, d, P, D, R=2.0, m2=0.5).item() == pytest.approx(
        d**2.5 * 2.0**3 * P**D * math.sqrt(D) / (gamma**3 * eps**2 * 0.5**3), rel=1e-12)
    assert bounds.gupta2024(eps, gamma, d, P, D).item() == pytest.approx(d**2 * P * D * L**3 / eps**3, rel=1e-12)
    assert bounds.gaur2025(eps).item() == pytest.approx(eps**-6, rel=1e-12)
    assert bounds.gaur2025(eps, version="v2").item() == pytest.approx(eps**-4, rel=1e-12)


def test_log10_form_agrees_and_does_not_overflow():
    c = bounds.sample_counts(0.2, 0.01, 3, 500, 4)
    lg = bounds.sample_counts(0.2, 0.01, 3, 500, 4, log10=True)
    for key in bounds.BOUNDS:
        assert lg[key].item() == pytest.approx(math.log10(c[key].item()), rel=1e-12)
    huge = bounds.oko2023(1e-3, 400, log10=True)
    assert huge.item() == pytest.approx(1200.0) and math.isfinite(huge.item())


def test_vectorised_and_broadcast():
    eps = torch.logspace(-3, -1, 5, dtype=torch.float64)
    gamma = torch.tensor([1e-4, 1e-2], dtype=torch.float64)[:, None]
    out = bounds.sample_counts(eps, gamma, 2, 100, 3, log10=True)
    for v in out.values():
        assert v.shape == (2, 5)
    # eps exponents: slope of log10 m against log10 eps at fixed gamma
    for key, k in [("block2020", 2), ("gupta2024", 3), ("gaur2025_v1", 6), ("gaur2025_v2", 4)]:
        slope = (out[key][0, -1] - out[key][0, 0]) / (torch.log10(eps[-1]) - torch.log10(eps[0]))
        assert slope.item() == pytest.approx(-k, rel=1e-12)


def test_noise_scale_and_depth_dependence():
    """BMR20 pays sigma_min^-3 and P^D; GPPX log^3(1/sigma_min) and P D."""
    g1, g2 = 1e-2, 1e-4
    r_block = bounds.block2020(0.1, g2, 2, 100, 3) / bounds.block2020(0.1, g1, 2, 100, 3)
    r_gupta = bounds.gupta2024(0.1, g2, 2, 100, 3) / bounds.gupta2024(0.1, g1, 2, 100, 3)
    assert r_block.item() == pytest.approx(1e6, rel=1e-9)
    assert r_gupta.item() == pytest.approx(8.0, rel=1e-9)
    d_block = bounds.block2020(0.1, g1, 2, 100, 6) / bounds.block2020(0.1, g1, 2, 100, 3)
    d_gupta = bounds.gupta2024(0.1, g1, 2, 100, 6) / bounds.gupta2024(0.1, g1, 2, 100, 3)
    assert d_block.item() == pytest.approx(100.0**3 * math.sqrt(2), rel=1e-9)
    assert d_gupta.item() == pytest.approx(2.0, rel=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="eps"):
        bounds.oko2023(1.5, 2)
    with pytest.raises(ValueError, match="eps"):
        bounds.gaur2025(0.0)
    with pytest.raises(ValueError, match="sigma_min"):
        bounds.chen2023(0.1, -1e-3, 2)
    with pytest.raises(ValueError, match="d must be >= 1"):
        bounds.gupta2024(0.1, 1e-3, 0.5, 10, 2)
    with pytest.raises(ValueError, match="P"):
        bounds.block2020(0.1, 1e-3, 2, 0, 2)
    with pytest.raises(ValueError, match="m2"):
        bounds.block2020(0.1, 1e-3, 2, 10, 2, m2=0.0)
    with pytest.raises(ValueError, match="D"):
        bounds.sample_counts(0.1, 1e-3, 2, 10, 0)
    with pytest.raises(ValueError, match="version"):
        bounds.gaur2025(0.1, version="v3")
    with pytest.raises(TypeError, match="eps"):
        bounds.oko2023("small", 2)
    with pytest.raises(ValueError, match="sigma_min"):
        bounds.gupta2024(0.1, 2.0, 2, 10, 2)


def test_each_eps_is_labelled_by_what_it_measures():
    """Gaur et al.'s eps is a score-estimation accuracy; OAS23, CHZW23 and GPPX bound the
    output's TV; BMR20 is labelled as GPPX's table compares it."""
    for key, row in bounds.BOUNDS.items():
        if key.startswith("gaur"):
            assert row.eps_measures == "score-estimation error"
        elif key == "block2020":
            assert "GPPX" in row.eps_measures
        else:
            assert row.eps_measures == "TV error of the output"


def test_book_time_converts_to_the_sources_noise_scale():
    """The book's stopping time gamma = 1e-3 is the noise scale s_gamma = sqrt(1 - e^{-0.002}):
    BMR20's factor sigma_min^-3 is then about 1.1e4, not gamma^-3 = 1e9."""
    import lib

    s = lib.sigma(1e-3).item()
    assert s == pytest.approx(math.sqrt(-math.expm1(-2e-3)), rel=1e-14)
    ratio = bounds.block2020(0.1, s, 2, 100, 3) / bounds.block2020(0.1, 0.5, 2, 100, 3)
    assert ratio.item() == pytest.approx((0.5 / s) ** 3, rel=1e-12)
    assert lib.time_for_sigma(s) == pytest.approx(1e-3, rel=1e-10)

"""Chapter "Quantile score error" (book/quantile_error.md), run in quick mode; its glued numbers checked."""

import math

import pytest
from notebooks import run_chapter

pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("quantile_error", quick=True)


def test_every_figure_is_drawn(chapter):
    """delta -> D curve, the corruption sweep, the widget's static view, trained networks,
    the per-time profile."""
    assert chapter.figures >= 5


def test_hardness_pair_quantile_curve(chapter):
    """Main-component score -x against p1: below delta = eta the error is the rare component's
    a_t R (posterior weight 1 - O(e^{-R^2/8}) on its bulk); at delta ~ 2 eta the quantile sits
    in the main component's tail, where the error is a_t R r_2(x) with r_2 < 1e-8."""
    assert chapter["qe_delta_half"] < chapter["qe_eta"] < 2 * chapter["qe_eta"] <= chapter["qe_delta_2eta"]
    assert chapter["qe_d_half_ratio_min"] > 0.99
    assert chapter["qe_d_half_ratio_max"] <= 1 + 1e-9
    assert chapter["qe_d_2eta_max"] < 1e-2
    assert chapter["qe_markov_ok"] == 1


def test_hardness_pair_l2_error_is_eta_r2(chapter):
    """E|(-x) - s_1|^2 at t = 0.1 is eta R^2 e^{-2t} up to exponentially small terms: 4 MC SE."""
    assert abs(chapter["qe_l2_t01"] - chapter["qe_l2_t01_theory"]) < 4 * chapter["qe_l2_t01_se"]


def test_two_corruptions_have_equal_l2(chapter):
    """Both are built with squared L2 error c^2/s_t^2: Monte Carlo within 4 SE for the localized
    one; the drift's error is constant, so its estimate is exact."""
    exact = chapter["qe_l2_exact"]
    assert exact == pytest.approx(chapter["qe_c_show"] ** 2 / (1 - math.exp(-0.2)), rel=1e-12)
    assert abs(chapter["qe_l2_loc"] - exact) < 4 * chapter["qe_l2_loc_se"]
    assert chapter["qe_l2_drift"] == pytest.approx(exact, rel=1e-9)


def test_quantile_error_separates_what_l2_does_not(chapter):
    """Equal eps_L2, but eps_q = 0 for the localized corruption (mass 0.01 < delta) and exactly c
    for the drift. The localized eps_L2 is Monte Carlo: at each of 8 times about 0.01 n of n = 2000
    points carry the error, so s_t^2 L2_t has relative SD sqrt(0.99 / 20) / sqrt(8) ~ 0.079 after
    averaging and eps_L2 (its root) about 0.039: 4 SD is 16%."""
    c = chapter["qe_c_show"]
    assert chapter["qe_epsl2_drift"] == pytest.approx(c, rel=1e-9)
    assert chapter["qe_epsl2_loc"] == pytest.approx(c, rel=0.16)
    assert chapter["qe_epsq_loc"] == 0
    assert chapter["qe_epsq_drift"] == pytest.approx(c, rel=1e-9)


def test_sample_quality_follows_the_quantile_error(chapter):
    """Kolmogorov distance (n samples): the 99.9% critical value of an exact sample is 1.95/sqrt(n).
    The localized corruption moves at most about twice its mass; the drift moves far more than
    the noise; their difference exceeds two critical values."""
    crit = 1.95 / math.sqrt(chapter["qe_n_sample"])
    assert chapter["qe_ks_exact"] < crit
    assert chapter["qe_ks_loc"] - chapter["qe_ks_exact"] < 2 * 0.01
    assert chapter["qe_ks_drift"] - chapter["qe_ks_loc"] > 2 * crit
    assert chapter["qe_w1_drift"] > chapter["qe_w1_loc"]


def test_rank_correlation_favours_the_quantile_error(chapter):
    """Across the sweep, Spearman(KS, eps_q) > Spearman(KS, eps_L2) with the paired-bootstrap
    95% interval of the difference above zero."""
    assert chapter["qe_n_runs"] >= 20
    assert chapter["qe_rho_q"] > chapter["qe_rho_l2"]
    assert 0 < chapter["qe_rho_gap_lo"] < chapter["qe_rho_gap_hi"]


def test_trained_networks_quantile_error_falls_faster_than_l2(chapter):
    assert chapter["qe3_eps_q_small"] > chapter["qe3_eps_q_big"]
    assert chapter["qe3_ks_small"] > chapter["qe3_ks_big"]
    assert chapter["qe3_q_factor"] > chapter["qe3_l2_factor"]
    assert chapter["qe_p_none"] == pytest.approx((1 - 0.002) ** chapter["qe_m_big"], rel=1e-12)


def test_profile_needs_a_smaller_eps_than_rms(chapter):
    """D^delta <= RMS / sqrt(delta) only; here the quantile allowance is met with a smaller eps."""
    assert 0 < chapter["qe_eps_needed"] < chapter["qe_eps_needed_rms"]


def test_solution_cell_separates_p1_and_p2(chapter):
    (cell,) = chapter.cells_tagged("solution")
    assert 'lib.record("qe_ex3_q"' in cell.source
    assert chapter["qe_ex3_q"] < 1e-2
    assert abs(chapter["qe_ex3_l2"] - chapter["qe_ex3_l2_theory"]) < 4 * chapter["qe_ex3_l2_se"]


@pytest.mark.full
def test_full_settings():
    full = run_chapter("quantile_error", quick=False)
    assert abs(full["qe_l2_t01"] - full["qe_l2_t01_theory"]) < 4 * full["qe_l2_t01_se"]
    assert abs(full["qe_l2_loc"] - full["qe_l2_exact"]) < 4 * full["qe_l2_loc_se"]
    assert full["qe_ks_drift"] - full["qe_ks_loc"] > 2 * 1.95 / math.sqrt(full["qe_n_sample"])
    assert full["qe_rho_gap_lo"] > 0
    assert full["qe3_q_factor"] > full["qe3_l2_factor"]

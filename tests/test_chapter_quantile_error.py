"""Chapter "Quantile score error" (book/quantile_error.md), run in quick mode; its glued numbers
checked against the mathematics they illustrate, with tolerances from the sampling statistics."""

import math

import numpy as np
import pytest
from notebooks import run_chapter
from scipy import integrate, stats

import lib
from lib.hardness import score_l2_distance_1d

pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("quantile_error", quick=True)


def ks_critical(n, alpha=1e-3):
    """Kolmogorov's limit law: P(sqrt(n) KS > 1.95) ~ 1e-3."""
    return stats.kstwobign.ppf(1 - alpha) / math.sqrt(n)


def test_every_figure_is_drawn(chapter):
    """delta -> D curve, the ensemble against the theorem, the widget's static view."""
    assert chapter.figures >= 3


def test_main_component_score_error_is_a_t_R_below_eta(chapter):
    """Below delta = eta the quantile sits in the minority's bulk, where r_1 = 1 - O(e^{-b^2/8}):
    D^delta = a_t R r_1 within 1% of a_t R (and never above it, since r_1 <= 1)."""
    assert chapter["qe_delta_half"] < chapter["qe_eta"] < 2 * chapter["qe_eta"] <= chapter["qe_delta_2eta"]
    assert chapter["qe_d_half_ratio_min"] > 0.99
    assert chapter["qe_d_half_ratio_max"] <= 1 + 1e-9


def test_quantile_error_collapses_above_eta(chapter):
    """At delta ~ 2 eta the quadrature value is tiny against a_t R >= 6, and the order-statistic
    estimate from N_CURVE points agrees with it to a factor 2 (the quantile level is known to
    about sqrt(delta / n) ~ 3.5% relative, and the error changes by less than 2x over that range)."""
    quad, est = chapter["qe_d_2eta_quad_max"], chapter["qe_d_2eta_max"]
    assert quad < 1e-3
    assert 0.5 * quad < est < 2 * quad


def test_l2_error_of_main_score_matches_quadrature(chapter):
    """The Monte-Carlo L2 error at t = 0.1 agrees with an independent quadrature to 4 standard errors."""
    p1, _ = lib.hardness_pair(chapter["qe_eta"], chapter["qe_R"])
    quad = score_l2_distance_1d(p1, lambda x, t: -x, 0.1).item()
    assert abs(chapter["qe_l2_t01"] - quad) < 4 * chapter["qe_l2_t01_se"]


def _output_variance(T, gamma, n):
    times = np.logspace(math.log10(T), math.log10(gamma), n + 1)
    v = 1.0
    for h in times[:-1] - times[1:]:
        v = (2 - math.exp(h)) ** 2 * v + math.expm1(2 * h)
    return v


def test_a_mode_lighter_than_delta_is_forgiven(chapter):
    """-x meets the condition at eta = delta / 5 and not at 2 eta; its output N(0, v) is at the TV
    distance an independent scipy quadrature gives, far inside the theorem's scale."""
    eps, eta, R, gamma = chapter["qe_eps"], chapter["qe_drop_eta"], chapter["qe_R"], 1e-3
    assert chapter["qe_drop_delta"] == pytest.approx(eps / chapter["qe_n_steps"], rel=1e-12)
    assert eta < chapter["qe_drop_delta"]
    assert chapter["qe_drop_eps_needed"] < eps < chapter["qe_drop_eps_needed_double"]
    v = _output_variance(chapter["qe_T"], gamma, chapter["qe_n_steps"])
    assert chapter["qe_drop_v"] == pytest.approx(v, rel=1e-10)
    b = R * math.exp(-gamma)
    pdf = lambda x: (1 - eta) * stats.norm.pdf(x) + eta * stats.norm.pdf(x + b)  # noqa: E731
    tv = 0.5 * integrate.quad(lambda x: abs(stats.norm.pdf(x, scale=math.sqrt(v)) - pdf(x)), -30, 30,
                              points=[-b, 0], limit=400)[0]
    assert chapter["qe_drop_tv"] == pytest.approx(tv, rel=1e-3, abs=1e-7)
    assert chapter["qe_drop_tv_cont"] == pytest.approx(eta * (1 - 2 * stats.norm.sf(b / 2)), rel=1e-6)
    assert chapter["qe_drop_tv"] < 0.1 * chapter["qe_drop_bound"]


def test_no_corrupted_score_breaks_the_theorem(chapter):
    """Every draw of the ensemble meets the condition, and its measured distance stays below
    eps sqrt(log(1/gamma)) + N delta; 'no draw comes near' means below 3/4 of it. The proof's own
    upper bound (visits + sqrt(KL/2)) stays below the theorem's scale as the text says."""
    assert chapter["qe_worst_ks"] <= chapter["qe_worst_bound"]
    assert chapter["qe_ratio_max"] < 0.75
    # each replicate (n/2 paths) on its own: KS noise sqrt(2) larger, still below the bound
    assert max(chapter["qe_rep_ratio_max_a"], chapter["qe_rep_ratio_max_b"]) < 1
    assert chapter["qe_ratio_max"] == pytest.approx(chapter["qe_worst_ks"] / chapter["qe_worst_bound"], rel=1e-9)
    assert chapter["qe_ks_max_regime"] < chapter["qe_bound_min"]
    assert chapter["qe_upper_over_bound_max"] < 1
    # the proof's inequality, draw by draw: KS(out_j) <= P(visit) + sqrt(KL_j / 2) + KS(exact), up to
    # the KS noise of the two samples and the binomial noise of the visit fraction (4 SE <= 2/sqrt n)
    n = chapter["qe_n_paths"]
    assert chapter["qe_ks_over_coupling_max"] < 2 * ks_critical(n) + 2 / math.sqrt(n)
    assert chapter["qe_bound_min"] >= chapter["qe_eps"] * math.sqrt(math.log(1e3))


def test_exact_score_sampler_is_at_noise_level(chapter):
    n = chapter["qe_n_paths"]
    assert chapter["qe_ks_exact"] < ks_critical(n)
    assert chapter["qe_ks_noise"] == pytest.approx(0.87 / math.sqrt(n), rel=1e-12)


def test_visits_use_the_union_bound_as_the_text_says(chapter):
    """No draw's visit fraction exceeds N delta by more than 4 binomial standard errors (the
    maximum over at most 36 draws: about 1e-3 each); tails use well under half of the union
    bound, moving bands most of it."""
    assert chapter["qe_visit_excess_z_max"] < 4
    assert chapter["qe_visit_ratio_max"] < 1.5
    # replicates agree within binomial noise: max over <= 36 draws of |Z| stays below 4
    assert chapter["qe_rep_visit_z_max"] < 4
    assert chapter["qe_visit_ratio_tail_median"] < 0.5
    assert chapter["qe_visit_ratio_moving_median"] > 0.6


def test_outward_adversaries_lose_the_mass_that_enters(chapter):
    """Tails of mass delta = eps/N pushed outward with M = 100: a path in the tail at small t moves
    by ~2hM/s_t per step, so nearly all that enter are lost; the Kolmogorov distance is then the
    lost fraction up to the noise of n exact samples. Their visits obey the union bound (4 SE),
    and the L2-based bound sqrt(KL_L2 / 2) exceeds 1 while the measured distance is small."""
    n, nd = chapter["qe_n_paths"], chapter["qe_adv_n_delta"]
    assert chapter["qe_adv_visit_max"] < nd + 4 * math.sqrt(nd * (1 - nd) / n)
    assert chapter["qe_adv_visit_min"] > 0
    assert chapter["qe_adv_lost_over_visit_min"] > 0.9
    assert chapter["qe_adv_ks_minus_lost_max"] < ks_critical(n)
    assert chapter["qe_adv_l2_bound"] > 1 > 5 * chapter["qe_adv_ks_max"]
    assert chapter["qe_lost_inward_max"] < 0.01


def test_coarse_sampler_breaks_the_union_bound_on_tails(chapter):
    """With T = 10 and 100 log-spaced steps the first step maps variance 1 to
    (2 - e^h)^2 + e^{2h} - 1 ~ 5, and tails are visited well above N delta."""
    h = 10.0 * (1 - 10 ** (-4 / 100))
    assert chapter["qe_coarse_v_first"] == pytest.approx((2 - math.exp(h)) ** 2 + math.expm1(2 * h), rel=1e-9)
    assert chapter["qe_coarse_n_delta"] == pytest.approx(chapter["qe_eps"])
    assert 1.5 < chapter["qe_coarse_ratio_min"] <= chapter["qe_coarse_ratio_median"]


def test_outside_the_regime_the_push_direction_decides(chapter):
    """80 steps, tail mass 0.01 (N beta = 0.8): the outward push is far worse than the inward one
    (more than two 99.9% KS critical values apart) and not better than the drift beyond noise."""
    crit = ks_critical(chapter["qe_eq_n"])
    assert chapter["qe_eq_ks_outward"] - chapter["qe_eq_ks_inward"] > 2 * crit
    assert chapter["qe_eq_ks_outward"] > chapter["qe_eq_ks_drift"] - crit
    assert chapter["qe_eq_ks_inward"] < crit


def test_solution_dropped_mode_threshold(chapter):
    """Quadrature (seed-free): the smallest delta is several times eta, bound at an intermediate time."""
    cells = chapter.cells_tagged("solution")
    assert any('lib.record("qe_ex3_delta_min"' in c.source for c in cells)
    assert 3 * chapter["qe_eta"] < chapter["qe_ex3_delta_min"] < 10 * chapter["qe_eta"]
    assert chapter["qe_ex3_grid_step"] == pytest.approx(10 ** (1.5 / 39), rel=1e-9)
    assert 2 < chapter["qe_ex3_b_bind"] < 4
    assert chapter["qe_ex3_b_bind"] == pytest.approx(chapter["qe_R"] * math.exp(-chapter["qe_ex3_t_bind"]))


def test_solution_outward_push_moves_mass_far(chapter):
    """The outward draw that lost most: W1 several times that of the exact score's output."""
    assert chapter["qe_ex4_lost"] > 0
    # the lost mass sits where q_gamma has none, so it counts in full in the Kolmogorov distance
    # (the draw's error off the bad set can add more)
    assert chapter["qe_ex4_ks_worst"] > chapter["qe_ex4_lost"] - ks_critical(chapter["qe_n_paths"])
    assert chapter["qe_ex4_w1_worst"] > 5 * chapter["qe_ex4_w1_exact"]


def test_gradable_exercises_pass(chapter):
    chapter.assert_checks_pass()


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.full
def test_conclusions_hold_for_other_seeds(seed):
    other = run_chapter("quantile_error", quick=True, parameters={"SEED": seed})
    assert other["qe_ratio_max"] < 0.75
    assert other["qe_visit_excess_z_max"] < 4
    assert other["qe_visit_ratio_tail_median"] < 0.5
    assert other["qe_coarse_ratio_min"] > 1.5


@pytest.mark.full
def test_full_settings():
    full = run_chapter("quantile_error", quick=False)
    assert full["qe_ratio_max"] < 0.75
    assert full["qe_upper_over_bound_max"] < 1
    assert full["qe_ks_exact"] < ks_critical(full["qe_n_paths"])
    assert full["qe_visit_excess_z_max"] < 4
    assert full["qe_visit_ratio_tail_median"] < 0.5 < 0.6 < full["qe_visit_ratio_moving_median"]
    assert full["qe_coarse_ratio_min"] > 1.5


def test_nothing_reaches_stderr(chapter):
    """No warning or progress bar is printed on the chapter's page."""
    assert not chapter.stderr, chapter.stderr

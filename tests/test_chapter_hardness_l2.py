"""Chapter "The hardness of L2 score estimation" (book/hardness_l2.md), run in quick mode;
its glued numbers checked against the mathematics they illustrate."""

import math

import pytest
from notebooks import run_chapter
from scipy import stats

pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("hardness_l2", quick=True)


def dkw(n, alpha=1e-3):
    """Dvoretzky-Kiefer-Wolfowitz (Massart): P(sup|F_n - F| > e) <= 2 exp(-2 n e^2)."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def test_every_figure_is_drawn(chapter):
    """Pair, widget's static view, deviation vs b, no-minority check, Figure 1, network errors,
    sampler histograms, R sweep."""
    assert chapter.figures >= 8


def test_l2_distance_is_eta_r2_e_minus_2t_at_the_glued_points(chapter):
    """Proposition: quadrature within 2% of eta R^2 e^{-2t}, and within the proved bound."""
    for i in range(chapter["hd_n_rows"]):
        eta, r, t = chapter[f"hd_row{i}_eta"], chapter[f"hd_row{i}_R"], chapter[f"hd_row{i}_t"]
        want = eta * r**2 * math.exp(-2 * t)
        assert chapter[f"hd_row{i}_approx"] == pytest.approx(want, rel=1e-12)
        assert abs(chapter[f"hd_row{i}_quad"] / want - 1) < 0.02
        assert abs(chapter[f"hd_row{i}_rel"]) <= chapter[f"hd_row{i}_bound"]
    assert chapter["hd_bound_holds"] == 1


def test_tv_is_eta(chapter):
    """TV(p1_t, p2_t) = eta (1 - 2 Phi(-a_t R)): quadrature agrees with the closed form, and
    both are within a few percent of eta at the glued points."""
    for i in range(chapter["hd_n_rows"]):
        eta, r, t = chapter[f"hd_row{i}_eta"], chapter[f"hd_row{i}_R"], chapter[f"hd_row{i}_t"]
        exact = eta * (1 - 2 * stats.norm.sf(r * math.exp(-t)))
        assert chapter[f"hd_row{i}_tv_exact"] == pytest.approx(exact, rel=1e-10)
        assert chapter[f"hd_row{i}_tv"] == pytest.approx(exact, rel=1e-6)
        assert abs(chapter[f"hd_row{i}_tv_ratio"] - 1) < 0.03


def test_no_minority_frequencies_inside_clopper_pearson(chapter):
    """Each Monte-Carlo frequency of 'no minority point among m' has a 99.9% Clopper-Pearson
    interval containing (1 - eta)^m; the chapter counts them, here one is recomputed."""
    assert chapter["hd_nm_inside"] == chapter["hd_nm_count"]
    n = chapter["hd_nm_trials"]
    k = round(chapter["hd_nm_freq100"] * n)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.999)
    assert ci.low == pytest.approx(chapter["hd_nm_lo100"], rel=1e-9)
    assert ci.low <= (1 - 0.01) ** 100 <= ci.high


def test_finite_class_erm_fails_in_l2_not_in_quantile(chapter):
    """At m = 0.1/eta the L2 failure rate of ERM over {s1, s2, -x} is at least the proposition's
    (1 - eta)^m / 2 (up to 3.3 binomial standard errors); the quantile failure rate is 0
    at every m; with m = several / eta the L2 failure is gone."""
    n = chapter["hd_erm_trials"]
    bound = chapter["hd_erm_bound_small"]
    assert chapter["hd_erm_m_small"] * chapter["hd_f1_eta"] == pytest.approx(0.1)
    assert chapter["hd_erm_l2_small"] > bound - 3.3 * math.sqrt(bound * (1 - bound) / n)
    assert chapter["hd_erm_q_max"] == 0
    assert chapter["hd_erm_l2_small"] - chapter["hd_erm_q_small"] > 0.3
    assert chapter["hd_erm_l2_big"] < 0.05
    # the wrong hypotheses: L2 error ~ eta b^2, quantile error far below the threshold
    assert chapter["hd_l2_s2"] == pytest.approx(chapter["hd_f1_l2_scale"], rel=0.05)
    assert chapter["hd_l2_main"] == pytest.approx(chapter["hd_f1_l2_scale"], rel=0.05)
    assert max(chapter["hd_q_s2"], chapter["hd_q_main"], chapter["hd_q_s2_quad"]) < 0.2 * chapter["hd_thr_q"]


def test_networks_fail_in_l2_far_more_often_than_in_quantile(chapter):
    """Networks trained on m in {0.1, 0.3} / eta samples: L2 failure far above quantile failure;
    without a minority point in the data a network always fails in L2."""
    assert chapter["hd_net_l2_small"] >= 0.6
    assert chapter["hd_net_l2_small"] - chapter["hd_net_q_small"] >= 0.4
    assert chapter["hd_net_fail_unseen"] >= 0.9
    assert chapter["hd_net_fail_seen"] <= 0.5
    assert chapter["hd_thr_l2"] == pytest.approx(chapter["hd_f1_l2_scale"] / 4, rel=1e-12)


def test_main_component_sampler_is_eta_close_in_tv(chapter):
    """The -x sampler's exact output law N(0, v) is within a few percent of eta of p1 in TV;
    the sample-based Kolmogorov distance agrees with the exact one to within DKW at 99.9%."""
    eta = 0.01
    assert chapter["hd_tv_main_closed"] == pytest.approx(eta * (1 - 2 * stats.norm.sf(5.0)), rel=1e-10)
    assert abs(chapter["hd_tv_main_exact"] / eta - 1) < 0.05
    assert chapter["hd_ks_main_exact"] <= chapter["hd_tv_main_exact"] + 1e-9
    assert abs(chapter["hd_ks_main"] - chapter["hd_ks_main_exact"]) < dkw(chapter["hd_n_sample"])
    # the L2 error of -x at t = 0.1 is eta R^2 e^{-0.2}, about 80 times the TV it costs
    assert chapter["hd_l2_main_t01"] == pytest.approx(eta * 100 * math.exp(-0.2), rel=0.01)


def test_l2_grows_with_r_while_tv_stays_at_eta(chapter):
    assert chapter["hd_sweep_l2_max"] > 100 * chapter["hd_sweep_tv_max"]
    assert chapter["hd_sweep_pinsker_max"] > 1  # the L2-based bound is vacuous there
    assert chapter["hd_sweep_tv_max"] < 0.0105
    assert chapter["hd_sweep_tv_min_above5"] > 0.0095


def test_solution_cell_hedging_score(chapter):
    (cell,) = chapter.cells_tagged("solution")
    assert "lib.record(\"hd_ex3_l2_p1\"" in cell.source
    # the hedge is L2-close to both scores: far below eta b^2
    assert chapter["hd_ex3_l2_p1"] < 1e-3 * chapter["hd_ex3_scale"]
    assert chapter["hd_ex3_l2_p2"] == pytest.approx(chapter["hd_ex3_l2_p1"], rel=1e-6)  # mirror images
    assert 0 < chapter["hd_ex3_sym_freq"] < 1
    assert chapter["hd_ex3_wrong_freq"] > 0.1


@pytest.mark.full
def test_full_settings():
    full = run_chapter("hardness_l2", quick=False)
    assert full.figures >= 8
    assert full["hd_nm_inside"] == full["hd_nm_count"]
    bound, n = full["hd_erm_bound_small"], full["hd_erm_trials"]
    assert full["hd_erm_l2_small"] > bound - 3.3 * math.sqrt(bound * (1 - bound) / n)
    assert full["hd_erm_q_max"] == 0
    assert full["hd_net_l2_small"] - full["hd_net_q_small"] >= 0.5
    assert full["hd_net_fail_unseen"] >= 0.9
    assert abs(full["hd_ks_main"] - full["hd_ks_main_exact"]) < dkw(full["hd_n_sample"])

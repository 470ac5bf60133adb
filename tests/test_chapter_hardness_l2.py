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


def binom_se(p, n):
    return math.sqrt(p * (1 - p) / n)


def test_every_figure_is_drawn(chapter):
    """Pair, widget's static view, deviation vs b, no-minority check, Figure 1, dichotomy,
    sampler histograms, R sweep."""
    assert chapter.figures >= 8


def test_l2_distance_is_eta_b2_within_the_proved_bound(chapter):
    """Proposition: quadrature within 2% of eta R^2 e^{-2t} at every row, and within the bound;
    the deviation is negative in the table but positive at eta = 0.4, R = 1, as the text says."""
    for i in range(chapter["hd_n_rows"]):
        assert abs(chapter[f"hd_row{i}_quad"] / chapter[f"hd_row{i}_approx"] - 1) < 0.02
        assert abs(chapter[f"hd_row{i}_rel"]) <= chapter[f"hd_row{i}_bound"]
    assert chapter["hd_bound_holds"] == 1
    assert chapter["hd_max_rel"] < chapter["hd_max_rel_bound"]
    i = next(i for i in range(chapter["hd_n_rows"]) if abs(chapter[f"hd_row{i}_rel"]) == chapter["hd_max_rel"])
    assert (chapter["hd_max_rel_eta"], chapter["hd_max_rel_t"]) == (chapter[f"hd_row{i}_eta"], chapter[f"hd_row{i}_t"])
    assert chapter["hd_max_rel_b"] == pytest.approx(chapter[f"hd_row{i}_R"] * math.exp(-chapter[f"hd_row{i}_t"]))
    assert chapter["hd_max_rel_signed_max"] < 0
    assert chapter["hd_pos_rel"] > 0.05


def test_tv_quadrature_matches_the_exact_formula(chapter):
    """lib.tv_1d (quadrature) against TV = eta (1 - 2 Phi(-a_t R)); at row 1 (b ~ 9) that is eta
    to six digits."""
    for i in range(chapter["hd_n_rows"]):
        eta, r, t = chapter[f"hd_row{i}_eta"], chapter[f"hd_row{i}_R"], chapter[f"hd_row{i}_t"]
        exact = eta * (1 - 2 * stats.norm.sf(r * math.exp(-t)))
        assert chapter[f"hd_row{i}_tv"] == pytest.approx(exact, rel=1e-6)
    assert abs(chapter["hd_row1_tv"] / chapter["hd_row1_eta"] - 1) < 5e-6


def test_no_minority_frequencies_inside_clopper_pearson(chapter):
    """lib's mixture draws the minority at rate eta: every 99.9% interval contains (1 - eta)^m."""
    assert chapter["hd_nm_inside"] == chapter["hd_nm_count"]
    n = chapter["hd_nm_trials"]
    assert abs(chapter["hd_nm_freq100"] - 0.99**100) < 3.3 * binom_se(0.99**100, n)
    assert chapter["hd_nm_theory100"] == pytest.approx(0.99**100)
    assert chapter["hd_nm_theory300"] == pytest.approx(0.99**300)
    assert chapter["hd_nm_lo100"] < chapter["hd_nm_freq100"] < chapter["hd_nm_hi100"]


def test_figure1_design_uses_one_eps_and_delta_from_eps(chapter):
    """Thresholds eps^2/s_t^2 and eps/s_t with the same eps; delta = eps/100; R such that the
    wrong scores' L2 error (quadrature) is L2_OVER = 2 times the allowance."""
    eps, t = chapter["hd_f1_eps"], chapter["hd_f1_t"]
    s2 = -math.expm1(-2 * t)
    assert chapter["hd_thr_l2"] == pytest.approx(eps**2 / s2, rel=1e-12)
    assert chapter["hd_thr_q"] == pytest.approx(eps / math.sqrt(s2), rel=1e-12)
    assert chapter["hd_f1_delta"] == pytest.approx(eps / 100)
    assert chapter["hd_f1_eta"] < chapter["hd_f1_delta"]
    assert chapter["hd_f1_inv_eta"] == pytest.approx(1 / chapter["hd_f1_eta"])
    b = chapter["hd_f1_R"] * math.exp(-t)
    assert chapter["hd_f1_b"] == pytest.approx(b)
    assert chapter["hd_f1_l2_scale"] == pytest.approx(chapter["hd_f1_eta"] * b * b)
    assert chapter["hd_f1_l2_scale"] == pytest.approx(2 * chapter["hd_thr_l2"], rel=1e-9)
    # quadrature: the proposition's eta b^2 to within its bound (b ~ 28: exponentially small)
    for key in ("hd_l2_s2", "hd_l2_main"):
        assert chapter[key] == pytest.approx(2 * chapter["hd_thr_l2"], rel=1e-3)
    # the wrong scores pass the quantile criterion: delta > eta skips the minority
    assert max(chapter["hd_q_s2"], chapter["hd_q_main"]) < 0.01 * chapter["hd_thr_q"]


def test_finite_class_erm_fails_in_l2_as_the_proposition_says(chapter):
    """At m = 0.1/eta the L2 failure rate over {g1, g2, -x} is at least (1 - eta)^m / 2 (3.3 binomial
    SE), over the pair alone it is (1 - eta)^m / 2 within 3.3 SE (a minority point, once present,
    decides); at m = 5/eta it is below (1 - eta)^m + 3.3 SE."""
    n, bound = chapter["hd_erm_trials"], chapter["hd_erm_bound_small"]
    assert chapter["hd_erm_m_small"] * chapter["hd_f1_eta"] == pytest.approx(0.1)
    assert chapter["hd_erm_l2_small"] > bound - 3.3 * binom_se(bound, n)
    assert abs(chapter["hd_erm2_l2_small"] - bound) < 3.3 * binom_se(bound, n)
    p_big = (1 - chapter["hd_f1_eta"]) ** chapter["hd_erm_mmax"]
    assert chapter["hd_erm_l2_big"] < p_big + 3.3 * math.sqrt(max(p_big, 1 / n) / n)


def test_networks_fail_in_l2_when_unseen_and_not_in_quantile(chapter):
    """Without a minority point a network fails in L2 (>= 0.9); with one it mostly does not;
    at m in {0.1, 0.3}/eta L2 failure is far above quantile failure; with m = 10 the networks
    fail in the quantile measure more often than at m in {100, 300}; at m = 10^4 (every set holds
    ~10 minority points) in neither."""
    assert chapter["hd_net_fail_unseen"] >= 0.9
    assert chapter["hd_net_fail_seen"] <= 0.5
    assert chapter["hd_net_l2_small"] >= 0.5
    assert chapter["hd_net_l2_small"] - chapter["hd_net_q_small"] >= 0.4
    assert chapter["hd_net_q_10"] >= chapter["hd_net_q_small"]
    assert chapter["hd_net_q_big"] <= 0.25 and chapter["hd_net_l2_big"] <= 0.25
    assert chapter["hd_net_n_seen"] + chapter["hd_net_n_unseen"] == chapter["hd_n_nets"]


def test_quantile_estimator_intervals_cover_the_quadrature_value(chapter):
    """95% intervals: with n networks the coverage is at least 0.8 unless P(Bin(n, .95) < .8 n) ~ 1e-3."""
    n = chapter["hd_n_nets"]
    assert chapter["hd_net_q_in_band"] >= 0.95 - 3.3 * binom_se(0.95, n)


def test_dichotomy_l2_pays_one_over_eta_quantile_saturates(chapter):
    """L2: failure ~ (1 - eta)^m, so m_needed ~ log(1/alpha)/eta = 2.3/eta; the grid's ratio (<= 1.25)
    and the binomial noise of 100 trials at rate alpha (SE 0.03, i.e. about a factor 1.5 in m) give
    [1.2, 4.4]. Quantile: at most one sample for eta < delta, at most 4.4/delta overall."""
    alpha = chapter["hd_dich_alpha"]
    lo, hi = math.log(1 / alpha) / 1.9, math.log(1 / alpha) * 1.9
    assert lo < chapter["hd_dich_l2_eta_m_min"] <= chapter["hd_dich_l2_eta_m_max"] < hi
    # by the class's design (said so in the text): nothing to learn below delta, and above it the
    # wrong members fail both criteria, so the two needs coincide
    assert chapter["hd_dich_q_below_delta_max"] <= 1
    assert chapter["hd_dich_same_above_delta"] == 1
    assert 0.2 < chapter["hd_dich_q_delta_m_max"] < hi
    assert chapter["hd_dich_q_max"] == pytest.approx(chapter["hd_dich_q_delta_m_max"] / chapter["hd_f1_delta"])
    assert chapter["hd_dich_l2_max"] > chapter["hd_dich_q_max"]
    assert chapter["hd_dich_eta_min"] < chapter["hd_f1_delta"] < chapter["hd_dich_eta_max"]
    # the lemma's guarantee (kappa >= s_t b / 2) is far above what the three-member class needs
    s_t = math.sqrt(-math.expm1(-2 * chapter["hd_f1_t"]))
    assert chapter["hd_lemma_kappa"] == pytest.approx(s_t * chapter["hd_f1_b"] / 2, rel=1e-9)
    assert chapter["hd_lemma_m"] > 1000 * chapter["hd_dich_q_max"]


def test_samplers_with_wrong_scores_are_eta_close(chapter):
    """The exact score's sampler is at the noise level (DKW, 99.9%); g2 puts the minority on the
    wrong side, KS(q1, q2) = eta (1 - 2 Phi(-b)) ~ eta, so its KS is eta within 2 DKW; -x gives
    N(0, v) whose exact KS matches the sample KS within DKW, and whose exact TV is eta within 5%."""
    eta, n = 0.01, chapter["hd_n_sample"]
    assert chapter["hd_ks_s1"] < dkw(n)
    assert chapter["hd_ks_floor"] == pytest.approx(0.87 / math.sqrt(n))
    # g2 puts the minority on the wrong side. Its output law is the mirror image of the exact
    # score's (g2(x) = -g1(-x), symmetric start), so its mass beyond +R/2 matches the exact run's
    # beyond -R/2 within binomial noise (two independent runs, 4 SE), and both are eta up to the
    # sampler's discretisation (measured ~1.17 eta at 200 steps); q_{1,gamma} puts ~3e-7 on the
    # wrong side, so at most a couple of the n outputs may land there by chance
    right2, left1 = chapter["hd_right_s2"], chapter["hd_left_s1"]
    assert abs(right2 - left1) < 4 * math.sqrt(2 * eta / n)
    for p in (right2, left1):
        assert 0.5 * eta < p < 1.6 * eta
    assert max(chapter["hd_left_s2"], chapter["hd_right_s1"]) <= 2 / n
    # its Kolmogorov distance is eta plus the discretisation error the exact run shows, within DKW
    assert abs(chapter["hd_ks_s2"] - eta) < chapter["hd_ks_s1"] + dkw(n)
    assert abs(chapter["hd_ks_main"] - chapter["hd_ks_main_exact"]) < dkw(n)
    assert abs(chapter["hd_tv_main_exact"] / eta - 1) < 0.05
    assert chapter["hd_tv_main_closed"] == pytest.approx(eta, rel=1e-5)
    assert chapter["hd_var_main"] == pytest.approx(chapter["hd_v_out"], abs=4 * chapter["hd_v_out"] * math.sqrt(2 / n))
    # the L2 error of -x at t = 0.1 is eta R^2 e^{-0.2} (quadrature), 80 times the TV it costs
    assert chapter["hd_l2_main_t01"] == pytest.approx(eta * 100 * math.exp(-0.2), rel=0.01)
    # "within 5% while a_t R >~ 5.5 (t <~ 0.6)": at t = 0.6 both wrong scores' L2 errors are within 5%
    # below eta b^2 (quadrature, 1e-12 accurate; independent scipy value 0.9649 for -x, 0.9782 for g2)
    assert 0.95 < chapter["hd_sep_ratio_t06"] < 1


def test_l2_grows_with_r_while_tv_stays_at_eta(chapter):
    assert chapter["hd_sweep_l2_max"] > 100 * chapter["hd_sweep_tv_max"]
    assert chapter["hd_sweep_pinsker_max"] > 1  # the L2-based bound is vacuous there
    assert chapter["hd_sweep_tv_max"] < 0.0105
    assert chapter["hd_sweep_tv_min_above5"] > 0.0095


def test_solution_cell_hedging_score(chapter):
    """ex-hd-3's claims: the hedge is L2-accurate for both members (each error far below eta b^2);
    with a minority point in the sample g_1 or the hedge wins, so the far scores (g_2, -x) are
    chosen at most as often as a sample without one, (1 - eta)^50 (3.3 binomial SE of 2000 sets);
    without one all four fit about equally well, so the far scores win a sizeable share of those
    samples (here: at least a quarter) and the hedge is chosen often."""
    cells = chapter.cells_tagged("solution")
    assert any("lib.record(\"hd_ex3_l2_p1\"" in c.source for c in cells)
    for key in ("hd_ex3_l2_p1", "hd_ex3_l2_p2"):
        assert chapter[key] < 1e-3 * chapter["hd_ex3_scale"]
    p_none, n = chapter["hd_ex3_no_minority"], 2000
    assert p_none == pytest.approx(0.99**50, rel=1e-12)
    assert 0.25 * p_none < chapter["hd_ex3_wrong_freq"] < p_none + 3.3 * binom_se(p_none, n)
    assert 0.05 < chapter["hd_ex3_sym_freq"] < 1 - chapter["hd_ex3_wrong_freq"]
    # conditionally on the sample: with a minority point a far score wins only when that point's
    # noised value lands beyond the crossing point x* = -b/2 - lambda/b (P ~ 0.011 for one point,
    # then about half the time): expected rate <~ 0.006, so 0.02 is > 5 binomial SE above it for ~800
    # such samples; without one, the four fit about equally well and the far two win about half
    n_seen = chapter["hd_ex3_n_seen"]
    assert abs(n_seen / n - (1 - p_none)) < 3.3 * binom_se(p_none, n)
    assert chapter["hd_ex3_far_given_seen"] < 0.02
    assert 0.25 < chapter["hd_ex3_far_given_unseen"] < 0.75


def test_gradable_exercises_pass(chapter):
    chapter.assert_checks_pass()


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.full
def test_conclusions_hold_for_other_seeds(seed):
    other = run_chapter("hardness_l2", quick=True, parameters={"SEED": seed})
    n, bound = other["hd_erm_trials"], other["hd_erm_bound_small"]
    assert other["hd_erm_l2_small"] > bound - 3.3 * binom_se(bound, n)
    assert other["hd_net_fail_unseen"] >= 0.9
    assert other["hd_net_l2_small"] - other["hd_net_q_small"] >= 0.4
    assert math.log(10) / 1.9 < other["hd_dich_l2_eta_m_min"] <= other["hd_dich_l2_eta_m_max"] < math.log(10) * 1.9
    assert other["hd_dich_q_delta_m_max"] < math.log(10) * 1.9


@pytest.mark.full
def test_full_settings():
    full = run_chapter("hardness_l2", quick=False)
    assert full.figures >= 8
    assert full["hd_nm_inside"] == full["hd_nm_count"]
    bound, n = full["hd_erm_bound_small"], full["hd_erm_trials"]
    assert full["hd_erm_l2_small"] > bound - 3.3 * binom_se(bound, n)
    assert full["hd_net_l2_small"] - full["hd_net_q_small"] >= 0.5
    assert full["hd_net_fail_unseen"] >= 0.9
    assert full["hd_dich_q_below_delta_max"] <= 1
    assert math.log(10) / 1.9 < full["hd_dich_l2_eta_m_min"] <= full["hd_dich_l2_eta_m_max"] < math.log(10) * 1.9
    assert abs(full["hd_ks_main"] - full["hd_ks_main_exact"]) < dkw(full["hd_n_sample"])


def test_nothing_reaches_stderr(chapter):
    """No warning or progress bar is printed on the chapter's page."""
    assert not chapter.stderr, chapter.stderr

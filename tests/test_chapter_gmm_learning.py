"""The GMM-learning chapter (book/gmm_learning.md), run in quick mode; its glued numbers checked.

Tolerances follow the statistics of the problem. With m samples in d dimensions the
maximum-likelihood error of the centre is about sqrt(d/m) (relative spread 1/sqrt(2d)), so
the full-setting thresholds (m = 20000) are rescaled to quick mode's smaller m: distances by
sqrt(m_full/m), squared angles and cosine deficits (1 - cos) by m_full/m. Population
quantities (the gradient-EM identity) are deterministic and checked against the orders the
proposition gives.
"""

import math

import pytest
from notebooks import run_chapter
from scipy.stats import beta, binom, chi2

pytestmark = pytest.mark.chapter

N_FULL, D, NORM = 20_000, 20, 2.0


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("gmm_learning", quick=True)


def test_every_figure_is_drawn(chapter):
    """Phase 1, identity, phase 2, sample size, low separation, widget, K warm start,
    2-D poor start, radius sweep, ray."""
    assert chapter.figures >= 10


def test_setting(chapter):
    assert chapter["gm_d"] == D and chapter["gm_norm"] == NORM and chapter["gm_n"] < N_FULL


def test_student_at_truth_is_the_exact_score(chapter):
    assert chapter["gm_score_gap"] < 1e-12


# The linear theory starts from the start's alignment c0. With fresh noise each step turns theta
# by a random angle (the chapter measures it: gm_noise_turn), and the sample's top eigenvector
# is off mu* by an angle of order sqrt(d/m)/|mu*|^2; a start with |c0| near those levels is
# aligned by the noise before the power method takes over, so the quantitative checks need
# |c0| well above them.
def aligned(chapter) -> bool:
    return abs(chapter["gm_cos_init"]) > max(3 * chapter["gm_noise_turn"], 0.05)


def test_phase1_aligns_with_mu_star_like_the_power_method(chapter):
    """Full settings: cosine > 0.98; the deficit 1 - cos is a squared angle, ~ d/m."""
    assert 1 - chapter["gm_cos_phase1"] < 0.02 * N_FULL / chapter["gm_n"]
    assert abs(chapter["gm_cos_power"] - chapter["gm_cos_phase1"]) < 0.1
    assert chapter["gm_steps_obs"] >= 0
    if aligned(chapter):
        # the power method on the sample: its top eigenvalue is 1 + |mu*|^2 + O(sqrt(d/m)), and
        # its top eigenvector is within an angle O(sqrt(d/m)) / |mu*|^2 of mu*
        assert abs(chapter["gm_steps_power_big"] / chapter["gm_steps_pred"] - 1) < 0.15
        # the curves are steep in the middle: cos = 1 / sqrt(1 + tan^2) with log tan falling by
        # log(1 + rho) per step has slope at most 2 / 3^{3/2} = 0.385 per unit of log tan, so a
        # gap in cosine is a shift in steps; allow the same 15 % of the predicted count as below
        slope = 2 / 3**1.5 * math.log1p(chapter["gm_rate_big"])
        assert chapter["gm_phase1_power_gap"] < slope * 0.15 * chapter["gm_steps_pred"]
        # steps to cosine 0.98: tan(angle) shrinks by 1 + rho per step (exercise 2)
        assert 0.75 < chapter["gm_steps_obs"] / chapter["gm_steps_pred"] < 1.33
    else:
        assert chapter["gm_steps_obs"] < 1.33 * chapter["gm_steps_pred"]


def test_small_steps_are_slow_but_converge(chapter):
    """h = 0.05: rate 0.002, so tan(angle) shrinks by (1.002)^100 = 1.22 in the figure; the
    prediction of ~1400 steps to 0.98 is met by the power method on the sample."""
    c0, steps = chapter["gm_cos_init"], chapter["gm_steps1"]
    assert chapter["gm_steps_pred_half"] > steps and chapter["gm_cos_half_lr"] < 0.98  # exercise 2
    assert chapter["gm_steps_pred_small"] > 10 * steps and chapter["gm_steps_power_small"] > 10 * steps
    assert chapter["gm_cos_small_lr"] < 0.9  # far from converged after the figure's 100 steps
    if aligned(chapter):
        assert abs(chapter["gm_steps_power_small"] / chapter["gm_steps_pred_small"] - 1) < 0.15
        tan = math.sqrt(1 - c0**2) / c0 / (1 + chapter["gm_rate_small"]) ** steps
        assert abs(chapter["gm_cos_small_lr"] - 1 / math.sqrt(1 + tan**2)) < 0.05
        # h = 0.5: tan(angle) shrinks by about (1 + rho/4)^100; the same 30% on the rate as for h = 2
        log_tan = lambda c: math.log(math.sqrt(1 - c**2) / c)  # noqa: E731
        drop = log_tan(c0) - log_tan(chapter["gm_cos_half_lr"])
        assert abs(drop / (steps * math.log1p(chapter["gm_rate_big"] / 4)) - 1) < 0.3


def test_gradient_is_the_em_step_of_the_noised_mixture(chapter):
    assert chapter["gm_id_gap"] < 1e-6  # three separately computed terms; quadrature accuracy
    # no theorem bounds the angle between R_t and M_t - theta; near the truth it is small
    assert chapter["gm_cos_mt_min"] > 0.99
    assert chapter["gm_cos_mt_large_t"] > 0.9999  # -grad = 4 (M_t - theta) up to O(0.02)
    assert chapter["gm_cos_m0_small_t"] > chapter["gm_cos_m0_large_t"]
    # against clean-data EM the deficit at t1 is far larger than against M_t
    assert chapter["gm_cos_deficit_ratio"] > 100
    # at t1: -grad = 4 (M_t - theta) up to O(|mu*_t|^2 + |theta|^2)
    assert chapter["gm_id_four_gap"] < 3 * chapter["gm_id_four_scale"]


def test_the_remainder_grows_with_t_and_matters_at_small_separation(chapter):
    assert chapter["gm_r_increasing"] == 1
    assert chapter["gm_r_large_t_min"] > 0.9  # R_t -> 2 (M_t - theta) as t grows
    assert chapter["gm_r_small_t_sep2"] < 0.35
    assert chapter["gm_r_small_t_sep05"] > 0.5  # the same size as the EM term


def test_phase2_ends_at_the_statistical_scale(chapter):
    """Within 2 sqrt(d/m) of mu* (up to sign): GD after phase 1, EM, GD from the random start,
    and the averaged EM-equivalent step; averaging beats the single iterates."""
    scale = chapter["gm_sqrt_d_over_n"]
    for key in ["gm_err_phase2", "gm_err_em", "gm_err_direct", "gm_err_em_random", "gm_err_half"]:
        assert chapter[key] < 2 * scale, key
    assert chapter["gm_err_half"] < chapter["gm_err_half_iterates"]
    assert chapter["gm_phase2_ratio"] < 2
    assert chapter["gm_err_fixed"] < 3 * scale  # one noise draw: larger, same order
    # phase 1 ends within its predicted spread. Orthogonally to mu* the squared distance is a sum
    # of D - 1 independent Gaussian squares of equal variance (the problem is symmetric about
    # the mu* axis) with expectation pred^2: pred^2 chi^2_{D-1} / (D-1). The one direction along mu*,
    # which the prediction leaves out, only adds; its variance is not derived: independent
    # replications (300 runs of phase 1 at m = 3000) measured about twice one orthogonal
    # direction's, so allow three times. Those runs
    # also had slightly heavier tails than chi^2 (variance of the orthogonal sum 15 % larger;
    # largest ratio 1.83 of 299) and one outlier (8.99) from a start at cosine 0.014 that had
    # not aligned in 100 steps: the 1e-4 levels below are approximate.
    pred, dist, p = chapter["gm_phase1_rms_pred"], chapter["gm_err_phase2_start"], 1e-4
    lower = math.sqrt(chi2.ppf(p, D - 1) / (D - 1))
    upper = math.sqrt((chi2.ppf(1 - p, D - 1) + 3 * chi2.ppf(1 - p, 1)) / (D - 1))
    assert lower * pred < dist < upper * pred, (dist / pred, lower, upper)
    # (pred against 2 sqrt(d/m) would compare two functions of the settings, not a measurement)


def test_error_scales_like_sqrt_d_over_m(chapter):
    """Slope -1/2: two sizes a factor 6 apart, two seeds each; the spread of one log error is
    about 1/sqrt(2d) = 0.16 (measured over 120-300 replicates at m = 500 and 3000: 0.15-0.165 for
    two-phase GD, 0.16 for EM), so the slope's standard error is sqrt(2 * 0.16^2 / 2) / log 6 =
    0.09: +-0.32, 3.6 of them (+-0.25 failed at SEED 5, GD -0.78: a 3.1 SE draw)."""
    assert abs(chapter["gm_size_slope"] + 0.5) < 0.32
    assert abs(chapter["gm_size_em_slope"] + 0.5) < 0.32
    assert chapter["gm_size_ratio_max"] < 2.5 and chapter["gm_size_ratio_min"] > 0.4
    assert chapter["gm_size_gd_over_em"] < 1.5
    assert chapter["gm_size_fixed_over_fresh"] > 1.2  # one noise draw per sample adds error


def test_weak_separation_changes_the_rate_and_the_iterations(chapter):
    """Zero separation: error ~ (d/m)^{1/4} (slope -1/4; a factor 16 in m and two seeds give a
    slope standard error of about 0.05); separation 2: slope -1/2; separation 0.5: about
    sqrt(d/m)/|mu*| at every m (past the crossover m = d/|mu*|^4)."""
    assert abs(chapter["gm_low_slope_zero"] + 0.25) < 0.15
    assert abs(chapter["gm_low_slope_two"] + 0.5) < 0.15
    assert 0.7 < chapter["gm_low_zero_over_rate"] < 2.5
    # separation 0.5: the rates cross at m = d/|mu*|^4 = 160, so every m here is in the
    # sqrt(d/m)/|mu*| regime; at the smallest m the (d/m)^{1/4} rate is 1.58 times larger, so an
    # error following it (at mu* = 0 it runs 1.3 times the rate) would show a ratio above 2
    assert chapter["gm_low_half_crossover_m"] < chapter["gm_low_n_small"]
    assert 0.6 < chapter["gm_low_half_over_rate"] < 1.8
    assert 0.6 < chapter["gm_low_half_small_n"] < 1.8
    assert 0.6 < chapter["gm_low_two_over_rate"] < 1.6  # separation 2: about sqrt(d/m)
    assert chapter["gm_low_iters_half"] > 3 * chapter["gm_low_iters_two"]
    assert chapter["gm_low_iters_two"] < 20  # at separation 2 EM contracts fast
    assert chapter["gm_low_iters_zero_big"] > chapter["gm_low_iters_half"]
    assert chapter["gm_low_iters_zero_big"] >= chapter["gm_low_iters_zero_small"]


def test_k_components_from_a_warm_start(chapter):
    """Full settings: worst centre error < 0.1 at m = 20000, i.e. 2.24 sqrt(Kd/m); rescaled."""
    tol = 0.1 * math.sqrt(N_FULL / chapter["gm_k_n"])
    assert chapter["gm_k_final_0"] < tol and chapter["gm_k_final_1"] < tol and chapter["gm_k_em"] < tol
    assert chapter["gm_k_start"] > 4 * chapter["gm_k_final"]  # the runs really moved


def test_poor_start_in_the_plane_stays_poor(chapter):
    """The middle centre sits at the mean of the left pair, half the separation from each; EM too."""
    half = chapter["gm_2d_half_sep"]
    assert abs(chapter["gm_2d_poor_uncovered"] - half) < 0.3
    assert abs(chapter["gm_2d_poor_em_uncovered"] - half) < 0.3
    assert chapter["gm_2d_poor"] > 5
    assert chapter["gm_2d_warm"] < 5 * math.sqrt(4 / (chapter["gm_k_n"] // 2))


def test_warm_start_sweep(chapter):
    assert chapter["gm_sweep_success_small"] == 1.0 and chapter["gm_sweep_success_em_small"] == 1.0
    assert chapter["gm_sweep_em_failures"] <= chapter["gm_sweep_gd_failures"]
    # the success threshold (6 units of sqrt(Kd/m)) sits in a gap: no run, GD or EM, ends within
    # one unit of it, so the counts do not depend on its exact value. Successful runs end at
    # about 1-4 units (EM about 1-2.3, GD's noisy last iterate up to about 4), escaped ones at
    # about 100; a centre stuck between two clusters ends farther out (8 units and more at
    # SEED 2), above the band.
    assert chapter["gm_sweep_band_runs"] == 0
    assert chapter["gm_sweep_gd_ok_max"] < 5 and chapter["gm_sweep_em_ok_max"] < 5


def test_em_recovers_from_aimed_far_starts_at_least_as_often_as_gd(chapter):
    """Binomial statements about the aimed starts from one separation on (the same starts for both):
    EM succeeds in most runs, i.e. the exact (Clopper-Pearson) one-sided 99 % lower bound on its
    success rate exceeds 1/2; and GD is not better: among the starts where exactly one method
    succeeds, GD's count is no larger than an exact sign test (probability 1/2 each) allows at
    level 1 %. (At least 9 runs, so that the first statement can hold at all: 0.01^(1/n) > 1/2.)"""
    n = chapter["gm_sweep_aimed_far_runs"]
    assert n >= 9 and n == round(n)
    em_wins = round(chapter["gm_sweep_aimed_far_em"] * n)
    assert em_wins > 0 and beta.ppf(0.01, em_wins, n - em_wins + 1) > 0.5, (em_wins, n)
    gd_only, em_only = chapter["gm_sweep_aimed_far_gd_only"], chapter["gm_sweep_aimed_far_em_only"]
    assert gd_only + em_only <= n
    if gd_only + em_only:
        assert binom.sf(gd_only - 1, gd_only + em_only, 0.5) > 0.01, (gd_only, em_only)
    # the glued exact intervals are those of the glued fractions
    for method in ("gd", "em"):
        wins = round(chapter[f"gm_sweep_aimed_far_{method}"] * n)
        lo = beta.ppf(0.025, wins, n - wins + 1) if wins else 0.0
        assert abs(chapter[f"gm_sweep_aimed_far_{method}_lo"] - lo) < 1e-9


def test_race_at_equal_accuracy(chapter):
    """Iterations to come within tau sqrt(Kd/m) of the sample's MLE. EM contracts geometrically:
    a handful of iterations. GD's running average of fresh-noise iterates approaches its limit
    like 1/sqrt(steps), so it needs more steps than EM at every tolerance, and more for the
    smaller one. Its limit (the average after the whole budget) is a fraction of the
    statistical error from the MLE: the two estimators of the same sample differ by a fraction
    of their common sqrt(Kd/m) error."""
    budget = chapter["gm_race_steps"]
    for name in ("two", "k"):
        em0, gd0 = chapter[f"gm_race_{name}_em_0"], chapter[f"gm_race_{name}_gd_0"]
        em1, gd1 = chapter[f"gm_race_{name}_em_1"], chapter[f"gm_race_{name}_gd_1"]
        assert em0 <= em1 <= 20 and gd0 <= gd1  # EM: geometric; a tighter tolerance takes longer
        assert gd0 <= budget and gd0 > em0 and gd1 > em1, name
        # GD's limit is a fraction of the statistical error from the MLE. Not below tau_0 = 0.5:
        # independent replications (30 quick data sets) put the four-component one at 0.29
        # (median) to 0.50 (largest), above 0.45 in 7 % of them; 0.6 leaves room for that spread
        assert chapter[f"gm_race_{name}_limit"] < 0.6, name
        # what keeps GD away is partly the distance between the estimators, not only the average's
        # noise: noise alone would halve from a quarter of the budget to all of it (ratio about
        # 0.48 with the averaging start, spread about 0.07); the text claims it shrank by less.
        # (Independent replications, 30 quick data sets: ratio 0.60-1.1, median 0.81 (two
        # components), 0.87 (K = 4); at 600 steps about 0.95: see the full-settings test.)
        assert chapter[f"gm_race_{name}_limit"] > 0.5 * chapter[f"gm_race_{name}_quarter"], name
        # and it is small next to the MLE's own error (about one unit, worst of K centres: below 0.75 only rarely)
        assert chapter[f"gm_race_{name}_limit"] < 0.75 * chapter[f"gm_race_{name}_mle_err"], name


def test_the_objective_has_a_ridge_and_the_likelihood_has_none(chapter):
    """Differences of 0.1 and more, against Monte-Carlo noise of about 0.01 in L_t."""
    assert chapter["gm_ray_loss_ridge"] - chapter["gm_ray_loss_far"] > 0.05
    assert chapter["gm_ray_loss_far"] - chapter["gm_ray_loss_zero"] > 0.3
    assert chapter["gm_ray_loglik_max_rise"] <= 1e-9
    assert chapter["gm_ray_loglik_far"] < chapter["gm_ray_loglik_zero"] - 0.5


def test_a_centre_escapes_beyond_the_ridge_and_only_there(chapter):
    ridge, spacing = chapter["gm_ray_ridge"], 2.0  # quick mode's start distances are 2 apart
    assert chapter["gm_escape_from"] > 0
    assert ridge - spacing <= chapter["gm_escape_from"] <= ridge + spacing
    assert chapter["gm_escape_returned_max"] <= ridge + 0.5
    assert chapter["gm_escape_final_gd"] > chapter["gm_escape_data_radius"]
    assert chapter["gm_escape_final_em"] < chapter["gm_sweep_threshold"]


def test_like_for_like_with_sklearn(chapter):
    """Same start and rule: sklearn and lib's untied EM agree closely (they differ only in
    estimating the variances and weights); tying the centres halves the variance."""
    scale = chapter["gm_sqrt_d_over_n"]
    assert abs(chapter["gm_sk_two"] / chapter["gm_em_untied_two"] - 1) < 0.1
    assert abs(chapter["gm_sk_k"] / chapter["gm_em_untied_k"] - 1) < 0.15  # sklearn also fits K variances
    assert chapter["gm_em_tied_two"] < chapter["gm_em_untied_two"]
    assert chapter["gm_gd_untied_two"] < 1.3 * chapter["gm_sk_two"]
    assert chapter["gm_gd_untied_k"] < 1.3 * chapter["gm_sk_k"]
    assert chapter["gm_gd_tied_two"] < 1.3 * chapter["gm_em_tied_two"]
    assert chapter["gm_gd_two_phase_two"] < 2 * scale


def test_exercise_1_population_gradient(chapter):
    (cell, *_) = chapter.cells_tagged("solution")
    assert 'lib.record("gm_ex1_err"' in cell.source
    # |MC mean - formula|^2 has expectation sum of the squared standard errors (d = 20 coordinates)
    assert chapter["gm_ex1_err"] < 2 * chapter["gm_ex1_se"]
    assert chapter["gm_ex1_se"] < 0.1 * chapter["gm_ex1_norm"]  # the check has teeth
    assert chapter["gm_ex1_truth"] < 1e-10 * chapter["gm_ex1_norm"]
    assert chapter["gm_ex1_linear_gap"] < 1e-3  # O(|theta|^2 / e^{-2t}) at |theta| = 1e-4
    assert chapter["gm_ex1_quad_gap"] < 1e-8  # two derivations of one integral


def test_exercise_4_identity_for_k_components(chapter):
    """Largest |z| over 9 coordinates of a mean over 10 batches (t with 9 degrees of freedom):
    5.5 is exceeded with probability below 1%; dropping pi_k must be detected."""
    assert chapter["gm_ex4_z"] < 5.5
    assert chapter["gm_ex4_wrong_z"] > 10


def test_gradable_exercises_pass(chapter):
    chapter.assert_checks_pass()


@pytest.mark.full
def test_full_settings():
    full = run_chapter("gmm_learning", quick=False)
    assert full["gm_d"] == D and full["gm_norm"] == NORM and full["gm_n"] == N_FULL
    assert full["gm_cos_phase1"] > 0.98
    assert full["gm_err_phase2"] < 2 * math.sqrt(D / N_FULL)
    assert full["gm_cos_mt_min"] > 0.99
    assert full["gm_k_n"] == N_FULL and full["gm_k_final"] < 0.1
    assert abs(full["gm_size_slope"] + 0.5) < 0.15  # three seeds, a factor 30 in m
    assert abs(full["gm_low_slope_zero"] + 0.25) < 0.1
    assert full["gm_escape_returned_max"] <= full["gm_ray_ridge"] + 0.5
    assert full["gm_ray_ridge"] - 1 <= full["gm_escape_from"] <= full["gm_ray_ridge"] + 1
    assert full["gm_ex1_err"] < 2 * full["gm_ex1_se"]
    test_em_recovers_from_aimed_far_starts_at_least_as_often_as_gd(full)
    test_race_at_equal_accuracy(full)
    for name in ("two", "k"):  # at 600 steps the noise share is smaller (the ratio 0.48 would be pure noise)
        assert full[f"gm_race_{name}_limit"] > 0.6 * full[f"gm_race_{name}_quarter"], name


def test_nothing_reaches_stderr(chapter):
    """No warning or progress bar is printed on the chapter's page."""
    assert not chapter.stderr, chapter.stderr

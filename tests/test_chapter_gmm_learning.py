"""The GMM-learning chapter (book/gmm_learning.md), run in quick mode; its glued numbers checked.

Tolerances follow the statistics of the problem. With n samples in d dimensions the
maximum-likelihood error of the centre is about sqrt(d/n) (relative spread 1/sqrt(2d)), so
the issue's full-setting thresholds (n = 20000) are rescaled to quick mode's smaller n:
distances by sqrt(n_full/n), squared angles and cosine deficits (1 - cos) by n_full/n.
"""

import math

import pytest
from notebooks import run_chapter

pytestmark = pytest.mark.chapter

N_FULL, D, NORM = 20_000, 20, 2.0


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("gmm_learning", quick=True)


def distance_scale(ch) -> float:
    """sqrt(n_full / n): how much larger a statistical error is at the chapter's n."""
    return math.sqrt(N_FULL / ch["gm_n"])


def test_every_figure_is_drawn(chapter):
    """Phase 1, phase 2, GD-EM cosine, sample size, widget, K warm start, 2-D poor start,
    radius sweep, displaced centre."""
    assert chapter.figures >= 9


def test_setting_is_the_issues(chapter):
    assert chapter["gm_d"] == D and chapter["gm_norm"] == NORM and chapter["gm_n"] < N_FULL


def test_student_at_truth_is_the_exact_score(chapter):
    assert chapter["gm_score_gap"] < 1e-12


def test_phase1_aligns_with_mu_star_like_the_power_method(chapter):
    """Full settings: cosine > 0.98; the deficit 1 - cos is a squared angle, ~ d/n."""
    assert 1 - chapter["gm_cos_phase1"] < 0.02 * N_FULL / chapter["gm_n"]
    # GD follows the power method with the matched rate 4 lr exp(-2 t1) (Proposition)
    assert chapter["gm_phase1_power_gap"] < 0.1
    # steps to cosine 0.98: tan(angle) shrinks by 1 + rho per step (exercise 2)
    assert 0.75 < chapter["gm_steps_obs"] / chapter["gm_steps_pred"] < 1.33


def test_small_step_barely_moves(chapter):
    """With eta = 0.05 the rate is 0.002 per step: after 100 steps tan(angle) has shrunk by
    (1.002)^100 = 1.22 only; the observed cosine matches that prediction."""
    c0, rho, steps = chapter["gm_cos_init"], chapter["gm_rate_small"], chapter["gm_steps1"]
    tan = math.sqrt(1 - c0**2) / c0 / (1 + rho) ** steps
    assert abs(chapter["gm_cos_small_lr"] - 1 / math.sqrt(1 + tan**2)) < 0.05
    assert chapter["gm_cos_small_lr"] < 0.5
    assert math.isclose(chapter["gm_rate_big"] / chapter["gm_rate_small"], 2.0 / 0.05)


def test_phase2_ends_at_the_statistical_scale(chapter):
    """Within 2 sqrt(d/n) of mu* (up to sign): GD after phase 1, EM, and GD from the random start."""
    scale = chapter["gm_sqrt_d_over_n"]
    assert math.isclose(scale, math.sqrt(D / chapter["gm_n"]))
    for key in ["gm_err_phase2", "gm_err_em", "gm_err_direct", "gm_err_em_random"]:
        assert chapter[key] < 2 * scale, key
    assert math.isclose(chapter["gm_phase2_ratio"], chapter["gm_err_phase2"] / scale)


def test_gradient_points_along_the_em_step(chapter):
    """Full settings: cosine > 0.99 at t2; the deficit comes from estimation noise, ~ 1/n."""
    tol = 0.01 * N_FULL / chapter["gm_n"]
    assert 1 - chapter["gm_cos_gd_em"] < tol
    assert 1 - chapter["gm_cos_gd_em_min_small_t"] < tol
    assert chapter["gm_cos_gd_em_large_t"] > 0  # still a descent direction towards mu*


def test_error_scales_like_sqrt_d_over_n(chapter):
    """Slope -1/2: with four sizes over a factor 8 and two seeds the slope's standard error is
    about 0.07, so +-0.25."""
    assert abs(chapter["gm_size_slope"] + 0.5) < 0.25
    assert chapter["gm_size_ratio_max"] < 2.5 and chapter["gm_size_ratio_min"] > 0.4
    assert chapter["gm_size_gd_over_em"] < 1.5  # about as efficient as maximum likelihood
    assert chapter["gm_size_fixed_over_fresh"] > 1  # one noise draw per sample adds error


def test_k_components_from_a_warm_start(chapter):
    """Full settings: worst centre error < 0.1 at n = 20000, i.e. 2.24 sqrt(Kd/n); rescaled."""
    tol = 0.1 * math.sqrt(N_FULL / chapter["gm_k_n"])
    assert chapter["gm_k_final"] < tol and chapter["gm_k_em"] < tol
    assert chapter["gm_k_final"] == max(chapter["gm_k_final_0"], chapter["gm_k_final_1"])
    # every centre starts 0.25 x 3.9 from its own: the runs really had to move
    assert chapter["gm_k_start"] == pytest.approx(0.25 * 3.9) and chapter["gm_k_start"] > 4 * tol


def test_poor_start_in_the_plane_stays_poor(chapter):
    """The middle centre sits at the mean of the left pair, half the separation from each; EM too."""
    half = chapter["gm_2d_half_sep"]
    assert abs(chapter["gm_2d_poor_uncovered"] - half) < 0.3
    assert abs(chapter["gm_2d_poor_em_uncovered"] - half) < 0.3
    assert chapter["gm_2d_poor"] > 5
    # the warm start in 2-D: n/2 samples over K = 4 centres, worst of four errors
    assert chapter["gm_2d_warm"] < 5 * math.sqrt(4 / (chapter["gm_k_n"] // 2))


def test_warm_start_sweep(chapter):
    assert chapter["gm_sweep_success_small"] == 1.0 and chapter["gm_sweep_success_em_small"] == 1.0
    assert chapter["gm_sweep_success_sep_small_min"] >= 0.5
    assert chapter["gm_sweep_success_em_large"] >= chapter["gm_sweep_success_large"]
    # every GD failure of the sweep is a centre that left the data, as the text explains
    assert chapter["gm_sweep_gd_failures_escaped"] == chapter["gm_sweep_gd_failures"]
    assert chapter["gm_sqrt_log_k"] == pytest.approx(math.sqrt(math.log(4)))


def test_a_far_centre_escapes_under_gd_but_not_under_em(chapter):
    assert chapter["gm_escape_returns_below"] >= 2
    assert chapter["gm_escape_from"] <= 8
    assert chapter["gm_escape_final_gd"] > chapter["gm_escape_data_radius"]
    assert chapter["gm_escape_final_em"] < chapter["gm_sweep_threshold"]


def test_side_by_side_with_sklearn(chapter):
    scale = chapter["gm_sqrt_d_over_n"]
    assert chapter["gm_gd_two"] < 2 * scale and chapter["gm_sk_two"] < 3 * scale
    # sklearn estimates two free centres, variances and weights: less accurate on the symmetric model
    assert chapter["gm_sk_two"] > chapter["gm_em_two"]
    # ... and about as accurate as lib's EM on the K-component one
    assert abs(chapter["gm_sk_k"] / chapter["gm_em_k"] - 1) < 0.25


def test_solution_cell_checks_the_population_gradient(chapter):
    (cell,) = chapter.cells_tagged("solution")
    assert 'lib.record("gm_ex1_err"' in cell.source
    # |MC mean - formula|^2 has expectation sum of the squared standard errors (d = 20 coordinates)
    assert chapter["gm_ex1_err"] < 2 * chapter["gm_ex1_se"]
    assert chapter["gm_ex1_se"] < 0.1 * chapter["gm_ex1_norm"]  # the check has teeth
    assert chapter["gm_ex1_truth"] < 1e-10 * chapter["gm_ex1_norm"]
    # linear part at |theta| = 1e-4: the relative gap is O(|theta|^2 / e^{-2t})
    assert chapter["gm_ex1_linear_gap"] < 1e-3


@pytest.mark.full
def test_full_settings():
    """The issue's thresholds at d = 20, |mu*| = 2, n = 20000."""
    full = run_chapter("gmm_learning", quick=False)
    assert full["gm_d"] == D and full["gm_norm"] == NORM and full["gm_n"] == N_FULL
    assert full["gm_cos_phase1"] > 0.98
    assert full["gm_err_phase2"] < 2 * math.sqrt(D / N_FULL)
    assert full["gm_cos_gd_em"] > 0.99
    assert full["gm_k_n"] == N_FULL and full["gm_k_final"] < 0.1
    # three seeds and a factor 30 in n: slope standard error about 0.035
    assert abs(full["gm_size_slope"] + 0.5) < 0.15
    assert full["gm_size_fixed_over_fresh"] > 1
    assert full["gm_sweep_gd_failures_escaped"] == full["gm_sweep_gd_failures"]
    assert full["gm_escape_final_gd"] > full["gm_escape_data_radius"]
    assert full["gm_escape_final_em"] < full["gm_sweep_threshold"]
    assert full["gm_ex1_err"] < 2 * full["gm_ex1_se"]

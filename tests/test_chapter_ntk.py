"""The NTK chapter (book/ntk.md), run in quick mode; its glued numbers checked.

Where the tolerances come from:
* the finite-width NTK is an average over h/2 independent pairs of units, so its error has
  the exact mean square of the proposition and falls like h^{-1/2};
* lazy training moves each weight by O(h^{-1/2}); the NTK changes by between h^{-1/2}
  (coherent activation flips) and h^{-3/4} (random ones): slopes in [-0.8, -0.3];
* network-kernel gaps scale like h^{-1/2}, so the threshold is c sqrt(2048 / h) (from step 10
  on: the first steps of size 1/lambda_max depend on the finite-width kernel's top eigenvalue).
  The constant c = 15 % is empirical: in an independent replication (numpy network and
  closed-form kernel GD, 6 data sets, widths 512 to 4096) the gap from step 10 to the best
  step was at most 17 %, 8 %, 10 % and 8 % at h = 512, 1024, 2048, 4096, so c leaves a margin
  of about 2 at every width (a network that left the kernel regime would exceed it);
* the interpolant's error does not vanish with m (interpolating noise in low dimension),
  while early stopping's does.
"""

import math

import pytest
from notebooks import run_chapter

import lib

pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("ntk", quick=True)


def test_every_figure_is_drawn(chapter):
    """Kernel convergence, lazy training, U-curve, closed-form stopping, sample size, time, widget."""
    assert chapter.figures >= 7


def test_dsm_is_regression_with_the_mmse_as_label_noise(chapter):
    """Two independent routes to MMSE(t): exact posteriors, and (s^4/a^2) x the DSM minimum."""
    gap = abs(chapter["ntk_mmse_check"] - chapter["ntk_dsm_check"])
    assert gap < 4 * math.hypot(chapter["ntk_mmse_check_se"], chapter["ntk_dsm_check_se"])
    assert chapter["ntk_mmse_check_se"] < 0.01 * chapter["ntk_mmse_check"]  # the check has teeth
    # the same MMSE(0.1) again, from an independent estimate in the U-curve section
    assert abs(chapter["ntk_u_mmse"] - chapter["ntk_mmse_check"]) < 4 * math.sqrt(2) * chapter["ntk_mmse_check_se"]
    assert chapter["ntk_label_rms"] == pytest.approx(math.sqrt(chapter["ntk_mmse_check"]))
    mix = lib.demo_1d()  # Var x_0 = sum_k w_k (m_k^2 + v_k) - (sum_k w_k m_k)^2
    w, m, v = mix.weights, mix.means[:, 0], mix.covariances[:, 0, 0]
    assert chapter["ntk_data_var"] == pytest.approx(float((w * (m**2 + v)).sum() - (w * m).sum() ** 2))


def test_finite_width_ntk_converges_at_the_predicted_rate(chapter):
    assert -0.65 < chapter["ntk_kernel_slope"] < -0.35
    ratio, se = chapter["ntk_kernel_ratio"], chapter["ntk_kernel_ratio_se"]
    assert abs(ratio - 1) < 3 * se and se < 0.35
    # the widest width alone: 4 networks, so the mean square has a relative spread of about 1/2
    assert 0.4 < chapter["ntk_kernel_err_widest"] / chapter["ntk_kernel_pred_widest"] < 1.6
    assert chapter["ntk_func_gap"] <= 1e-10


def test_training_is_lazy(chapter):
    for key in ["distance", "weights", "kernel", "distance_all"]:
        assert -0.8 < chapter[f"ntk_lazy_slope_{key}"] < -0.3, key
    assert abs(chapter["ntk_lazy_slope_weights"] + 0.5) < 0.1  # O(h^{-1/2}) per weight, 6 networks a width
    assert chapter["ntk_lazy_kernel_widest"] < 0.02
    assert chapter["ntk_lazy_distance_widest"] < 0.05


def test_network_and_kernel_on_the_u_curve(chapter):
    width, steps = chapter["ntk_u_width"], chapter["ntk_u_steps"]
    assert 0 < chapter["ntk_u_best_step"] < steps  # the minimum is inside the run
    assert chapter["ntk_u_kernel_end"] > chapter["ntk_u_kernel_best"]  # the test error rises again
    assert chapter["ntk_u_gap_pct"] < 15 * math.sqrt(2048 / width)  # from step 10 to the best step
    assert 0.8 < chapter["ntk_u_best_ratio"] < 1.5
    assert chapter["ntk_u_net_best"] < chapter["ntk_u_interp"] / 3
    assert chapter["ntk_u_kernel_best"] < chapter["ntk_u_interp"] / 3
    assert chapter["ntk_u_net_train_end"] < chapter["ntk_u_net_train_best"]  # training error still falls


def test_early_stopping_in_closed_form(chapter):
    assert chapter["ntk_stop_train_monotone"] == 1
    assert chapter["ntk_stop_limit_gap"] < 1e-6
    assert chapter["ntk_stop_best_inside"] == 1
    assert chapter["ntk_stop_gain_min"] >= 5
    assert chapter["ntk_stop_gain_min"] == pytest.approx(min(chapter[f"ntk_stop_gain_{i}"] for i in range(3)))
    for i in range(3):
        # both rules that know the noise level recover most of the gain: at most half the
        # interpolant's error (the brief's criterion), at every t
        assert chapter[f"ntk_stop_dp_over_interp_{i}"] < 0.5, i
        assert chapter[f"ntk_stop_cp_over_best_{i}"] < 0.5 * chapter[f"ntk_stop_gain_{i}"], i
        # interpolating noise of variance MMSE(t) in low dimension leaves a fixed share of it
        assert 0.25 < chapter[f"ntk_stop_interp_over_mmse_{i}"] < 1.5, i
    # MMSE(t) by quadrature (independent of lib: exact component posteriors on a fine grid);
    # 20 000 samples give a relative standard error below 0.5 %
    for i, exact in enumerate([0.176754, 1.159288, 2.498170]):
        assert chapter[f"ntk_stop_mmse_{i}"] == pytest.approx(exact, rel=0.02), i
    # noisier labels and a smoother target: stop earlier at larger t
    assert chapter["ntk_stop_best_step_0"] > chapter["ntk_stop_best_step_2"]


def test_more_samples_help_only_the_stopped_fit(chapter):
    assert chapter["ntk_size_slope_cp"] < -0.3
    assert abs(chapter["ntk_size_slope_interp"]) < 0.25
    assert 0.25 < chapter["ntk_size_interp_over_mmse"] < 1.5
    assert 1 <= chapter["ntk_size_cp_over_best"] < 3
    assert chapter["ntk_size_slope_dp"] < 0 and chapter["ntk_size_slope_best"] < 0


def test_time_as_an_input(chapter):
    assert chapter["ntk_time_ratio_min"] > 1  # stopped beats the interpolant at every t
    assert chapter["ntk_time_ratio_small_t"] < chapter["ntk_time_ratio_large_t"]
    assert chapter["ntk_time_ratio_large_t"] > 3
    # the text: the score error grows much faster than an eps/s_t allowance permits
    assert chapter["ntk_time_allowance_growth"] == pytest.approx(-math.expm1(-3) / -math.expm1(-0.1))
    assert chapter["ntk_time_growth"] > 10 * chapter["ntk_time_allowance_growth"]
    growth = chapter["ntk_time_err_small_t"] / chapter["ntk_time_err_large_t"]
    assert chapter["ntk_time_growth"] == pytest.approx(growth)


def test_exercise_solutions(chapter):
    assert chapter["ntk_ex1_gap"] < 1e-10
    assert 1 <= chapter["ntk_ex2_error_ratio"] < 3
    assert chapter["ntk_ex3_violations"] == 0
    assert chapter["ntk_ex3_rank_narrow"] < chapter["ntk_ex3_m"]


@pytest.mark.parametrize("seed", [1, 2])
def test_conclusions_hold_for_other_seeds(seed):
    other = run_chapter("ntk", quick=True, parameters={"SEED": seed})
    assert other["ntk_stop_gain_min"] >= 5
    assert -0.8 < other["ntk_lazy_slope_distance"] < -0.3
    assert other["ntk_size_slope_cp"] < -0.3 and other["ntk_size_slope_interp"] > -0.2
    assert other["ntk_u_net_best"] < other["ntk_u_interp"] / 3
    assert other["ntk_time_ratio_min"] > 1


@pytest.mark.full
def test_full_settings():
    full = run_chapter("ntk", quick=False)
    assert full["ntk_kernel_widest"] == 16384 and -0.65 < full["ntk_kernel_slope"] < -0.35
    assert full["ntk_lazy_widest"] == 4096
    assert full["ntk_u_width"] == 2048 and full["ntk_u_gap_pct"] < 15 and full["ntk_u_best_ratio"] < 1.3
    assert full["ntk_stop_gain_min"] >= 5
    assert full["ntk_size_slope_cp"] < -0.5 and full["ntk_size_slope_interp"] > -0.2
    assert full["ntk_time_ratio_min"] > 1 and full["ntk_time_ratio_large_t"] > 3

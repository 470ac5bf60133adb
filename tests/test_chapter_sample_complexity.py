"""Chapter "How many samples?" (book/sample_complexity.md), run in quick mode; its glued numbers checked."""

import math

import pytest
from notebooks import run_chapter
from scipy import stats

pytestmark = pytest.mark.chapter

T_3_SEEDS = stats.t.ppf(0.975, 2)  # two-sided 95% t quantile for a mean over 3 seeds


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("sample_complexity", quick=True)


def test_every_figure_is_drawn(chapter):
    """Bounds calculator (widget's static view), three errors, stacked errors, accuracy across time."""
    assert chapter.figures >= 4


def test_bound_values_at_the_reference_point(chapter):
    """eps = 0.1, gamma = 1e-3, d = 2, P = 1000, D = 3, constants 1 (computed here by hand)."""
    gupta = math.log10(2**2 * 1000 * 3 * math.log(1e3) ** 3 / 0.1**3)
    block = math.log10(2**2.5 * 1000**3 * math.sqrt(3) / (1e-3**3 * 0.1**2))
    assert chapter["sc_log10_gupta_ref"] == pytest.approx(gupta, abs=1e-9)
    assert chapter["sc_log10_block_ref"] == pytest.approx(block, abs=1e-9)
    assert chapter["sc_gamma_factor_gupta"] == pytest.approx(math.log(1e3) ** 3, rel=1e-12)
    assert chapter["sc_slope_gupta"] == pytest.approx(-2 / 3)


def test_statistical_error_falls_with_m(chapter):
    """The 95% interval of the log-log slope (regression over seeds and m) lies below zero."""
    assert chapter["sc_stat_slope_hi"] < 0
    assert chapter["sc_stat_slope_lo"] < chapter["sc_stat_slope"] < chapter["sc_stat_slope_hi"]
    assert chapter["sc_stat_first"] > chapter["sc_stat_last"]


def test_approximation_error_falls_with_width(chapter):
    """Narrowest against widest class: the gap exceeds a 95% t interval over 3 seeds."""
    gap = chapter["sc_app_narrow"] - chapter["sc_app_wide"]
    assert gap > T_3_SEEDS * math.hypot(chapter["sc_app_narrow_se"], chapter["sc_app_wide_se"])


def test_optimisation_error_falls_with_steps(chapter):
    """Paired over the (m, seed) runs: the drop from the first to the last kept iterate is
    positive beyond a 95% t interval."""
    assert chapter["sc_opt_k_first"] < chapter["sc_opt_k_last"]
    t_q = stats.t.ppf(0.975, chapter["sc_opt_n"] - 1)
    assert chapter["sc_opt_drop"] > t_q * chapter["sc_opt_drop_se"]
    assert chapter["sc_opt_first"] > chapter["sc_opt_last"]


def test_minkowski_inequality_holds_exactly(chapter):
    """Same evaluation points for every error: the root total is at most the sum of the three roots."""
    assert chapter["sc_minkowski_max_ratio"] <= 1 + 1e-9


def test_scaled_error_is_level_across_time(chapter):
    """Noise-parameterised networks: score error ~ 1/s_t, so the raw error at gamma dwarfs the
    error at t ~ 1 (s_1 / s_gamma ~ 20), while s_t x error at gamma stays within a factor 4
    of its value at t ~ 1 (the noise-prediction error is level in t)."""
    assert chapter["sc_rmse_gamma"] > 5 * chapter["sc_rmse_one"]
    assert abs(math.log(chapter["sc_scaled_gamma"] / chapter["sc_scaled_one"])) < math.log(4)


def test_solution_cell_finds_the_crossover(chapter):
    (cell,) = chapter.cells_tagged("solution")
    assert 'lib.record("sc_ex3_eps"' in cell.source
    closed = 1e-9 * 50 ** (1 - 2) * math.sqrt(2) * math.log(1e3) ** 3 / math.sqrt(2)
    assert chapter["sc_ex3_eps"] == pytest.approx(closed, rel=1e-9)


@pytest.mark.full
def test_full_settings():
    full = run_chapter("sample_complexity", quick=False)
    assert full["sc_stat_slope_hi"] < 0
    assert full["sc_minkowski_max_ratio"] <= 1 + 1e-9
    assert full["sc_app_narrow"] - full["sc_app_wide"] > T_3_SEEDS * math.hypot(full["sc_app_narrow_se"],
                                                                                full["sc_app_wide_se"])

"""Chapter 1 (book/score_matching.md), run in quick mode; its glued numbers checked."""

import math

import pytest
from notebooks import run_chapter

pytestmark = pytest.mark.chapter


@pytest.fixture(scope="module")
def chapter():
    return run_chapter("score_matching", quick=True)


def test_every_figure_is_drawn(chapter):
    """Six figure cells, the widget's static view among them."""
    assert chapter.figures >= 6


def test_objective_at_the_score_is_the_minimum(chapter):
    """Theorem (DSM): L_t(score) = C_t; two independent Monte-Carlo estimates, 4 SE."""
    diff = chapter["sm_obj_at_score"] - chapter["sm_dsm_min"]
    assert abs(diff) < 4 * math.hypot(chapter["sm_obj_at_score_se"], chapter["sm_dsm_min_se"])


def test_excess_objective_equals_l2_error(chapter):
    """The excess L_t(f) - C_t and the L2 error agree for every trained network (4 SE)."""
    assert chapter["sm_max_identity_z"] < 4


def test_error_grows_like_one_over_s_t(chapter):
    """Noise-parameterised networks: score error ~ (noise error)/s_t, so log RMSE against
    log s_t has slope near -1 at small t; the error at gamma dwarfs the error at t = 1."""
    assert -1.5 < chapter["sm_small_t_slope"] < -0.5
    assert chapter["sm_rmse_at_gamma"] > 5 * chapter["sm_rmse_at_1"]


def test_more_data_gives_a_better_score(chapter):
    small, big = chapter["sm_l2_small_m"], chapter["sm_l2_big_m"]
    assert small - big > 4 * math.hypot(chapter["sm_l2_small_m_se"], chapter["sm_l2_big_m_se"])


def test_exact_score_sampler_matches_q_gamma(chapter):
    """W1 of the exact-score sampler lies within the spread of W1 for true samples."""
    assert chapter["sm_w1_exact"] < chapter["sm_w1_null_mean"] + 4 * chapter["sm_w1_null_sd"]


def test_solution_cell_confirms_the_theorem(chapter):
    (cell,) = chapter.cells_tagged("solution")
    assert "lib.record(\"sm_ex3_excess\"" in cell.source
    assert abs(chapter["sm_ex3_excess"] - chapter["sm_ex3_l2"]) < 4 * chapter["sm_ex3_se"]
    # f = -x is far from the mixture's score: the excess is a real, nonzero quantity
    assert chapter["sm_ex3_l2"] > 10 * chapter["sm_ex3_se"]


@pytest.mark.full
def test_full_settings():
    full = run_chapter("score_matching", quick=False)
    assert -1.5 < full["sm_small_t_slope"] < -0.5
    assert full["sm_l2_small_m"] - full["sm_l2_big_m"] > 4 * math.hypot(full["sm_l2_small_m_se"],
                                                                       full["sm_l2_big_m_se"])

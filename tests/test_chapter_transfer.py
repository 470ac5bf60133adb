"""The transfer chapter (book/transfer.md), run in quick mode; its glued claims checked.

Every comparison is paired over seeds (the arms of one seed share target pairs, test points and
quadrature times) and is asserted at 2 standard errors of the paired difference, the standard
error computed by the chapter over its seeds. The claims are the chapter's: fine-tuning below
scratch at small m with the gap shrinking, in and out of domain; an encoder with d' < d_y leaves a
floor; non-diverse sources stall; on the digits, fine-tuning restores better at small m.
"""

import os

import pytest
from notebooks import run_chapter

pytestmark = pytest.mark.chapter
Z = 2.0  # standard errors


@pytest.fixture(scope="module")
def chapter():
    seed = int(os.environ.get("CHAPTER_SEED", "0"))
    return run_chapter("transfer", quick=True, parameters={"SEED": seed})


def test_every_figure_is_drawn(chapter):
    """Tasks, m sweep, d' and diversity, K sweep, widget, digits metrics, restorations."""
    assert chapter.figures >= 7


def test_settings(chapter):
    assert chapter["tr_seeds"] >= 4 and chapter["tr_n_test"] >= 100
    assert chapter["tr_m_small"] < chapter["tr_m_large"]
    assert chapter["tr_dg_n"] == 174 and chapter["tr_dg_test"] == 78


def test_errors_are_below_the_zero_predictor(chapter):
    """Trained arms learn something: at the largest m every arm is far below f = 0."""
    for dom in ("in", "out"):
        zero = chapter[f"tr_zero_{dom}"]
        assert 0.5 < zero < 5
        for arm in ("oracle", "d2", "scratch"):
            assert chapter[f"tr_{dom}_{arm}_large"] < 0.5 * zero


@pytest.mark.parametrize("dom", ["in", "out"])
def test_fine_tune_beats_scratch_at_small_m_and_the_gap_shrinks(chapter, dom):
    small, small_se = chapter[f"tr_{dom}_gap_small"], chapter[f"tr_{dom}_gap_small_se"]
    large, large_se = chapter[f"tr_{dom}_gap_large"], chapter[f"tr_{dom}_gap_large_se"]
    assert small > Z * small_se
    assert small - large > Z * (small_se**2 + large_se**2) ** 0.5


@pytest.mark.parametrize("dom", ["in", "out"])
def test_fine_tune_removes_most_of_the_encoders_share(chapter, dom):
    """At small m, fine-tune's excess over the oracle is under a fifth of scratch's (up to 2 SE)."""
    kept, kept_se = chapter[f"tr_{dom}_ft_over_oracle"], chapter[f"tr_{dom}_ft_over_oracle_se"]
    assert kept < 0.2 * chapter[f"tr_{dom}_scratch_over_oracle"] + Z * kept_se


def test_too_small_representation_leaves_a_floor(chapter):
    """d' = 1 < d_y = 2: at the largest m still well above the d' = 2 encoder."""
    assert chapter["tr_d1_excess"] > Z * chapter["tr_d1_excess_se"]
    assert chapter["tr_d1_large"] > 1.5 * chapter["tr_d2_large"]


def test_non_diverse_sources_stall(chapter):
    assert chapter["tr_narrow_excess"] > Z * chapter["tr_narrow_excess_se"]
    assert chapter["tr_narrow_large"] > 1.5 * chapter["tr_d2_large"]


def test_more_sources_help(chapter):
    assert chapter["tr_j_gain"] > Z * chapter["tr_j_gain_se"]


def test_digits_fine_tune_better_at_small_m(chapter):
    """The held-out DSM objective (all test zeros, a time grid) resolves the small-m advantage; the
    restoration error, from a few ODE draws per image, is noisier: there fine-tuning must not be
    worse at small m, and its lead must not grow with m."""
    assert chapter["tr_dg_dsm_gap_small"] > Z * chapter["tr_dg_dsm_gap_small_se"]
    assert chapter["tr_dg_mse_gap_small"] > -Z * chapter["tr_dg_mse_gap_small_se"]
    assert chapter["tr_dg_mse_gap_large"] < chapter["tr_dg_mse_gap_small"] + Z * chapter["tr_dg_mse_gap_small_se"]


def test_digit_baselines(chapter):
    """y itself has per-pixel error ~ noise variance 1; the diffusion restorations are far better."""
    assert 0.9 < chapter["tr_dg_mse_y"] < 1.2
    assert chapter["tr_dg_mse_ft_small"] < 0.3 * chapter["tr_dg_mse_y"]
    assert chapter["tr_dg_mse_wiener"] < chapter["tr_dg_mse_ft_best"] <= chapter["tr_dg_mse_ft_small"]

"""The book's figure style keeps every text at least 9 px high as shown in the 688 px column."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from lib import plotting  # noqa: E402


def shown_sizes(fig) -> list[float]:
    """Each visible text's height in CSS px as the page shows the saved PNG (measured width)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    width_px = mpimg.imread(io.BytesIO(buf.getvalue())).shape[1]
    shrink = min(1.0, plotting.COLUMN_PX / width_px)
    fig.canvas.draw()
    return [t.get_fontsize() * fig.dpi / 72 * shrink for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("width,panels", [(13, 3), (11, 2), (7, 1), (4, 1)])
def test_small_text_is_enlarged_to_nine_pixels(width, panels):
    plotting.use_style()
    fig, axes = plt.subplots(1, panels, figsize=(width, 3.5), squeeze=False)
    for ax in axes[0]:
        ax.plot([0, 1], [0, 1], label="a curve")
        ax.legend(fontsize=6)
        ax.set_xlabel("time $t$", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("title", fontsize=7)
    before = min(shown_sizes(fig))
    reported = plotting.make_readable(fig)
    after = shown_sizes(fig)
    assert min(after) >= plotting.MIN_TEXT_PX - 0.05
    assert reported == pytest.approx(min(after), rel=0.03)
    assert fig.get_size_inches()[0] <= plotting.MAX_WIDTH_IN
    if width >= 11:
        assert before < 7, "the unfixed figure really was unreadable (the test can fail)"
    plt.close(fig)


def test_readable_text_is_left_alone():
    plotting.use_style()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x", fontsize=14)
    plotting.make_readable(fig)
    assert ax.xaxis.label.get_fontsize() == 14 and tuple(fig.get_size_inches()) == (6, 3)
    plt.close(fig)


def test_shown_px_per_pt():
    assert plotting.shown_px_per_pt(5.0, 110) == pytest.approx(110 / 72)  # 550 px: shown as is
    assert plotting.shown_px_per_pt(10.0, 110) == pytest.approx(688 / 720)  # 1100 px: shrunk
    with pytest.raises(ValueError):
        plotting.shown_px_per_pt(0.0, 110)


def test_display_holds_the_readable_layout_and_restores_the_engine():
    """The display hook prints with the layout make_readable computed held fixed: for this plain
    two-panel figure the same PNG byte for byte as a tight save that lays the figure out again
    (twin axes, colorbars or polar axes can shift by a fraction of a pixel: see _print_laid_out),
    and the figure keeps its layout engine afterwards (shown again after a change, it is laid
    out anew)."""
    from IPython.core.pylabtools import print_figure

    plotting.use_style()

    def figure():
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        axes[0].plot([0, 1], [0, 1], label="a")
        axes[1].semilogy([1, 2], [1, 100])
        axes[0].set(xlabel="$t$", ylabel=r"$\cos\theta$", title="panel")
        axes[0].legend()
        plotting.make_readable(fig)
        return fig

    fig, again = figure(), figure()
    engine = fig.get_layout_engine()
    held = plotting._print_laid_out(fig, lambda f: print_figure(f, "png", bbox_inches="tight"))
    assert held == print_figure(again, "png", bbox_inches="tight")
    assert fig.get_layout_engine() is engine
    plt.close(fig)
    plt.close(again)

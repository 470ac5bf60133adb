"""One figure style for the whole book, and the recurring pictures.

Figures have an opaque white background with dark ink, so they read the same on the
book's light and dark pages; colours are the Okabe–Ito palette, safe for colour-blind
readers.

Readable text. The book's text column is ``COLUMN_PX`` = 688 CSS px wide and a wider image
is shrunk to fit it, so a font of ``p`` points in a figure ``w`` inches wide is shown
``p * 688 / (72 w)`` px high, whatever the dpi. Once :func:`use_style` has run, every figure
a notebook displays first passes through :func:`make_readable`: a figure wider than
``MAX_WIDTH_IN`` is narrowed to it, and any text smaller than ``MIN_TEXT_PX`` as shown is
enlarged, so no label, tick or legend is under 9 px in the column.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch
from cycler import cycler
from matplotlib.axes import Axes

from ._checks import check_int, check_mixture, check_real
from .mixtures import GaussianMixture

COLUMN_PX = 688
MIN_TEXT_PX = 9.0
MAX_WIDTH_IN = 10.0
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a chapter)."""
    mpl.rcParams.update({
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "savefig.facecolor": "white",
        "text.color": "#222222",
        "axes.labelcolor": "#222222",
        "axes.edgecolor": "#444444",
        "xtick.color": "#444444",
        "ytick.color": "#444444",
        "axes.prop_cycle": cycler(color=PALETTE),
        "axes.grid": True,
        "grid.color": "#dddddd",
        "grid.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 110,
        "figure.figsize": (7.0, 3.6),
        "figure.constrained_layout.use": True,
        "font.size": 10,
        "axes.titlesize": 11,
        "legend.frameon": False,
        "lines.linewidth": 1.8,
    })
    _install_display_hook()


def shown_px_per_pt(width_in: float, dpi: float, column_px: float = COLUMN_PX) -> float:
    """CSS px per font point for an image ``width_in * dpi`` px wide shown in the column.

    The image is drawn at its own size when it fits (``dpi / 72`` px per point) and shrunk
    to ``column_px`` when wider (``column_px / (72 width_in)``).
    """
    width_in = check_real(width_in, "width_in", low=1e-3)
    dpi = check_real(dpi, "dpi", low=1.0)
    return dpi / 72.0 * min(1.0, column_px / (width_in * dpi))


def _texts_and_scale(fig, column_px: float) -> tuple[list, float]:
    """The figure's visible texts and its shown px per point (after a draw)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # the layout of a draw without rasterising: the same sizes, half the time
    # A tight save adds savefig.pad_inches on each side of the tight box.
    tight = fig.get_tightbbox(fig.canvas.get_renderer()).width + 2 * mpl.rcParams["savefig.pad_inches"]
    scale = shown_px_per_pt(max(fig.get_size_inches()[0], tight), fig.dpi, column_px)
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()], scale


def make_readable(fig, *, column_px: float = COLUMN_PX, min_px: float = MIN_TEXT_PX,
                  max_width_in: float = MAX_WIDTH_IN) -> float:
    """Narrow ``fig`` to ``max_width_in`` and enlarge its small text to ``min_px`` as shown.

    The width used is the larger of the figure's and its padded tight bounding box's (the
    inline backend saves the tight box). Returns the smallest text size, in shown px, afterwards.
    """
    if not isinstance(fig, mpl.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    column_px = check_real(column_px, "column_px", low=1.0)
    min_px = check_real(min_px, "min_px", low=0.0, low_open=True)
    max_width_in = check_real(max_width_in, "max_width_in", low=1e-3)
    w, h = fig.get_size_inches()
    if w > max_width_in:
        fig.set_size_inches(max_width_in, h * max_width_in / w)
    changed = True
    for _ in range(4):  # enlarging text can widen the tight box: settle in a few rounds
        texts, scale = _texts_and_scale(fig, column_px)
        need = min_px / scale
        small = [t for t in texts if t.get_fontsize() < need - 1e-6]
        if not small:
            changed = False
            break
        for ax in fig.axes:  # tick labels through tick_params, so new ticks inherit the size
            if any(t.get_fontsize() < need for t in ax.get_xticklabels() + ax.get_yticklabels()):
                ax.tick_params(axis="both", which="both", labelsize=need)
        for t in small:
            t.set_fontsize(need)
    if changed:  # a draw costs as much as the figure's own rendering: redraw only after a change
        texts, scale = _texts_and_scale(fig, column_px)
    return min(t.get_fontsize() for t in texts) * scale if texts else float("inf")


def _print_laid_out(fig, printer):
    """``printer(fig)`` with the layout :func:`make_readable` has just computed held fixed.

    The inline backend's tight save draws the figure twice, and each draw would rerun the
    layout engine (constrained layout costs about a third of a figure's display). The image is
    the same up to sub-pixel shifts: constrained layout rerun on a figure it has just laid out
    moves axes by a fraction of a pixel in some figures (twin axes, colorbars, polar axes; a
    one-pixel change of a tight box's height seen), so the bytes can differ though nothing
    visible does. The engine is restored afterwards, so a figure changed and shown again is
    laid out anew."""
    engine = fig.get_layout_engine()
    if engine is None:
        return printer(fig)
    fig.set_layout_engine("none")
    try:
        return printer(fig)
    finally:
        fig.set_layout_engine(engine)


def _install_display_hook() -> None:
    """Route every figure a notebook displays through :func:`make_readable` (no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    plt.figure()  # resolve the inline backend now, so its formatter is the one wrapped
    plt.close()
    from matplotlib.figure import Figure

    for mime in ("image/png", "image/svg+xml", "image/jpeg"):
        formatter = shell.display_formatter.formatters[mime]
        previous = formatter.for_type(Figure)
        if previous is None or getattr(previous, "_book_readable", False):
            continue

        def readable(fig, _previous=previous):
            make_readable(fig)
            return _print_laid_out(fig, _previous)

        readable._book_readable = True
        formatter.for_type(Figure, readable)


def plot_density_and_score_1d(mixture: GaussianMixture, times: list[float], *, xlim: tuple[float, float] = (-6, 6),
                              axes=None):
    """Densities ``q_t`` (left) and exact scores ``grad log q_t`` (right) of a 1-D mixture."""
    check_mixture(mixture, d=1)
    if not isinstance(times, (list, tuple)) or not times:
        raise TypeError(f"times must be a non-empty list of times >= 0, got {times!r}")
    times = [check_real(t, "times", low=0.0) for t in times]
    lo, hi = _limits(xlim, "xlim")
    if axes is not None:
        _check_two_axes(axes)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    x = torch.linspace(lo, hi, 800, dtype=torch.float64)[:, None]
    for t in times:
        axes[0].plot(x[:, 0], mixture.log_prob(x, t).exp().cpu(), label=f"t = {t:g}")
        axes[1].plot(x[:, 0], mixture.score(x, t)[:, 0].cpu(), label=f"t = {t:g}")
    axes[0].set(xlabel="x", ylabel="density $q_t(x)$")
    axes[1].set(xlabel="x", ylabel=r"score $\nabla \log q_t(x)$", ylim=(-12, 12))
    axes[0].legend()
    return axes


def plot_score_field_2d(mixture: GaussianMixture, t: float, *, lim: float = 4.5, arrows: int = 17, ax=None):
    """Density of ``q_t`` (filled contours) with the exact score field (arrows) in 2-D."""
    check_mixture(mixture, d=2)
    t = check_real(t, "t", low=0.0)
    lim = check_real(lim, "lim", low=0.0, low_open=True)
    arrows = check_int(arrows, "arrows", low=2)
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be None or a matplotlib Axes, got {type(ax).__name__}")
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    g = torch.linspace(-lim, lim, 200, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    dens = mixture.log_prob(torch.stack([X.ravel(), Y.ravel()], 1), t).exp().reshape(X.shape).cpu()
    ax.contourf(X, Y, dens, levels=14, cmap="Blues")
    a = torch.linspace(-lim, lim, arrows, dtype=torch.float64)
    A, B = torch.meshgrid(a, a, indexing="xy")
    pts = torch.stack([A.ravel(), B.ravel()], 1)
    s = mixture.score(pts, t).cpu()
    # Arrow length grows like log(1 + |s|): the field spans orders of magnitude near t = 0.
    norm = s.norm(dim=1, keepdim=True).clamp_min(1e-12)
    s = s / norm * torch.log1p(norm)
    ax.quiver(pts[:, 0], pts[:, 1], s[:, 0], s[:, 1], color="#D55E00", angles="xy", width=0.004)
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=f"$t = {t:g}$", aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.grid(False)
    return ax


def _limits(value: object, name: str) -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with ``low < high``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
    lo = check_real(value[0], f"{name}[0]")
    hi = check_real(value[1], f"{name}[1]", low=lo, low_open=True)
    return lo, hi


def _check_two_axes(axes: object) -> None:
    """A pair of matplotlib Axes (a list, tuple or the array ``plt.subplots(1, 2)`` returns)."""
    try:
        ok = len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"axes must be None or two matplotlib Axes (density, score), got {axes!r}")

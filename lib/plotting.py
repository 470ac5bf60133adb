"""One figure style for the whole book, and the recurring pictures.

Figures have an opaque white background with dark ink, so they read the same on the
book's light and dark pages; colours are the Okabe–Ito palette, safe for colour-blind
readers.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch
from cycler import cycler
from matplotlib.axes import Axes

from ._checks import check_int, check_mixture, check_real
from .mixtures import GaussianMixture

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

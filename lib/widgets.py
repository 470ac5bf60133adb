"""Interactive views that never block a non-interactive run.

``explore(draw, controls)`` shows ipywidgets sliders in a live Jupyter session. In a
papermill run or the book build (where ``BOOK_WIDGETS=0`` is set), or when ipywidgets is
missing, it draws ``draw`` once at the controls' default values instead, so the page has
a static figure of the same view.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._checks import check_callable, check_real


def widgets_enabled() -> bool:
    """Whether to show live widgets: ipywidgets importable, an IPython kernel running,
    and ``BOOK_WIDGETS`` not set to 0."""
    if os.environ.get("BOOK_WIDGETS", "1").strip() in ("0", "false", "no"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def explore(draw: Callable[..., Any], controls: dict[str, tuple]) -> None:
    """Explore ``draw(**values)`` with one slider per control.

    ``controls`` maps each argument to ``(low, high, step, default)``; integer bounds give
    an integer slider. Without live widgets, ``draw`` runs once at the defaults.
    """
    check_callable(draw, "draw")
    if not isinstance(controls, dict) or not controls:
        raise ValueError("controls must be a non-empty dict name -> (low, high, step, default)")
    for name, spec in controls.items():
        _check_control(name, spec)
    defaults = {k: v[3] for k, v in controls.items()}
    if not widgets_enabled():
        draw(**defaults)
        return
    import ipywidgets as w

    sliders = {}
    for name, (low, high, step, default) in controls.items():
        kind = w.IntSlider if all(isinstance(v, int) for v in (low, high, step, default)) else w.FloatSlider
        sliders[name] = kind(min=low, max=high, step=step, value=default, description=name,
                             continuous_update=False)
    w.interact(draw, **sliders)


def _check_control(name: object, spec: object) -> None:
    """``spec = (low, high, step, default)``: numbers, ``low < high``, ``step > 0``,
    ``default`` in ``[low, high]``; ``name`` a keyword of ``draw``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"controls keys must be argument names of draw, got {name!r}")
    if not (isinstance(spec, tuple) and len(spec) == 4):
        raise ValueError(f"controls[{name!r}] must be (low, high, step, default), got {spec!r}")
    low = check_real(spec[0], f"controls[{name!r}] low")
    check_real(spec[1], f"controls[{name!r}] high", low=low, low_open=True)
    check_real(spec[2], f"controls[{name!r}] step", low=0.0, low_open=True)
    check_real(spec[3], f"controls[{name!r}] default", low=low, high=spec[1])

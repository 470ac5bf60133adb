"""Interactive views that never block a non-interactive run.

``explore(draw, controls)`` always draws ``draw`` once at the controls' default values, as
an ordinary output: every run has the static figure, live front end or not. In a Jupyter
kernel with ipywidgets it then shows one slider per control; moving a slider redraws and
replaces that same output in place (an IPython display update), so nothing waits on a
front end: without one, the sliders are an inert widget view and the run goes on.
``BOOK_WIDGETS=0`` (set by the book build, whose pages are static) leaves the sliders out.
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
    from IPython.display import display

    view = LiveView(draw)
    view.show(**defaults)
    sliders = {}
    for name, (low, high, step, default) in controls.items():
        kind = w.IntSlider if all(isinstance(v, int) for v in (low, high, step, default)) else w.FloatSlider
        sliders[name] = kind(min=low, max=high, step=step, value=default, description=name,
                             continuous_update=False)

    def redraw(_change) -> None:
        view.update(**{k: s.value for k, s in sliders.items()})

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    display(w.VBox(list(sliders.values())))


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


class LiveView:
    """What ``draw`` displays (figures, text), shown under display ids and replaced in place.

    The outputs of ``draw`` are captured synchronously in the kernel and re-published with
    a ``display_id``; :meth:`update` re-runs ``draw`` and sends display updates, which a live
    front end applies to the same output area (and an executed notebook records).
    """

    def __init__(self, draw: Callable[..., Any]):
        if not callable(draw):
            raise TypeError("draw must be callable")
        self.draw = draw
        self.handles: list = []

    def _capture(self, values: dict) -> list:
        from IPython.utils.capture import capture_output

        with capture_output(stdout=True, stderr=False, display=True) as cap:
            self.draw(**values)
        outputs = [(o.data, o.metadata) for o in cap.outputs]
        if cap.stdout:
            outputs.insert(0, ({"text/plain": cap.stdout.rstrip("\n")}, {}))
        return outputs

    def show(self, **values) -> None:
        from IPython.display import display

        for data, meta in self._capture(values):
            self.handles.append(display(data, metadata=meta, raw=True, display_id=True))

    def update(self, **values) -> None:
        from IPython.display import display

        outputs = self._capture(values)
        for i, (data, meta) in enumerate(outputs):
            if i < len(self.handles):
                self.handles[i].update(data, metadata=meta, raw=True)
            else:
                self.handles.append(display(data, metadata=meta, raw=True, display_id=True))
        for handle in self.handles[len(outputs):]:
            handle.update({"text/plain": ""}, raw=True)

import pytest
import torch

import lib


def test_quick_mode_reads_environment(monkeypatch):
    monkeypatch.delenv("BOOK_QUICK", raising=False)
    assert lib.quick_mode(False) is False and lib.quick_mode(True) is True
    monkeypatch.setenv("BOOK_QUICK", "1")
    assert lib.quick_mode(False) is True


def test_seed_everything_is_reproducible():
    g1 = lib.seed_everything(5)
    a = torch.randn(3), torch.randn(3, generator=g1)
    g2 = lib.seed_everything(5)
    b = torch.randn(3), torch.randn(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_record_rejects_what_the_text_must_not_quote():
    with pytest.raises(ValueError, match="must be finite"):
        lib.record("x", float("nan"))
    with pytest.raises(ValueError, match="single number"):
        lib.record("x", torch.ones(2))
    with pytest.raises(TypeError, match="value of record.* must be a number or a string"):
        lib.record("x", [1, 2])


def test_explore_draws_static_figure_when_widgets_are_off(monkeypatch):
    monkeypatch.setenv("BOOK_WIDGETS", "0")
    seen = []
    lib.explore(lambda a, b: seen.append((a, b)), {"a": (0, 10, 1, 3), "b": (0.0, 1.0, 0.1, 0.5)})
    assert seen == [(3, 0.5)] and not lib.widgets_enabled()


def test_explore_bad_controls():
    with pytest.raises(ValueError, match="controls must be a non-empty dict"):
        lib.explore(print, {})
    with pytest.raises(ValueError, match=r"default must lie in \[0, 1\], got 5"):
        lib.explore(print, {"a": (0, 1, 1, 5)})
    with pytest.raises(TypeError, match="draw must be callable"):
        lib.explore(3, {"a": (0, 1, 1, 0)})


def test_record_makes_the_display_call_of_myst_nb_glue(monkeypatch):
    """lib.record glues without importing myst-nb's glue module (slow: nbformat, jsonschema);
    its display call must be the one myst_nb.glue(name, value, display=False) makes."""
    import IPython.display
    import myst_nb.ext.glue

    calls = {}
    monkeypatch.setattr(myst_nb.ext.glue, "ipy_display", lambda *a, **k: calls.setdefault("myst_nb", (a, k)))
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.setdefault("lib", (a, k)))
    for value in (0.125, 7, "PASS"):
        calls.clear()
        myst_nb.glue("key", value, display=False)
        lib.record("key", value)
        assert calls["lib"] == calls["myst_nb"]

"""Helpers every chapter uses: the quick switch, seeding, and recording results.

A chapter's ``parameters`` cell sets ``QUICK = quick_mode(False)``: papermill can pass
``QUICK=True`` and the book build can set ``BOOK_QUICK=1``; either shrinks the work.
Numbers the text states are recorded with :func:`record`, which glues them (myst-nb) so
the page shows the computed value and the tests can read it from the executed notebook.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
from numbers import Real

import numpy as np
import torch

from ._checks import check_bool, check_seed

_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def quick_mode(default: bool = False) -> bool:
    """``True`` if ``default`` is, or the environment sets ``BOOK_QUICK=1`` (or ``true``/``yes``).

    ``default`` must be a bool (a string such as ``"no"`` would read as true); an
    unrecognised ``BOOK_QUICK`` value is an error rather than a silent full run."""
    default = check_bool(default, "default")
    env = os.environ.get("BOOK_QUICK", "0").strip().lower()
    if env not in _TRUE + _FALSE:
        raise ValueError(f"the environment variable BOOK_QUICK must be one of {_TRUE + _FALSE[1:]}, got {env!r}")
    return default or env in _TRUE


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same.

    ``seed`` is an integer in ``[0, 2**32 - 1]``, the range NumPy's seeding accepts."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def record(name: str, value: object) -> None:
    """Glue ``value`` under ``name`` for the text (``{glue:text}`name:.3f```) and tests.

    Numbers are stored as plain Python floats or ints so the stored text parses back;
    a NaN or inf raises, since the text must never quote one. Returns nothing, so a cell
    that ends with a ``record`` call displays nothing extra. Without myst-nb (a plain
    Jupyter or Colab session) the value is printed instead.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (the glue key), got {type(name).__name__}")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"name must be a non-empty glue key without spaces, got {name!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"value of record({name!r}) must be a single number, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Real) and not isinstance(value, (bool, int)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value of record({name!r}) must be finite (the text quotes it), got {value}")
    elif not isinstance(value, (int, str)):
        raise TypeError(f"value of record({name!r}) must be a number or a string, got {type(value).__name__}")
    if not _glue_hidden(name, value):  # no book toolchain: show the number instead of gluing it
        print(f"{name} = {value}")


GLUE_PREFIX = "application/papermill.record/"  # myst-nb's mime prefix for a glued value not shown


def _glue_hidden(name: str, value: object) -> bool:
    """Glue ``value`` under ``name`` as ``myst_nb.glue(name, value, display=False)`` does.

    The same display call, made here because importing ``myst_nb``'s glue module imports
    nbformat and jsonschema: about 1.4 s of CPU, a tenth of a chapter's quick run, for a
    function of four lines. Returns ``False`` (and glues nothing) where myst-nb or IPython
    is not installed. ``tests/test_book_helpers.py`` checks the call against myst-nb's own.
    """
    if importlib.util.find_spec("myst_nb") is None or importlib.util.find_spec("IPython") is None:
        return False
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
    return True

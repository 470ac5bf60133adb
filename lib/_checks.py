"""Input validation shared by every public function of :mod:`lib`.

Each helper raises ``TypeError`` for a wrong kind of argument and ``ValueError`` for a
wrong value, and names the argument and the allowed range in the message, so that a
mistake surfaces at the call that made it rather than as a NaN several steps later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

import numpy as np
import torch
from torch import Tensor

DEFAULT_DTYPE = torch.float64

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""Any score ``(x, t) -> f(x, t)``: a mixture's exact ``score``, a network, a corruption."""


def as_tensor(
    value: object,
    name: str,
    *,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
    finite: bool = True,
) -> Tensor:
    """Convert ``value`` to a finite floating tensor, or raise naming ``name``.

    ``finite=False`` leaves the finiteness check (one pass over the data) to the caller, who
    must then make it, e.g. chunk by chunk while each chunk is in cache anyway."""
    if dtype is not None:
        check_float_dtype(dtype)
    if isinstance(value, Tensor):
        out = value
    elif isinstance(value, (Real, list, tuple, np.ndarray, np.generic)) and not isinstance(value, bool):
        try:
            lists = isinstance(value, (Real, list, tuple)) and not isinstance(value, np.generic)
            out = torch.as_tensor(value, dtype=dtype or DEFAULT_DTYPE) if lists else torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            # nested lists holding strings, None or ragged rows; arrays of strings or objects
            raise TypeError(f"{name} must hold real numbers in a regular (rectangular) array: {err}") from None
    else:
        raise TypeError(f"{name} must be a tensor, array or number, got {type(value).__name__}")
    if out.is_complex() or not (out.is_floating_point() or out.dtype in _INT_DTYPES):
        raise TypeError(f"{name} must hold real numbers, got dtype {out.dtype}")
    if dtype is not None or not out.is_floating_point():
        out = out.to(dtype=dtype or DEFAULT_DTYPE)
    if device is not None:
        out = out.to(check_device(device))
    if finite:
        require_finite(out, name)
    return out


def require_finite(x: Tensor, name: str) -> Tensor:
    """``x`` itself, or ValueError naming ``name`` if it holds a NaN or inf."""
    if not _all_finite(x):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _all_finite(x: Tensor) -> bool:
    """Whether ``x`` holds no NaN or inf: one reduction (NaN propagates through min and max),
    about 8x cheaper on large arrays than ``isfinite(x).all()``, which allocates a mask."""
    if x.numel() == 0 or not (x.is_floating_point() or x.is_complex()):
        return True
    if x.is_complex():
        return bool(torch.isfinite(x).all())
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def as_points(
    x: object,
    name: str,
    d: int | None = None,
    *,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
    finite: bool = True,
) -> Tensor:
    """A finite ``(n, d)`` tensor of points; a 1-D input is read as ``n`` points in 1-D
    when ``d == 1``. ``finite`` as in :func:`as_tensor`."""
    out = as_tensor(x, name, dtype=dtype, device=device, finite=finite)
    if out.ndim == 1 and d == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(out.shape)}")
    if d is not None and out.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns, got {out.shape[1]}")
    if out.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one point")
    return out


def as_times(
    t: object,
    name: str = "t",
    *,
    n: int | None = None,
    allow_zero: bool = True,
    dtype: torch.dtype = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Times as a tensor: a scalar (0-d) or one per row (shape ``(n,)``).

    ``t >= 0`` is required, ``t > 0`` when ``allow_zero`` is false (the objectives
    divide by ``s_t^2 = 1 - exp(-2t)``, which vanishes at ``t = 0``).
    """
    out = as_tensor(t, name, dtype=dtype, device=device)
    if out.ndim > 1 or (out.ndim == 1 and n is not None and out.shape[0] != n):
        want = "a scalar" if n is None else f"a scalar or shape ({n},)"
        raise ValueError(f"{name} must be {want}, got shape {tuple(out.shape)}")
    if allow_zero and (out < 0).any():
        raise ValueError(f"{name} must be >= 0, got min {out.min().item():.3g}")
    if not allow_zero and (out <= 0).any():
        raise ValueError(
            f"{name} must be > 0 (s_t^2 = 1 - exp(-2t) vanishes at t = 0), "
            f"got min {out.min().item():.3g}"
        )
    return out


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """A floating torch dtype (float16, bfloat16, float32 or float64)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch dtype such as torch.float64 or torch.float32, got {dtype!r}")
    return dtype


def check_device(device: object, name: str = "device") -> torch.device | None:
    """``None`` (keep where the data is) or a device torch knows and this machine has."""
    if device is None or (isinstance(device, torch.device) and device.type == "cpu"):
        return device
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f"{name} must be None, a string such as 'cpu' or 'cuda', or a torch.device, "
                        f"got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{name} must name a torch device such as 'cpu' or 'cuda': {err}") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"{name} {str(dev)!r} is not available on this machine")
    return dev


def rel_tol(dtype: torch.dtype, count: int = 1) -> float:
    """A tolerance for rounding in ``dtype``: ``16 count eps`` (``count`` terms summed), at least
    ``1e-8`` so that numbers typed to eight decimals are accepted in float64."""
    return max(1e-8, 16 * max(1, count) * torch.finfo(dtype).eps)


SEED_MAX = 2**32 - 1  # NumPy's legacy seeding takes 32-bit seeds


def check_seed(value: object, name: str = "seed") -> int:
    """A seed: an integer in ``[0, 2**32 - 1]`` (the range every RNG the book seeds accepts)."""
    return check_int(value, name, low=0, high=SEED_MAX)


def check_bool(value: object, name: str) -> bool:
    """``True`` or ``False`` (a string such as ``"no"`` is refused: it would read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_int(value: object, name: str, *, low: int = 1, high: int | None = None) -> int:
    """An integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be >= {low}{upper}, got {value}")
    return value


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, Real):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value:g}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def check_callable(value: object, name: str) -> Callable:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_mixture(value: object, name: str = "mixture", *, d: int | None = None):
    """A :class:`lib.mixtures.GaussianMixture`, of dimension ``d`` if given."""
    from .mixtures import GaussianMixture  # lazy: mixtures itself uses these checks

    if not isinstance(value, GaussianMixture):
        raise TypeError(f"{name} must be a GaussianMixture, got {type(value).__name__}")
    if d is not None and value.d != d:
        raise ValueError(f"{name} must be a GaussianMixture in d = {d} dimension(s), got d = {value.d}")
    return value


def check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    return generator


def call_score(score_fn: ScoreFn, x: Tensor, t: Tensor | float, name: str = "score_fn",
               *, check_finite: bool = True) -> Tensor:
    """``score_fn(x, t)``, checked to be a tensor of the shape of ``x`` (a score is a vector
    field: broadcasting a wrong shape would give finite garbage) and, unless
    ``check_finite`` is false, finite."""
    out = score_fn(x, t)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name} must return the shape of x {tuple(x.shape)}, got {tuple(out.shape)}")
    if check_finite and not torch.isfinite(out).all():
        when = f"t = {float(t):.3g}" if not isinstance(t, Tensor) or t.numel() == 1 else "some t"
        raise ValueError(f"{name} returned non-finite values (NaN or inf) at {when}")
    return out


def check_finite_output(value: Tensor, what: str) -> Tensor:
    """Raise instead of handing back NaN or inf computed from valid inputs."""
    if not _all_finite(value):
        raise ValueError(
            f"{what} is not finite; the inputs are outside the range this function "
            "handles in floating point"
        )
    return value

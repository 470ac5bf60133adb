"""A resumable on-disk cache of finished runs, for sweeps of many small trainings.

A *run* is described by a config: a JSON-able dict (numbers, strings, booleans, lists,
nested dicts). Its key is the SHA-256 of the config's canonical JSON (sorted keys, numbers
normalised so that ``1``, ``1.0`` and ``True`` are one key, as they are one dict key in
Python), so equal configs share a key whatever the order of their entries. A finished run
is stored as ``<root>/<key>.pt``: written to a temporary file, flushed to disk (fsync) and
renamed, so an interrupted or killed sweep never leaves a half-written result under a
final name. Results must be plain data (tensors, numbers, strings, lists, tuples, dicts):
they are read back with ``torch.load(weights_only=True)``, so a cache folder cannot run code.

A stored entry that cannot be read (a disk filled up, a copy cut short) is moved aside to
``<key>.pt.corrupt`` with a warning naming the file, and the run is computed again;
temporary files left by a killed writer are removed when the cache is opened.

:func:`run_sweep` takes a function that computes *several* runs at once (e.g. one batched
training of many networks, :mod:`lib.batched`), splits the missing configs into groups
that can share such a computation, and saves each result as soon as it arrives: a
``compute`` written as a generator (``yield`` one result per config) has each run stored
the moment it finishes, so an interrupt loses only the run in progress.
Put into the config whatever changes the result, code version included
(:func:`code_version` hashes the source of :mod:`lib`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ._checks import check_bool, check_callable, check_int

Config = dict[str, Any]
_MISSING = object()


def config_key(config: Config) -> str:
    """The SHA-256 (hex) of ``config``'s canonical JSON: sorted keys, no whitespace, numbers
    normalised (``True`` -> 1, integral floats -> ints, NumPy scalars -> Python numbers)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        text = json.dumps(_normalise(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config must be JSON-able (numbers, strings, lists, dicts; no NaN): {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()


def _normalise(value: Any) -> Any:
    """Equal numbers get equal JSON: ``1 == 1.0 == True`` in Python, so one key for all."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, Integral):  # bool and NumPy integers included
        return int(value)
    if isinstance(value, Real):
        f = float(value)
        if math.isfinite(f) and f == int(f) and abs(f) < 2**53:
            return int(f)
        return f
    return value


def code_version() -> str:
    """A short hash of every ``lib/*.py`` source file: put it in a config so that cached
    runs are recomputed when the library changes."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class SweepCache:
    """Finished runs stored as ``<root>/<config_key(config)>.pt``; ``root`` is created, and
    temporary files of writers that were killed are removed."""

    def __init__(self, root: str | os.PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()

    def path(self, config: Config) -> Path:
        return self.root / f"{config_key(config)}.pt"

    def has(self, config: Config) -> bool:
        return self.path(config).exists()

    def load(self, config: Config) -> Any:
        """The stored result of ``config`` (tensors on the CPU); ``KeyError`` if it is not
        there (or could not be read: then it is moved aside with a warning)."""
        result = self.get(config)
        if result is _MISSING:
            raise KeyError(f"no finished run for config {config}")
        return result

    def get(self, config: Config, default: Any = _MISSING) -> Any:
        """The stored result, or ``default`` if there is none. An entry that cannot be read
        is renamed ``<key>.pt.corrupt`` (a warning names it) and counts as missing."""
        path = self.path(config)
        try:
            return _read(path)
        except FileNotFoundError:
            return default
        except Exception as err:  # torch raises many kinds for a damaged zip or pickle
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(f"sweep cache entry {path} could not be read ({type(err).__name__}: {err}); "
                          f"moved it to {aside.name} and will compute the run again", RuntimeWarning,
                          stacklevel=2)
            return default

    def save(self, config: Config, result: Any) -> Path:
        """Store ``result`` for ``config`` atomically: write ``<key>.<pid>.<random>.tmp``,
        fsync it, check that it reads back, rename it, fsync the folder."""
        path = self.path(config)
        self._write(config, result)
        return path

    def _write(self, config: Config, result: Any) -> Any:
        """:meth:`save`, returning the result as read back (as a later :meth:`load` gives it)."""
        path = self.path(config)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f"{path.stem}.{os.getpid()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"config": config, "result": result}, f)
                f.flush()
                os.fsync(f.fileno())
            try:
                back = _read(Path(tmp))
            except Exception as err:
                raise TypeError(
                    "result must hold only tensors, numbers, strings, lists, tuples and dicts "
                    f"(the cache reads with weights_only=True): {err}"
                ) from None
            os.replace(tmp, path)
            _fsync_dir(self.root)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return back

    def _remove_orphans(self) -> None:
        """Delete ``*.tmp`` files whose writing process no longer runs (killed mid-save)."""
        for tmp in self.root.glob("*.tmp"):
            parts = tmp.name.split(".")
            pid = int(parts[1]) if len(parts) >= 4 and parts[1].isdigit() else None
            if pid is None or not _alive(pid):
                tmp.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.pt"))


def _read(path: Path) -> Any:
    return torch.load(path, weights_only=True, map_location="cpu")["result"]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process's own saves clean up after themselves
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)


def run_sweep(
    configs: Sequence[Config],
    compute: Callable[[list[Config]], Iterable[Any]],
    cache: SweepCache,
    *,
    group_by: Callable[[Config], Hashable] | None = None,
    max_group: int | None = None,
    progress: bool = True,
) -> list[Any]:
    """Results for every config, in order: loaded from ``cache`` when finished, otherwise
    computed by ``compute(group)`` (a list of configs -> one result per config, in order,
    as a list or yielded one by one) and saved as each arrives. Every result is returned as
    read back from the cache (tensors on the CPU), whether it was computed now or before.

    Missing configs are grouped by ``group_by(config)`` (configs that one batched
    computation can handle together, e.g. the same architecture and step count; default:
    all in one group), each group split into chunks of at most ``max_group``.
    """
    if not isinstance(configs, (list, tuple)):
        raise TypeError(f"configs must be a list of dicts, got {type(configs).__name__}")
    check_callable(compute, "compute")
    if not isinstance(cache, SweepCache):
        raise TypeError(f"cache must be a SweepCache, got {type(cache).__name__}")
    if group_by is not None:
        check_callable(group_by, "group_by")
    if max_group is not None:
        max_group = check_int(max_group, "max_group")
    check_bool(progress, "progress")
    for i, c in enumerate(configs):
        if not isinstance(c, dict):
            raise TypeError(f"configs[{i}] must be a dict, got {type(c).__name__}")
    keys = [config_key(c) for c in configs]
    done: dict[str, Any] = {}
    missing: dict[str, Config] = {}
    for k, c in zip(keys, configs):
        if k not in done and k not in missing:
            result = cache.get(c)  # an unreadable entry is set aside and counts as missing
            if result is _MISSING:
                missing[k] = c
            else:
                done[k] = result
    groups: dict[Hashable, list[Config]] = {}
    for c in missing.values():
        groups.setdefault(None if group_by is None else group_by(c), []).append(c)
    chunks = [g[i:i + (max_group or len(g))] for g in groups.values() for i in range(0, len(g), max_group or len(g))]
    for chunk in tqdm(chunks, desc="sweep", disable=not progress, leave=False):
        for c, r in _results(compute(list(chunk)), chunk):
            # saved at once: an interrupt later in the chunk keeps this run
            done[config_key(c)] = cache._write(c, r)
    return [done[k] for k in keys]


def _results(results: Iterable[Any], chunk: list[Config]):
    """Pair each config of ``chunk`` with its result as ``compute`` produces it (a list, or
    a generator yielding one result per config as it finishes)."""
    if not isinstance(results, Iterable):
        raise TypeError(f"compute must return a list (or iterator) of results, got {type(results).__name__}")
    count = 0
    for r in results:
        if count == len(chunk):
            raise ValueError(f"compute returned more than {len(chunk)} results for {len(chunk)} configs")
        yield chunk[count], r
        count += 1
    if count != len(chunk):
        raise ValueError(f"compute returned {count} results for {len(chunk)} configs")

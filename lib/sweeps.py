"""A resumable on-disk cache of finished runs, for sweeps of many small trainings.

A *run* is described by a config: a JSON-able dict (numbers, strings, booleans, lists,
nested dicts). Its key is the SHA-256 of the config's canonical JSON (sorted keys), so
equal configs share a key whatever the order of their entries. A finished run is stored
as ``<root>/<key>.pt`` (``torch.save``), written to a temporary file first and renamed,
so an interrupted sweep never leaves a half-written result behind; running the sweep again
loads everything finished and computes only what is missing.

:func:`run_sweep` takes a function that computes *several* runs at once (e.g. one batched
training of many networks, :mod:`lib.batched`), splits the missing configs into groups
that can share such a computation, and saves each group's results as soon as it is done.
Put into the config whatever changes the result, code version included
(:func:`code_version` hashes the source of :mod:`lib`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ._checks import check_callable, check_int

Config = dict[str, Any]


def config_key(config: Config) -> str:
    """The SHA-256 (hex) of ``config``'s canonical JSON: sorted keys, no whitespace."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config must be JSON-able (numbers, strings, lists, dicts; no NaN): {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()


def code_version() -> str:
    """A short hash of every ``lib/*.py`` source file: put it in a config so that cached
    runs are recomputed when the library changes."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class SweepCache:
    """Finished runs stored as ``<root>/<config_key(config)>.pt``; ``root`` is created."""

    def __init__(self, root: str | os.PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, config: Config) -> Path:
        return self.root / f"{config_key(config)}.pt"

    def has(self, config: Config) -> bool:
        return self.path(config).exists()

    def load(self, config: Config) -> Any:
        """The stored result of ``config``; ``KeyError`` if it is not there."""
        path = self.path(config)
        if not path.exists():
            raise KeyError(f"no finished run for config {config}")
        return torch.load(path, weights_only=False)["result"]

    def save(self, config: Config, result: Any) -> Path:
        """Store ``result`` for ``config`` atomically (temporary file, then rename)."""
        path = self.path(config)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"config": config, "result": result}, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.pt"))


def run_sweep(
    configs: Sequence[Config],
    compute: Callable[[list[Config]], Sequence[Any]],
    cache: SweepCache,
    *,
    group_by: Callable[[Config], Hashable] | None = None,
    max_group: int | None = None,
    progress: bool = True,
) -> list[Any]:
    """Results for every config, in order: loaded from ``cache`` when finished, otherwise
    computed by ``compute(group)`` (a list of configs -> one result per config, in order)
    and saved at once.

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
    keys = [config_key(c) for c in configs]
    missing: dict[str, Config] = {}
    for k, c in zip(keys, configs):
        if k not in missing and not cache.has(c):
            missing[k] = c
    groups: dict[Hashable, list[Config]] = {}
    for c in missing.values():
        groups.setdefault(None if group_by is None else group_by(c), []).append(c)
    chunks = [g[i:i + (max_group or len(g))] for g in groups.values() for i in range(0, len(g), max_group or len(g))]
    for chunk in tqdm(chunks, desc="sweep", disable=not progress, leave=False):
        results = list(compute(list(chunk)))
        if len(results) != len(chunk):
            raise ValueError(f"compute returned {len(results)} results for {len(chunk)} configs")
        for c, r in zip(chunk, results):
            cache.save(c, r)
    return [cache.load(c) for c in configs]

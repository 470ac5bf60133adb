"""lib.sweeps: config hashing, atomic storage, and resuming an interrupted sweep."""

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.sweeps import SweepCache, code_version, config_key, run_sweep


def test_config_key_is_canonical():
    a = config_key({"m": 100, "seed": 1, "nested": {"x": 1.5, "y": [1, 2]}})
    b = config_key({"seed": 1, "nested": {"y": [1, 2], "x": 1.5}, "m": 100})
    assert a == b and len(a) == 64
    assert config_key({"m": 100, "seed": 2}) != config_key({"m": 100, "seed": 1})
    assert config_key({"m": 100}) != config_key({"m": 100.5})


def test_save_load_roundtrip(tmp_path):
    cache = SweepCache(tmp_path / "runs")
    cfg = {"m": 3}
    assert not cache.has(cfg) and len(cache) == 0
    cache.save(cfg, {"w": torch.arange(4.0), "loss": 0.5})
    assert cache.has(cfg) and len(cache) == 1
    out = cache.load(cfg)
    assert torch.equal(out["w"], torch.arange(4.0)) and out["loss"] == 0.5
    assert not list((tmp_path / "runs").glob("*.tmp"))  # no temporary left behind
    with pytest.raises(KeyError):
        cache.load({"m": 4})


def test_interrupted_sweep_recomputes_nothing_finished(tmp_path):
    cache = SweepCache(tmp_path)
    configs = [{"width": w, "seed": s} for w in (8, 16, 32) for s in range(4)]
    computed: list[dict] = []

    def compute(group):
        if group[0]["width"] == 32 and fail["now"]:
            raise RuntimeError("interrupted")
        computed.extend(group)
        return [c["width"] * 10 + c["seed"] for c in group]

    fail = {"now": True}
    with pytest.raises(RuntimeError, match="interrupted"):
        run_sweep(configs, compute, cache, group_by=lambda c: c["width"], progress=False)
    assert len(computed) == 8 and len(cache) == 8  # widths 8 and 16 finished and stored

    fail["now"] = False
    computed.clear()
    out = run_sweep(configs, compute, cache, group_by=lambda c: c["width"], progress=False)
    assert out == [c["width"] * 10 + c["seed"] for c in configs]
    assert sorted(c["seed"] for c in computed) == [0, 1, 2, 3]
    assert all(c["width"] == 32 for c in computed)

    computed.clear()
    assert run_sweep(configs, compute, cache, progress=False) == out
    assert computed == []


def test_groups_chunks_and_duplicates(tmp_path):
    cache = SweepCache(tmp_path)
    calls = []

    def compute(group):
        calls.append(len(group))
        return [c["i"] for c in group]

    configs = [{"i": i, "g": i % 2} for i in range(7)] + [{"i": 0, "g": 0}]
    out = run_sweep(configs, compute, cache, group_by=lambda c: c["g"], max_group=2, progress=False)
    assert out == [0, 1, 2, 3, 4, 5, 6, 0]
    assert sorted(calls) == [1, 2, 2, 2]  # 4 + 3 configs, chunks of <= 2, duplicate computed once


def test_code_version_is_stable():
    assert code_version() == code_version() and len(code_version()) == 16


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="config"):
        config_key([1, 2])
    with pytest.raises(ValueError, match="config must be JSON-able"):
        config_key({"x": float("nan")})
    with pytest.raises(ValueError, match="config must be JSON-able"):
        config_key({"x": object()})
    with pytest.raises(TypeError, match="root"):
        SweepCache(3)
    cache = SweepCache(tmp_path)
    with pytest.raises(TypeError, match="configs"):
        run_sweep({"a": 1}, lambda g: g, cache)
    with pytest.raises(TypeError, match="compute"):
        run_sweep([{"a": 1}], "f", cache)
    with pytest.raises(TypeError, match="cache"):
        run_sweep([{"a": 1}], lambda g: g, str(tmp_path))
    with pytest.raises(ValueError, match="max_group"):
        run_sweep([{"a": 1}], lambda g: g, cache, max_group=0)
    with pytest.raises(ValueError, match="compute returned"):
        run_sweep([{"a": 1}, {"a": 2}], lambda g: [1], cache, progress=False)


# ---------------------------------------------------------------- a cache that heals itself
ROOT = Path(__file__).resolve().parents[1]


def _value(c):
    return {"w": torch.full((3,), float(c["i"])), "loss": c["i"] / 10}


def _compute(log):
    def compute(group):
        log.extend(c["i"] for c in group)
        return [_value(c) for c in group]

    return compute


def _same(a, b):
    return torch.equal(a["w"], b["w"]) and a["loss"] == b["loss"]


def test_a_truncated_entry_is_set_aside_and_recomputed(tmp_path):
    cache = SweepCache(tmp_path)
    configs = [{"i": i} for i in range(4)]
    run_sweep(configs, _compute([]), cache, progress=False)
    damaged = cache.path(configs[2])
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a copy cut short

    log: list[int] = []
    with pytest.warns(RuntimeWarning, match=rf"{damaged.name}.*could not be read.*compute the run again"):
        out = run_sweep(configs, _compute(log), SweepCache(tmp_path), progress=False)
    assert log == [2]  # only the damaged run is computed again
    assert all(_same(o, _value(c)) for o, c in zip(out, configs))
    assert (tmp_path / (damaged.name + ".corrupt")).exists()  # kept for inspection, out of the way

    log.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run_sweep(configs, _compute(log), SweepCache(tmp_path), progress=False)
    assert log == [] and all(_same(o, _value(c)) for o, c in zip(again, configs))


def test_a_garbage_entry_is_set_aside_by_load(tmp_path):
    cache = SweepCache(tmp_path)
    cache.path({"i": 0}).write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="could not be read"):
        with pytest.raises(KeyError):
            cache.load({"i": 0})
    assert not cache.has({"i": 0})


class _Marker:
    """Unpickling this object would create a file: a cache folder must not be able to run code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_loading_never_runs_code_from_the_cache(tmp_path):
    cache = SweepCache(tmp_path)
    marker = tmp_path / "ran"
    torch.save({"config": {"i": 0}, "result": _Marker(str(marker))}, cache.path({"i": 0}))
    with pytest.warns(RuntimeWarning, match="could not be read"):
        out = run_sweep([{"i": 0}], _compute([]), cache, progress=False)
    assert not marker.exists() and _same(out[0], _value({"i": 0}))
    with pytest.raises(TypeError, match="result must hold only tensors"):  # nor can one be stored
        cache.save({"i": 1}, _Marker(str(marker)))
    assert not marker.exists() and not cache.has({"i": 1}) and not list(tmp_path.glob("*.tmp"))


_KILLED_WRITER = textwrap.dedent("""
    import os, sys, time, torch
    sys.path.insert(0, {root!r})
    from lib.sweeps import SweepCache, run_sweep

    real_replace, saves = os.replace, [0]
    def hang_before_third_rename(src, dst):  # the third result is written and fsynced, not renamed
        if saves[0] == 2:
            print("IN_SAVE", flush=True)
            time.sleep(60)
        saves[0] += 1
        real_replace(src, dst)
    os.replace = hang_before_third_rename
    compute = lambda group: [{{"w": torch.full((3,), float(c["i"])), "loss": c["i"] / 10}} for c in group]
    run_sweep([{{"i": i}} for i in range(4)], compute, SweepCache({root_cache!r}), max_group=1, progress=False)
""")


def test_a_writer_killed_mid_save_loses_nothing_finished(tmp_path):
    """SIGKILL while the third result is being saved: the two finished runs stay, no partial
    entry appears under a final name, and the orphaned temporary file is removed."""
    script = _KILLED_WRITER.format(root=str(ROOT), root_cache=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "IN_SAVE"
        orphans = list(tmp_path.glob("*.tmp"))
        assert len(orphans) == 1 and orphans[0].stat().st_size > 0
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    cache = SweepCache(tmp_path)  # opening the cache removes the dead writer's temporary file
    assert not list(tmp_path.glob("*.tmp"))
    assert len(cache) == 2 and cache.has({"i": 0}) and cache.has({"i": 1})
    log: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = run_sweep([{"i": i} for i in range(4)], _compute(log), cache, progress=False)
    assert log == [2, 3] and all(_same(o, _value({"i": i})) for i, o in enumerate(out))


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    live = tmp_path / f"abc.{os.getppid()}.xyz.tmp"  # our parent process is alive
    live.write_bytes(b"partial")
    dead = tmp_path / "tmpq1w2e3.tmp"  # no writer named: left by an older version
    dead.write_bytes(b"partial")
    SweepCache(tmp_path)
    assert live.exists() and not dead.exists()


def test_an_interrupt_mid_group_keeps_every_finished_run(tmp_path):
    """A compute that yields each run as it finishes: an interrupt after two of five runs of
    one group keeps those two; the rerun computes only the other three."""
    configs = [{"i": i} for i in range(5)]
    log: list[int] = []

    def interrupted(group):
        for c in group:
            if c["i"] == 2:
                raise KeyboardInterrupt
            log.append(c["i"])
            yield _value(c)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, interrupted, SweepCache(tmp_path), progress=False)
    cache = SweepCache(tmp_path)
    assert log == [0, 1] and len(cache) == 2 and not list(tmp_path.glob("*.tmp"))
    log.clear()
    out = run_sweep(configs, _compute(log), cache, progress=False)
    assert log == [2, 3, 4] and all(_same(o, _value(c)) for o, c in zip(out, configs))


def test_a_generator_yielding_too_few_results_is_an_error_after_saving_them(tmp_path):
    cache = SweepCache(tmp_path)

    def short(group):
        yield _value(group[0])

    with pytest.raises(ValueError, match="compute returned 1 results for 3 configs"):
        run_sweep([{"i": i} for i in range(3)], short, cache, progress=False)
    assert len(cache) == 1


def test_config_keys_normalise_equal_numbers():
    assert config_key({"lr": 1}) == config_key({"lr": 1.0}) == config_key({"lr": True})
    assert config_key({"a": [0, {"b": 2.0}]}) == config_key({"a": [0.0, {"b": 2}]})
    assert config_key({"lr": False}) == config_key({"lr": 0})
    assert config_key({"m": np.int64(3), "x": np.float64(0.5)}) == config_key({"m": 3, "x": 0.5})
    assert config_key({"lr": 1}) != config_key({"lr": 1.5})
    assert config_key({"lr": 0.1}) != config_key({"lr": 0.1 + 1e-12})


def test_save_fsyncs_the_file_before_the_rename(tmp_path, monkeypatch):
    cache = SweepCache(tmp_path)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    cache.save({"i": 0}, _value({"i": 0}))
    assert events == ["fsync-file", "rename", "fsync-dir"]

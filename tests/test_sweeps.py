"""lib.sweeps: config hashing, atomic storage, and resuming an interrupted sweep."""

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

"""lib.threads: small-work loops pick their threads, restore the caller's, and yield to an explicit choice."""

import pytest
import torch

import lib
from lib.threads import set_small_work_threads, small_work, small_work_threads, use


@small_work
def threads_inside() -> int:
    return torch.get_num_threads()


@pytest.fixture
def restore():
    before_setting, before_threads = small_work_threads(), torch.get_num_threads()
    yield
    set_small_work_threads(before_setting)
    torch.set_num_threads(before_threads)


def test_use_sets_and_restores(restore):
    torch.set_num_threads(1)
    with use(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1


def test_small_work_uses_the_setting_and_restores(restore):
    torch.set_num_threads(2)
    set_small_work_threads(1)
    assert threads_inside() == 1
    assert torch.get_num_threads() == 2
    set_small_work_threads(None)  # leave torch's setting alone
    assert threads_inside() == 2


def test_explicit_choice_wins_over_the_setting(restore):
    set_small_work_threads(1)
    with use(2):
        assert threads_inside() == 2
    assert threads_inside() == 1


def test_lib_loops_run_on_the_setting(restore, monkeypatch):
    """train_dsm and sample call the score network on the small-work threads."""
    seen = []
    net = lib.ScoreMLP(1, 8, 1, seed=0, dtype=torch.float64)
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x, t: (seen.append(torch.get_num_threads()), forward(x, t))[1])
    torch.set_num_threads(2)
    set_small_work_threads(1)
    lib.train_dsm(net, torch.randn(16, 1, dtype=torch.float64), t=0.5, steps=2, progress=False)
    lib.sample(net, 4, 1, n_steps=2)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_bad_settings(restore):
    with pytest.raises(ValueError, match="n must be"):
        set_small_work_threads(0)
    with pytest.raises(TypeError):
        set_small_work_threads(1.5)
    with pytest.raises(ValueError, match="n must be"):
        with use(0):
            pass

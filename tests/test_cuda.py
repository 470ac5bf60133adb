"""The CUDA paths give the CPU's answers (skipped on machines without a GPU)."""

import pytest
import torch

import lib

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_mixture_on_cuda_matches_cpu():
    mix = lib.demo_2d()
    gpu = mix.to("cuda")
    x = mix.sample(1000, generator=torch.Generator().manual_seed(0))
    for t in (0.01, 0.5):
        assert torch.allclose(gpu.score(x.cuda(), t).cpu(), mix.score(x, t), atol=1e-10)
    ts = torch.rand(1000, dtype=torch.float64)
    assert torch.allclose(gpu.score(x.cuda(), ts.cuda()).cpu(), mix.score(x, ts), atol=1e-10)
    assert gpu.sample(10, generator=torch.Generator("cuda").manual_seed(0)).is_cuda


def test_train_sample_and_metrics_on_cuda():
    mix = lib.demo_1d().to("cuda")
    x0 = mix.sample(2000, generator=torch.Generator("cuda").manual_seed(0)).float()
    net = lib.ScoreMLP(1, 32, seed=0, device="cuda")
    res = lib.train_dsm(net, x0, t_range=(0.01, 2.0), steps=200, batch_size=256, progress=False)
    assert res.losses[-20:].mean() < res.losses[:20].mean()
    gen = torch.Generator("cuda").manual_seed(1)
    err = lib.score_l2_error(net, mix, 0.5, 5000, generator=gen)
    assert err.value < lib.score_l2_error(lambda x, t: torch.zeros_like(x), mix, 0.5, 5000, generator=gen).value
    assert lib.dsm_objective(net, mix, 0.5, 5000, generator=gen).value > 0
    out = lib.sample(net, 500, 1, n_steps=50, device="cuda", generator=gen)
    assert out.is_cuda and lib.w1_to_mixture_1d(out, mix) < 1.0
    assert lib.sliced_wasserstein(out, mix.sample(500, generator=gen), generator=gen) >= 0
    assert lib.symmetric_two(torch.ones(3, device="cuda")).score(torch.zeros(2, 3, device="cuda"), 0.1).is_cuda

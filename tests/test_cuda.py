"""The CUDA paths give the CPU's answers (skipped on machines without a GPU)."""

import copy

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
    # the samplers from one start, deterministic (probability-flow ODE): CUDA's path is the CPU's
    x_T = torch.randn(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cpu_mix, net64 = lib.demo_1d(), copy.deepcopy(net).double()  # float64: round-off, not float32's, is amplified
    kw = dict(n_steps=200, process="ode", T=8.0, gamma=0.01)
    for fn, cpu_fn, tol in ((mix.score, cpu_mix.score, 1e-9), (net64, copy.deepcopy(net64).cpu(), 1e-7)):
        out = lib.sample(fn, 500, 1, x_T=x_T.cuda(), device="cuda", **kw)
        assert out.is_cuda
        torch.testing.assert_close(out.cpu(), lib.sample(cpu_fn, 500, 1, x_T=x_T, **kw), rtol=tol, atol=tol)
    assert lib.sliced_wasserstein(out, mix.sample(500, generator=gen), generator=gen) >= 0
    assert lib.symmetric_two(torch.ones(3, device="cuda")).score(torch.zeros(2, 3, device="cuda"), 0.1).is_cuda


def test_batched_networks_on_cuda_match_cpu_and_train():
    from lib.batched import BatchedScoreMLP, batched_score_errors, train_batched

    cpu = BatchedScoreMLP(3, 2, 16, seeds=[0, 1, 2], dtype=torch.float64)
    gpu = copy.deepcopy(cpu).to("cuda")
    x = torch.randn(3, 50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.rand(3, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.01
    torch.testing.assert_close(gpu(x.cuda(), t.cuda()).cpu(), cpu(x, t), rtol=1e-10, atol=1e-12)
    mix = lib.demo_2d().to("cuda")
    pool = mix.sample(2000, generator=torch.Generator("cuda").manual_seed(2))
    res = train_batched(gpu, pool, t_range=(0.01, 2.0), steps=150, lr=3e-3, batch_size=128, seeds=3,
                        rng="shared", progress=False)
    assert res.final_loss.device.type == "cpu" or res.final_loss.is_cuda
    errs = batched_score_errors(gpu, mix, 0.5, 2000, generator=torch.Generator("cuda").manual_seed(3))
    start = batched_score_errors(cpu.to("cuda"), mix, 0.5, 2000, generator=torch.Generator("cuda").manual_seed(3))
    assert errs.is_cuda and ((errs**2).mean(1) < (start**2).mean(1)).all()


def test_gmm_learning_on_cuda_matches_cpu():
    from lib import gmm_learning as gl

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 4, dtype=torch.float64, generator=g)
    x0 = torch.randn(500, 4, dtype=torch.float64, generator=g) + 2
    z = torch.randn(500, 4, dtype=torch.float64, generator=g)
    for t in (0.1, 1.0):
        for gpu, cpu in zip(gl.ddpm_gradient(mu.cuda(), x0.cuda(), t, z.cuda()), gl.ddpm_gradient(mu, x0, t, z)):
            torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(gl.ddpm_loss(mu.cuda(), x0.cuda(), t, z.cuda()).cpu(),
                                   gl.ddpm_loss(mu, x0, t, z), rtol=1e-10, atol=0)
    torch.testing.assert_close(gl.em(x0.cuda(), mu.cuda(), steps=5).cpu(), gl.em(x0, mu, steps=5),
                               rtol=1e-9, atol=1e-12)
    run = gl.gd_ddpm(x0.cuda(), mu.cuda(), 0.5, steps=5, lr=1.5, generator=torch.Generator("cuda").manual_seed(0))
    assert torch.isfinite(run.trajectory).all() and run.trajectory.is_cuda


def test_ntk_on_cuda_matches_cpu():
    from lib import ntk

    model = ntk.two_layer(2, 64, 3, generator=torch.Generator().manual_seed(0))
    gpu = ntk.TwoLayer(model.W.cuda(), model.V.cuda())
    u = torch.randn(20, 3, dtype=model.W.dtype, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ntk.two_layer_ntk(gpu, u.cuda()).cpu(), ntk.two_layer_ntk(model, u),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ntk.relu_ntk(u.cuda()).cpu(), ntk.relu_ntk(u), rtol=1e-9, atol=1e-12)
    y = torch.randn(20, 1, dtype=model.W.dtype, generator=torch.Generator().manual_seed(2))
    run = ntk.train_two_layer(gpu, u.cuda(), y.cuda(), steps=5, lr=0.1)
    ref = ntk.train_two_layer(model, u, y, steps=5, lr=0.1)
    assert run.model.W.is_cuda
    torch.testing.assert_close(run.predictions.cpu(), ref.predictions, rtol=1e-9, atol=1e-12)


def test_transfer_on_cuda_draws_like_cpu():
    """The same runs on CPU and CUDA (the draws come from CPU generators on both): equal losses
    to float32 round-off after a few steps, and every evaluation runs on the model's device."""
    from lib import transfer as tr

    g = torch.Generator().manual_seed(0)
    task = tr.LinearInverseTask(tr.circle_prior(2.0, generator=g), tr.orthonormal_columns(8, 2, g), 0.5)
    x, y = task.sample(64, g)
    x, y = x.float()[None, None].expand(2, 1, -1, -1), y.float()[None, None].expand(2, 1, -1, -1)
    cpu = tr.SharedEncoderScore(2, 1, 2, 8, 2, head_width=16)
    gpu = copy.deepcopy(cpu).to("cuda")
    a = tr.fit(cpu, x, y, steps=5, batch_size=32, progress=False)
    b = tr.fit(gpu, x.cuda(), y.cuda(), steps=5, batch_size=32, progress=False, snapshots=[5])
    torch.testing.assert_close(b.losses.cpu(), a.losses, rtol=1e-4, atol=1e-5)
    test = tr.score_test_set(task, 30, n_times=3, generator=g)
    torch.testing.assert_close(tr.excess_score_error(gpu, test), tr.excess_score_error(cpu, test),
                               rtol=1e-4, atol=1e-6)
    ft = gpu.with_new_heads([0, 1])
    assert ft.device.type == "cuda"
    with torch.no_grad():
        feats = ft.encode(y[:, 0])[:, None]
    tr.fit(ft, x.cuda(), features=feats, steps=3, progress=False)
    assert tr.heldout_dsm(ft, x[0, 0], y[0, 0], n_times=3).shape == (2,)
    out = tr.sample_conditional(ft, y[0, 0, :3], 2, n_steps=5, generator=torch.Generator("cuda").manual_seed(0))
    assert out.shape == (2, 3, 2, 2) and out.is_cuda

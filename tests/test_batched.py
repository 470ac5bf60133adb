"""lib.batched: B stacked networks behave exactly like B separate ScoreMLP runs."""

import math

import pytest
import torch

import lib
from lib.batched import (
    BatchedScoreMLP,
    batched_score_errors,
    mean_and_stderr,
    pad_samples,
    train_batched,
)

MIX = lib.demo_1d()


def samples(sizes, seed=0, d=1):
    g = torch.Generator().manual_seed(seed)
    mix = MIX if d == 1 else lib.demo_2d()
    return [mix.sample(m, generator=g) for m in sizes]


@pytest.mark.parametrize("param", ["noise", "score", "mean"])
@pytest.mark.parametrize("time_features", [True, False])
def test_forward_matches_each_scoremlp(param, time_features):
    bm = BatchedScoreMLP(3, 2, width=8, hidden_layers=3, parameterization=param, time_features=time_features,
                         seeds=[5, 6, 7], dtype=torch.float64)
    x = torch.randn(3, 10, 2, dtype=torch.float64)
    t = torch.rand(3, 10, dtype=torch.float64) + 0.01
    out = bm(x, t)
    for b, seed in enumerate([5, 6, 7]):
        ref = lib.ScoreMLP(2, 8, 3, param, time_features=time_features, seed=seed, dtype=torch.float64)
        torch.testing.assert_close(out[b], ref(x[b], t[b]), rtol=0, atol=1e-12)
    assert bm.n_params == ref.n_params and bm.depth == ref.depth == 4


def test_from_models_model_states_select_roundtrip():
    nets = [lib.ScoreMLP(1, 8, 2, seed=s, dtype=torch.float64) for s in (1, 2, 3)]
    bm = BatchedScoreMLP.from_models(nets)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    for b, net in enumerate(nets):
        torch.testing.assert_close(bm.model(b)(x, 0.3), net(x, 0.3), rtol=0, atol=0)
    other = BatchedScoreMLP(3, 1, 8, 2, seeds=[9, 9, 9], dtype=torch.float64).load_states(bm.states())
    torch.testing.assert_close(other(x, 0.3), bm(x, 0.3), rtol=0, atol=0)
    sub = bm.select([2, 0])
    torch.testing.assert_close(sub(x, 0.3), bm(x, 0.3)[[2, 0]], rtol=0, atol=0)
    # select copies: training the copy leaves the original alone
    with torch.no_grad():
        sub.weights[0].add_(1.0)
    torch.testing.assert_close(bm.model(2)(x, 0.3), nets[2](x, 0.3), rtol=0, atol=0)


CASES = [
    dict(t=0.3, noise="fixed"),
    dict(t=0.3, noise="fresh"),
    dict(t_range=(1e-3, 3.0), noise="fresh", batch_size=64),
    dict(t_range=(0.01, 1.0), noise="fixed", batch_size=60),
    dict(t=[0.1, 0.2, 0.3, 0.4], noise="fresh", batch_size=100),
    dict(t=0.5, noise="fresh", batch_size=70, weighting="none"),
]


@pytest.mark.parametrize("case", CASES)
def test_per_model_rng_reproduces_train_dsm(case):
    """float64: a batch of 4 models with different sample sizes equals 4 train_dsm runs
    with the same init, data and noise draws, loss by loss and weight by weight."""
    sizes, seeds, steps = [50, 80, 120, 200], [10, 11, 12, 13], 25
    xs = samples(sizes)
    x0, counts = pad_samples(xs)
    bm = BatchedScoreMLP(4, 1, width=16, seeds=[3, 4, 5, 6], dtype=torch.float64)
    singles = [bm.model(b) for b in range(4)]
    res = train_batched(bm, x0, counts=counts, steps=steps, lr=1e-2, seeds=seeds, rng="per_model",
                        progress=False, **case)
    grid = torch.linspace(-4, 4, 17, dtype=torch.float64)[:, None]
    for b in range(4):
        kw = dict(case)
        if isinstance(kw.get("t"), list):
            kw["t"] = kw["t"][b]
        if "batch_size" in kw:
            kw["batch_size"] = min(kw["batch_size"], sizes[b])
        single = lib.train_dsm(singles[b], xs[b], steps=steps, lr=1e-2, seed=seeds[b], progress=False, **kw)
        torch.testing.assert_close(res.losses[:, b], single.losses, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(bm.model(b)(grid, 0.2), singles[b](grid, 0.2), rtol=1e-10, atol=1e-10)


def test_padding_rows_are_ignored():
    """Rows beyond a model's count never enter its loss, whatever they hold."""
    xs = samples([30, 60])
    x0, counts = pad_samples(xs)
    garbage = x0.clone()
    garbage[0, 30:] = 1e3
    runs = []
    for data in (x0, garbage):
        bm = BatchedScoreMLP(2, 1, 8, seeds=[0, 1], dtype=torch.float64)
        res = train_batched(bm, data, counts=counts, t=0.2, steps=15, lr=1e-2, batch_size=20, seeds=4,
                            progress=False)
        runs.append((bm, res))
    torch.testing.assert_close(runs[0][1].losses, runs[1][1].losses, rtol=0, atol=0)


def test_shared_rng_models_do_not_interact():
    """Changing model 1's data leaves model 0's training unchanged (separate gradients)."""
    xs = samples([100, 100])
    x0, _ = pad_samples(xs)
    other = x0.clone()
    other[1] = other[1] * 3 + 1
    out = []
    for data in (x0, other):
        bm = BatchedScoreMLP(2, 1, 8, seeds=[0, 1], dtype=torch.float64)
        res = train_batched(bm, data, t_range=(0.01, 2.0), steps=20, lr=1e-2, batch_size=32, seeds=0,
                            progress=False)
        out.append(res.losses)
    torch.testing.assert_close(out[0][:, 0], out[1][:, 0], rtol=0, atol=0)
    assert not torch.equal(out[0][:, 1], out[1][:, 1])


def test_regression_on_exact_score_learns_it_and_snapshots():
    pool = MIX.sample(5000, generator=torch.Generator().manual_seed(1)).float()
    bm = BatchedScoreMLP(2, 1, 32, time_features=False, seeds=[0, 1])
    before = (batched_score_errors(bm, MIX, [0.2, 1.0], 4000, generator=torch.Generator().manual_seed(2)) ** 2).mean(1)
    res = train_batched(bm, pool, t=[0.2, 1.0], steps=300, lr=3e-3, batch_size=256, noise="fixed",
                        target_score=MIX.score, lr_schedule="cosine", snapshots=[10, 300], seeds=3, progress=False)
    after = (batched_score_errors(bm, MIX, [0.2, 1.0], 4000, generator=torch.Generator().manual_seed(2)) ** 2).mean(1)
    assert (after < 0.05 * before).all()
    assert sorted(res.snapshots) == [10, 300]
    x = torch.linspace(-3, 3, 7)[:, None]
    torch.testing.assert_close(res.snapshots[300](x, torch.tensor([0.2, 1.0])), bm(x, torch.tensor([0.2, 1.0])))
    assert res.final_loss.shape == (2,)


def test_score_errors_agree_with_lib_metrics():
    """Against the exact score: the mean squared error equals lib.score_l2_error of the
    same network within Monte-Carlo error; against itself: exactly zero."""
    bm = BatchedScoreMLP(2, 2, 16, seeds=[0, 1], dtype=torch.float64)
    mix = lib.demo_2d()
    e = batched_score_errors(bm, mix, 0.3, 20_000, generator=torch.Generator().manual_seed(0))
    mean, se = mean_and_stderr(e**2)
    for b in range(2):
        ref = lib.score_l2_error(bm.model(b), mix, 0.3, 20_000, generator=torch.Generator().manual_seed(1))
        assert abs(mean[b].item() - ref.value) < 4 * math.hypot(se[b].item(), ref.stderr)
    self_err = batched_score_errors(bm, mix, [0.3, 0.5], 100, reference=bm)
    assert self_err.abs().max() == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="B"):
        BatchedScoreMLP(0, 1)
    with pytest.raises(ValueError, match="seeds"):
        BatchedScoreMLP(2, 1, seeds=[1])
    with pytest.raises(ValueError, match="parameterization"):
        BatchedScoreMLP(2, 1, parameterization="energy")
    with pytest.raises(TypeError, match="models"):
        BatchedScoreMLP.from_models([])
    with pytest.raises(ValueError, match="models must share"):
        BatchedScoreMLP.from_models([lib.ScoreMLP(1, 8), lib.ScoreMLP(1, 16)])
    bm = BatchedScoreMLP(2, 1, 8)
    with pytest.raises(ValueError, match="b must"):
        bm.model(2)
    with pytest.raises(ValueError, match="index"):
        bm.select([5])
    with pytest.raises(ValueError, match="states"):
        bm.load_states(bm.states()[:1])
    with pytest.raises(ValueError, match="x must have shape"):
        bm(torch.zeros(3, 4, 1), 0.1)
    with pytest.raises(ValueError, match="t must be > 0"):
        bm(torch.zeros(2, 4, 1), 0.0)
    with pytest.raises(ValueError, match="t must be a scalar"):
        bm(torch.zeros(2, 4, 1), torch.ones(3))
    with pytest.raises(TypeError, match="samples"):
        pad_samples(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"samples\[1\]"):
        pad_samples([torch.zeros(3, 1), torch.zeros(3, 2)])
    x0 = torch.zeros(2, 10, 1)
    with pytest.raises(TypeError, match="model"):
        train_batched(lib.ScoreMLP(1), x0, t=0.1)
    with pytest.raises(ValueError, match="x0"):
        train_batched(bm, torch.zeros(3, 10, 1), t=0.1)
    with pytest.raises(ValueError, match="counts"):
        train_batched(bm, x0, counts=[5, 11], t=0.1)
    with pytest.raises(ValueError, match="exactly one of t"):
        train_batched(bm, x0, t=0.1, t_range=(0.1, 1.0))
    with pytest.raises(ValueError, match="t must be one time"):
        train_batched(bm, x0, t=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="rng"):
        train_batched(bm, x0, t=0.1, rng="global")
    with pytest.raises(TypeError, match="seeds"):
        train_batched(bm, x0, t=0.1, seeds=[1, 2])
    with pytest.raises(ValueError, match="seeds"):
        train_batched(bm, x0, t=0.1, seeds=[1, 2, 3], rng="per_model")
    with pytest.raises(ValueError, match="steps"):
        train_batched(bm, x0, t=0.1, steps=0)
    with pytest.raises(ValueError, match=r"snapshots\[i\]"):
        train_batched(bm, x0, t=0.1, steps=5, snapshots=[6])
    with pytest.raises(TypeError, match="target_score"):
        train_batched(bm, x0, t=0.1, target_score=3)
    with pytest.raises(ValueError, match="lr_schedule"):
        train_batched(bm, x0, t=0.1, lr_schedule="step")
    with pytest.raises(TypeError, match="mixture"):
        batched_score_errors(bm, "mixture", 0.1)
    with pytest.raises(ValueError, match="t must be one time"):
        batched_score_errors(bm, MIX, 0.0)
    with pytest.raises(TypeError, match="reference"):
        batched_score_errors(bm, MIX, 0.1, reference=BatchedScoreMLP(3, 1, 8))
    with pytest.raises(ValueError, match="mixture has d"):
        batched_score_errors(bm, lib.demo_2d(), 0.1)
    with pytest.raises(ValueError, match="values"):
        mean_and_stderr(torch.zeros(5))


@pytest.mark.parametrize("param,time_features", [("noise", False), ("score", True), ("mean", True)])
def test_flat_forward_equals_the_checked_forward_and_its_gradient(param, time_features):
    """The private fast path over one parameter vector (used by lib.statistical's L-BFGS fit):
    same values as forward, and the gradient in theta is autograd's through the module."""
    net = BatchedScoreMLP(3, 2, 8, 2, param, time_features=time_features, seeds=[4, 5, 6], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    t = 0.05 + torch.rand(3, 50, generator=g, dtype=torch.float64)
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach().requires_grad_(True)
    fast = net._flat_forward(theta, x, t)
    checked = net(x, t)
    assert torch.equal(fast, checked)
    (grad_fast,) = torch.autograd.grad((fast**2).sum(), theta)
    grads = torch.autograd.grad((checked**2).sum(), list(net.parameters()))
    assert torch.equal(grad_fast, torch.cat([gr.reshape(-1) for gr in grads]))
    assert all(torch.equal(v, p) for v, p in zip(net._unflatten(theta.detach()), net.parameters()))


@pytest.mark.parametrize("param,time_features,layers", [("noise", False, 2), ("score", True, 1), ("mean", True, 3)])
def test_flat_squared_error_gradient_is_autograds(param, time_features, layers):
    """The written-out backward pass (lib.statistical's L-BFGS fit) gives the weighted squared
    errors of the forward and autograd's gradient of their sum, to rounding in float64."""
    net = BatchedScoreMLP(3, 2, 8, layers, param, time_features=time_features, seeds=[4, 5, 6], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 40, 2, generator=g, dtype=torch.float64)
    t = 0.05 + torch.rand(3, 40, generator=g, dtype=torch.float64)
    w = torch.rand(3, 40, generator=g, dtype=torch.float64)
    target = torch.randn(3, 40, 2, generator=g, dtype=torch.float64)
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach().requires_grad_(True)
    expected = (w * ((net(x, t) - target) ** 2).sum(-1)).sum(1)
    grads = torch.autograd.grad(expected.sum(), list(net.parameters()))
    losses, grad = net._flat_squared_error(x, t, w, target)(theta.detach())
    torch.testing.assert_close(losses, expected.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(grad, torch.cat([gr.reshape(-1) for gr in grads]), rtol=1e-11, atol=1e-13)

"""lib.transfer: the exact conditional posterior and score, the shared-encoder network and its training."""

import math

import pytest
import torch

import lib
from lib import transfer as tr


def world(seed=0, variance=0.15, D=8, noise_sd=0.5):
    g = torch.Generator().manual_seed(seed)
    G = tr.orthonormal_columns(D, 2, g)
    prior = tr.circle_prior(2.0, variance=variance, generator=g)
    return tr.LinearInverseTask(prior, G, noise_sd), g


@pytest.mark.parametrize("variance", [0.15, (0.3, 0.05)])
def test_posterior_matches_brute_force_bayes(variance):
    """p(x | y) ∝ prior(x) N(y; G x, sigma^2 I) on a fine 2-D grid: its mean and a window's mass."""
    task, g = world(1, variance)
    _, y = task.sample(3, g)
    grid = torch.linspace(-4.5, 4.5, 601, dtype=torch.float64)
    X = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    cell = (grid[1] - grid[0]) ** 2
    weights, means, cov = task.posterior(y)
    for i in range(3):
        log_lik = -0.5 * ((y[i] - X @ task.G.T) ** 2).sum(-1) / task.noise_sd**2
        log_post = task.prior.log_prob(X) + log_lik
        p = torch.softmax(log_post, 0)
        exact = lib.GaussianMixture(weights[i], means[i], cov)
        torch.testing.assert_close((p[:, None] * X).sum(0), task.posterior_mean(y[i:i + 1])[0], atol=1e-6, rtol=0)
        dens = exact.log_prob(X).exp() * cell
        assert abs(dens.sum().item() - 1) < 1e-6
        assert (dens - p).abs().max().item() < 1e-7 + 1e-4 * p.max().item()


def test_conditional_score_is_the_gradient_of_the_noised_posterior():
    """grad_x log q_t(x | y) via the joint (x_t, w) mixture equals autograd of the noised posterior density."""
    task, g = world(2, (0.2, 0.1))
    x0, y = task.sample(5, g)
    weights, means, cov = task.posterior(y)
    for t in (0.01, 0.3, 2.0):
        a, s2 = math.exp(-t), -math.expm1(-2 * t)
        xt = (a * x0 + math.sqrt(s2) * torch.randn(5, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
        logq = sum(lib.GaussianMixture(weights[i], a * means[i], a * a * cov + s2).log_prob(xt[i:i + 1])[0]
                   for i in range(5))
        (grad,) = torch.autograd.grad(logq, xt)
        torch.testing.assert_close(task.score(xt.detach(), y, t), grad, atol=1e-9, rtol=1e-9)


def test_score_depends_on_y_only_through_the_sufficient_statistic():
    task, g = world(3)
    x, y = task.sample(4, g)
    orth = torch.randn(4, task.D_y, generator=g, dtype=torch.float64)
    orth = orth - (orth @ task.G) @ task.G.T  # a component of y that h* = G^T y ignores
    torch.testing.assert_close(task.score(x, y + orth, 0.2), task.score(x, y, 0.2), atol=1e-12, rtol=0)


def test_zero_error_for_the_exact_score_and_zero_predictor_value():
    task, g = world(4)
    test = tr.score_test_set(task, 50, n_times=4, generator=g)
    s2 = -torch.expm1(-2 * test.times)
    manual = sum(s2[i] * (test.exact[i] ** 2).sum(-1).mean() for i in range(4)) / 4
    assert math.isclose(tr.zero_score_error(test), float(manual), rel_tol=1e-12)


def test_representation_floor_is_the_error_of_the_projected_conditional_score():
    """For U = e_1 the best score given (x_t, w_1) integrates the exact score over w_2 given (x_t, w_1):
    checked by quadrature over w_2 on a grid; the full representation U = I has floor 0."""
    task, g = world(5, (0.2, 0.1))
    test = tr.score_test_set(task, 6, n_times=3, generator=g)
    assert tr.representation_floor(task, test, torch.eye(2, dtype=torch.float64)).abs().max() < 1e-18
    e1 = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    floor = tr.representation_floor(task, test, e1)
    w = task.sufficient(test.y)
    grid = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    expect = torch.zeros(6, dtype=torch.float64)
    for i, t in enumerate(test.times.tolist()):
        joint = task.joint_at(t)
        for n in range(6):
            pts = torch.stack([test.xt[i, n, 0].expand(4001), test.xt[i, n, 1].expand(4001),
                               w[n, 0].expand(4001), grid], -1)
            p = torch.softmax(joint.log_prob(pts), 0)
            proj = (p[:, None] * joint.score(pts)[:, :2]).sum(0)
            expect[n] += -math.expm1(-2 * t) * ((proj - test.exact[i, n]) ** 2).sum() / 3
    torch.testing.assert_close(floor, expect, rtol=1e-6, atol=1e-12)
    assert 0 < floor.mean() < tr.zero_score_error(test)
    with pytest.raises(ValueError, match="U must"):
        tr.representation_floor(task, test, torch.zeros(2, 1, dtype=torch.float64))


def test_batched_evaluate_is_forward_without_value_checks():
    from lib.batched import BatchedScoreMLP
    bm = BatchedScoreMLP(3, 2, 8, seeds=[4, 5, 6])
    x, t = torch.randn(3, 5, 2), torch.rand(3, 5) + 0.1
    assert torch.equal(bm.evaluate(x, t), bm(x, t))
    with pytest.raises(ValueError, match="x must have shape"):
        bm.evaluate(x[:2], t[:2])
    with pytest.raises(ValueError, match="t shape"):
        bm.evaluate(x, t[:, :4])


def tiny(R=2, K=3, seeds=None, **kw):
    return tr.SharedEncoderScore(R, K, 2, 8, 2, head_width=16, seeds=seeds, **kw)


def data(R, K, n=40, seed=0):
    task, g = world(seed)
    xs, ys = zip(*[tr.sample_tasks([task] * K, n, g) for _ in range(R)])
    return torch.stack(xs).float(), torch.stack(ys).float()


@pytest.mark.parametrize("encoder_width", [None, 16])
def test_batched_runs_equal_separate_runs(encoder_width):
    x, y = data(3, 2)
    counts = torch.tensor([[40, 10], [25, 0], [5, 40]])
    both = tiny(3, 2, seeds=[4, 5, 6], encoder_width=encoder_width)
    tr.fit(both, x, y, counts=counts, steps=30, batch_size=16, seeds=[7, 8, 9], progress=False)
    test = tr.score_test_set(world(0)[0], 20, n_times=3)
    together = tr.excess_score_error(both, test)
    for r in range(3):
        one = tiny(1, 2, seeds=[4 + r], encoder_width=encoder_width)
        tr.fit(one, x[r:r + 1], y[r:r + 1], counts=counts[r:r + 1], steps=30, batch_size=16, seeds=[7 + r],
               progress=False)
        assert math.isclose(tr.excess_score_error(one, test).item(), together[r].item(), rel_tol=1e-4)


def test_fine_tuning_leaves_the_encoder_bit_identical_and_uses_its_features():
    x, y = data(2, 3)
    pre = tiny(2, 3, encoder_width=16)
    tr.fit(pre, x, y, steps=20, progress=False)
    ft = pre.with_new_heads([1, 0, 1])
    before = [p.detach().clone() for p in ft.encoder_parameters()]
    for dst, src in zip(before, pre.encoder_parameters()):
        assert torch.equal(dst, src[[1, 0, 1]])
    yt = y[[1, 0, 1], :1]
    with torch.no_grad():
        feats = ft.encode(yt[:, 0])[:, None]
    heads_before = [p.detach().clone() for p in ft.heads.parameters()]
    tr.fit(ft, x[[1, 0, 1], :1], features=feats, steps=20, progress=False)
    for p, q in zip(ft.encoder_parameters(), before):
        assert torch.equal(p, q)
    assert all(not torch.equal(p, q) for p, q in zip(ft.heads.parameters(), heads_before))


def test_rep_dims_switch_off_encoder_outputs():
    m = tiny(2, 1, rep_dims=[1, 2])
    y = torch.randn(2, 5, 8)
    h = m.encode(y)
    assert (h[0, :, 1] == 0).all() and (h[1, :, 1] != 0).all()


def test_oracle_head_learns_the_conditional_score():
    """A head on h* = G^T y trained on many pairs gets far below the zero predictor's error."""
    task, g = world(5)
    x, y = task.sample(2000, g)
    m = tr.SharedEncoderScore(1, 1, 2, task.D_y, 2, head_width=32)
    feats = task.sufficient(y).float()[None, None]
    tr.fit(m, x.float()[None, None], features=feats, steps=400, batch_size=256, progress=False)
    test = tr.score_test_set(task, 400, generator=g)
    err = tr.excess_score_error(m, test, features=task.sufficient(test.y).float()[None]).item()
    assert err < 0.3 * tr.zero_score_error(test)


def test_sample_conditional_shape_and_ode_determinism():
    m = tiny(2, 1, encoder_width=16)
    y = torch.randn(3, 8)
    a = tr.sample_conditional(m, y, 4, n_steps=5, generator=torch.Generator().manual_seed(0))
    b = tr.sample_conditional(m, y, 4, n_steps=5, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 4, 2) and torch.equal(a, b)


def test_heldout_dsm_and_mean_se():
    m = tiny(2, 1)
    x, y = world(0)[0].sample(30)
    v = tr.heldout_dsm(m, x, y, generator=torch.Generator().manual_seed(0))
    assert v.shape == (2,) and torch.isfinite(v).all()
    mean, se = tr.mean_se(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 1)
    torch.testing.assert_close(mean, torch.tensor([2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(se, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_snapshots_are_the_run_seen_earlier():
    """A checkpoint after k of `steps` steps is the model the loop held then: the last one equals
    the trained model; an earlier one equals a run stopped there (same schedule of `steps`)."""
    x, y = data(2, 1)
    m = tiny(2, 1, seeds=[3, 4])
    snaps = tr.fit(m, x, y, steps=20, batch_size=8, seeds=[5, 6], snapshots=[5, 20], progress=False).snapshots
    assert sorted(snaps) == [5, 20]
    test = tr.score_test_set(world(0)[0], 20, n_times=3)
    assert torch.equal(tr.excess_score_error(snaps[20], test), tr.excess_score_error(m, test))
    early = tr.excess_score_error(snaps[5], test)
    assert not torch.equal(early, tr.excess_score_error(m, test))
    again = tiny(2, 1, seeds=[3, 4])
    tr.fit(again, x, y, steps=20, batch_size=8, seeds=[5, 6], snapshots=[5], progress=False)
    torch.testing.assert_close(tr.excess_score_error(again, test), tr.excess_score_error(m, test))
    with pytest.raises(ValueError, match=r"snapshots\[i\]"):
        tr.fit(m, x, y, steps=5, snapshots=[6], progress=False)


def test_heldout_dsm_per_run_pairs_and_counts():
    """Per-run pairs equal the shared form when they coincide; counts use only the first rows."""
    m = tiny(2, 1)
    x, y = world(0)[0].sample(30)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    shared = tr.heldout_dsm(m, x, y, generator=g())
    per_run = tr.heldout_dsm(m, x.expand(2, -1, -1), y.expand(2, -1, -1), generator=g())
    torch.testing.assert_close(shared, per_run)
    cut = tr.heldout_dsm(m, x, y, generator=g(), counts=[30, 10])
    assert cut[0] == shared[0] and cut[1] != shared[1]
    with pytest.raises(ValueError, match="counts"):
        tr.heldout_dsm(m, x, y, counts=[0, 5])
    with pytest.raises(ValueError, match="x, y must have shapes"):
        tr.heldout_dsm(m, x.expand(3, -1, -1), y.expand(3, -1, -1))


@pytest.mark.parametrize("encoder_width", [None, 16])
def test_pick_runs_takes_each_run_from_its_checkpoint(encoder_width):
    """Run i of the picked model is run runs[i] of snapshot choice[i]: same scores, encoder included
    (K = 2 heads, so the head rows r * K + k are taken, not the first ones)."""
    x, y = data(3, 2)
    m = tiny(3, 2, seeds=[3, 4, 5], encoder_width=encoder_width)
    snaps = tr.fit(m, x, y, steps=12, batch_size=8, seeds=[5, 6, 7], snapshots=[4, 12], progress=False).snapshots
    models, choice, runs = [snaps[4], snaps[12]], [1, 0, 0, 1], [2, 0, 2, 1]
    picked = tr.pick_runs(models, choice, runs)
    assert picked.R == 4 and picked.K == 2
    test = tr.score_test_set(world(0)[0], 20, n_times=3)
    for head in (0, 1):
        per = [tr.excess_score_error(mod, test, head=head) for mod in models]
        want = torch.stack([per[c][r] for c, r in zip(choice, runs)])
        torch.testing.assert_close(tr.excess_score_error(picked, test, head=head), want, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="choice"):
        tr.pick_runs(models, [2], [0])
    with pytest.raises(ValueError, match="runs"):
        tr.pick_runs(models, [0], [3])
    with pytest.raises(ValueError, match="checkpoints of one batch"):
        tr.pick_runs([snaps[4], tiny(2, 2)], [0])
    with pytest.raises(TypeError, match="models"):
        tr.pick_runs([], [0])


def test_heldout_dsm_with_features_uses_them_instead_of_the_encoder():
    """Given the model's own encoding as features, the objective is unchanged; other features change it."""
    m = tiny(2, 1)
    x, y = world(0)[0].sample(30)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    own = m.encode(y.float().expand(2, -1, -1)).detach()
    torch.testing.assert_close(tr.heldout_dsm(m, x, None, generator=g(), features=own),
                               tr.heldout_dsm(m, x, y, generator=g()))
    shifted = tr.heldout_dsm(m, x, None, generator=g(), features=own + 1)
    assert not torch.equal(shifted, tr.heldout_dsm(m, x, y, generator=g()))
    with pytest.raises(ValueError, match="features"):
        tr.heldout_dsm(m, x, None, features=own[:, :5])


def test_digit_tasks():
    pytest.importorskip("sklearn")
    d = tr.load_digit_tasks(pool=100, generator=torch.Generator().manual_seed(0))
    assert d.source_x.shape == (9, 174, 64) and d.pool_x.shape == (100, 64) and d.test_x.shape == (78, 64)
    assert d.source_x.min() >= -1 and d.source_x.max() <= 1
    assert abs((d.pool_y - d.pool_x).std().item() - 1.0) < 0.02


def test_bad_inputs_raise():
    task, _ = world(0)
    with pytest.raises(ValueError, match="orthonormal"):
        tr.LinearInverseTask(task.prior, 2 * task.G, 0.5)
    with pytest.raises(ValueError, match="noise_sd"):
        tr.LinearInverseTask(task.prior, task.G, 0.0)
    with pytest.raises(ValueError, match="diagonal"):
        tr.LinearInverseTask(lib.demo_2d(), task.G, 0.5)
    with pytest.raises(ValueError, match="d_rep"):
        tr.SharedEncoderScore(1, 1, 2, 8, 9)
    m = tiny(2, 3)
    x, y = data(2, 3)
    with pytest.raises(ValueError, match="exactly one"):
        tr.fit(m, x)
    with pytest.raises(ValueError, match="counts"):
        tr.fit(m, x, y, counts=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="y must have shape"):
        tr.fit(m, x, y[:, :, :, :3])
    with pytest.raises(ValueError, match="t must be"):
        m.score(x, torch.zeros(2, 3, 40, 2), 0.0)
    with pytest.raises(TypeError, match="SharedEncoderScore"):
        tr.fit(object(), x, y)
    with pytest.raises(ValueError, match="at least 2"):
        tr.mean_se(torch.ones(3, 1))

"""lib.optim.Adam is torch.optim.Adam's step without torch.optim.Optimizer's import of torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from lib.optim import adam


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iterates_equal_torch_adam_exactly(dtype):
    """The same kernel and state: bit-identical iterates under a changing learning rate, with a
    parameter that gets no gradient (skipped by both)."""
    g = torch.Generator().manual_seed(0)
    w0, b0, x = (torch.randn(*s, generator=g, dtype=dtype) for s in ((4, 5, 3), (4, 1, 3), (4, 7, 5)))
    runs = [[torch.nn.Parameter(v.clone()) for v in (w0, b0, b0)] for _ in range(2)]
    ours, theirs = adam(runs[0], 1e-2), torch.optim.Adam(runs[1], lr=1e-2, fused=True)
    for k in range(60):
        for opt, (w, b, _unused) in ((ours, runs[0]), (theirs, runs[1])):
            opt.param_groups[0]["lr"] = 1e-2 * (1 + k % 3)
            opt.zero_grad(set_to_none=True)
            (torch.baddbmm(b, x, w) ** 2).sum().backward()
            opt.step()
    for p, q in zip(*runs):
        assert torch.equal(p, q)
    assert torch.equal(runs[0][2], b0)  # no gradient, no step


def test_training_does_not_import_dynamo():
    code = ("import sys, torch, lib\n"
            "from lib.batched import BatchedScoreMLP, train_batched\n"
            "train_batched(BatchedScoreMLP(2, 1, 8), torch.randn(50, 1), t_range=(0.01, 2.0), steps=5,"
            " progress=False, seeds=0)\n"
            "lib.train_dsm(lib.ScoreMLP(1, 8, seed=0), torch.randn(50, 1), t_range=(0.01, 2.0), steps=5,"
            " progress=False)\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

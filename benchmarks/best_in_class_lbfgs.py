"""The best-in-class fit's L-BFGS phase: lib's flat L-BFGS against ``torch.optim.LBFGS``.

What a user would otherwise write: ``torch.optim.LBFGS`` (history 50, strong Wolfe) on the
batched networks' parameters with a closure through the checked ``forward``, as
``lib.statistical.fit_best_in_class`` did before. lib's way: ``lib._lbfgs.FlatLBFGS`` (the
same algorithm, two-loop recursion as matrix products) on one flat parameter vector with the
unchecked ``BatchedScoreMLP._flat_forward``. The problem is the one of chapter "How many
samples?": 9 networks (3 starts x 3 times) of one width fitted to the exact score of the demo
mixture at 301 quadrature nodes, from the same Adam-trained start. The script checks that both
reach the same objective to rounding over a short run, then times the iterations (CPU time, one
thread) and prints the ratio.

    python benchmarks/best_in_class_lbfgs.py            # widths 4 and 16, 600 iterations
    python benchmarks/best_in_class_lbfgs.py --quick    # width 16, 150 iterations
"""

from __future__ import annotations

import argparse
import time

import torch

import lib
from lib import statistical
from lib._lbfgs import FlatLBFGS
from lib.batched import BatchedScoreMLP
from lib.hardness import quadrature_1d

INITS, TIMES, POINTS = (100, 101, 102), (0.05, 0.2, 1.0), 301
SETTINGS = dict(history=50, tolerance_grad=1e-12, tolerance_change=1e-15)


def problem(width: int):
    """The networks (float64, a few Adam steps from their initialisation), nodes, weights, targets."""
    mix = lib.demo_1d()
    cfg = [(i, t) for i in INITS for t in TIMES]
    net = BatchedScoreMLP(len(cfg), 1, width, 2, time_features=False, seeds=[i for i, _ in cfg], dtype=torch.float64)
    tt = torch.tensor([t for _, t in cfg], dtype=torch.float64)
    x, w = quadrature_1d(mix, tt, points=POINTS, width=7.0)
    target = mix.score(x.reshape(-1, 1), tt[:, None].expand_as(x).reshape(-1)).reshape(*x.shape, 1)
    statistical.fit_best_in_class(net, mix, tt, points=POINTS, adam_steps=50, lbfgs_iters=1, tail=1,
                                  progress=False)
    return net, x[..., None], tt, tt[:, None].expand(x.shape).contiguous(), w, target


def torch_lbfgs(width: int, iters: int) -> tuple[float, float]:
    net, x, tt, _, w, target = problem(width)
    opt = torch.optim.LBFGS(list(net.parameters()), lr=1.0, max_iter=iters, line_search_fn="strong_wolfe",
                            history_size=SETTINGS["history"], tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad(set_to_none=True)
        total = (w * ((net(x, tt) - target) ** 2).sum(-1)).sum()
        total.backward()
        return total

    start = time.process_time()
    opt.step(closure)
    seconds = time.process_time() - start
    with torch.no_grad():
        return seconds, (w * ((net(x, tt) - target) ** 2).sum(-1)).sum().item()


def flat_lbfgs(width: int, iters: int) -> tuple[float, float]:
    net, x, _, t2, w, target = problem(width)

    def value_and_grad(theta):
        theta = theta.detach().requires_grad_(True)
        total = (w * ((net._flat_forward(theta, x, t2) - target) ** 2).sum(-1)).sum()
        return total.item(), torch.autograd.grad(total, theta)[0]

    lbfgs = FlatLBFGS(value_and_grad, torch.nn.utils.parameters_to_vector(net.parameters()).detach(), **SETTINGS)
    start = time.process_time()
    loss = lbfgs.run(iters)
    return time.process_time() - start, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths, iters = ([16], 150) if args.quick else ([4, 16], 600)
    for width in widths:
        (_, a), (_, b) = torch_lbfgs(width, 20), flat_lbfgs(width, 20)
        assert abs(a - b) <= 1e-9 * abs(a), (a, b)  # same iterates to rounding over a short run
        t_torch, _ = torch_lbfgs(width, iters)
        t_flat, _ = flat_lbfgs(width, iters)
        print(f"width {width:3d}, {iters} iterations: torch.optim.LBFGS {t_torch:.2f} s CPU, "
              f"lib flat L-BFGS {t_flat:.2f} s CPU")
        ratio = t_torch / t_flat
        print(f"result: best-in-class L-BFGS, width {width}, flat vs torch.optim.LBFGS = {ratio:.2f}x "
              f"(target >= 1x){'' if ratio >= 1 else '  NOT MET'}")


if __name__ == "__main__":
    main()

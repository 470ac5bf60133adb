"""ERM over a finite class of scores: lib's batched version against a Python loop.

What a user would otherwise write: for every training set, every sample size and every
hypothesis, call ``lib.dsm_loss`` on that prefix of the data (with the same fixed noise) and
keep the argmin. lib's way: ``lib.hardness.finite_class_erm`` evaluates each hypothesis once
on all points of all training sets and reads every prefix size off cumulative sums. The
script first checks that both give the same losses, then times both and prints the ratio.

    python benchmarks/finite_class_erm.py            # 200 training sets of up to 2000 points
    python benchmarks/finite_class_erm.py --quick    # 50 training sets of up to 500 points
"""

from __future__ import annotations

import argparse
import time

import torch

import lib
from lib.hardness import finite_class_erm

T = 0.5
SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]


def looped(hyps, x0: torch.Tensor, z: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    losses = torch.empty(len(hyps), x0.shape[0], len(sizes), dtype=torch.float64)
    for i in range(x0.shape[0]):
        for j, n in enumerate(sizes):
            for h, f in enumerate(hyps):
                losses[h, i, j] = lib.dsm_loss(f, x0[i, :n, None], T, z[i, :n, None])
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 training sets of up to 500 points")
    args = parser.parse_args()
    trials, m = (50, 500) if args.quick else (200, 2000)
    sizes = [n for n in SIZES if n <= m]
    torch.set_num_threads(1)
    p1, p2 = lib.hardness_pair(0.001, 10.0)
    hyps = [p1.score, p2.score, lambda x, t: -x]
    g = torch.Generator().manual_seed(0)
    x0 = p1.sample(trials * m, generator=g).reshape(trials, m)
    z = torch.randn(trials, m, generator=g, dtype=torch.float64)

    start = time.perf_counter()
    ref = looped(hyps, x0, z, sizes)
    t_loop = time.perf_counter() - start
    start = time.perf_counter()
    res = finite_class_erm(hyps, x0, T, z=z, sizes=sizes, generator=g)
    t_lib = time.perf_counter() - start

    gap = ((res.losses - ref).abs() / ref.abs()).max().item()
    print(f"max relative difference of the losses: {gap:.1e}")
    if gap > 1e-10:
        raise SystemExit("finite_class_erm does not reproduce the looped losses")
    print(f"{trials} training sets, sizes up to {m}, {len(hyps)} hypotheses")
    print(f"looped lib.dsm_loss:           {t_loop:7.3f} s")
    print(f"lib.hardness.finite_class_erm: {t_lib:7.3f} s")
    print(f"speed-up: {t_loop / t_lib:.0f}x")


if __name__ == "__main__":
    main()

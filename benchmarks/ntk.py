"""Empirical NTK: lib's ways against the per-sample autograd loop a user would write.

The peer (``lib.ntk.autograd_ntk``) loops over points and output coordinates, calls
``torch.autograd.grad`` for each, stacks the gradients into ``J`` and returns ``J J^T``.
lib's ways:

* ``lib.ntk.empirical_ntk``: ``torch.func.vmap`` over ``torch.func.jacrev``, then one
  ``J J^T``; works for any network given in functional form;
* ``lib.ntk.two_layer_ntk``: the closed form ``(u . u') (Phi Phi^T) / h`` of the chapter's
  two-layer network, one batched product (activation patterns in float32, which is exact).

Two problems: the two-layer network at width 4096 on n = 128 points (d = 1, and d = 2), and
a ``lib.ScoreMLP`` (d = 2, width 64, two hidden layers, mean read-out) on n = 128 points,
end to end (Jacobians and product). Float64, one thread, best of three; times are CPU seconds
of this process (robust on a shared machine). Every result is compared with the loop's.

    python benchmarks/ntk.py            # the settings above
    python benchmarks/ntk.py --quick    # n = 32, width 1024
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

import lib
from lib import ntk

REPEATS = 3


def best_time(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    fn()  # warm-up
    best, out = math.inf, None
    for _ in range(REPEATS):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return out, best


def report(name: str, ways: dict[str, Callable[[], torch.Tensor]]) -> None:
    results = {k: best_time(fn) for k, fn in ways.items()}
    ref, ref_time = results["autograd loop"]
    print(f"\n{name}")
    print(f"  {'method':28s} {'CPU s':>9s} {'speed-up':>9s} {'max |diff| / max |K|':>22s}")
    for k, (out, sec) in results.items():
        diff = float((out - ref).abs().max() / ref.abs().max())
        print(f"  {k:28s} {sec:9.4f} {ref_time / sec:8.1f}x {diff:22.1e}")
        if diff > 1e-10:
            raise AssertionError(f"{k} differs from the loop by {diff:.1e}")


def two_layer(n: int, width: int, d: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, t, _ = ntk.regression_data(lib.demo_2d() if d == 2 else lib.demo_1d(), n, 0.5, generator=g)
    model = ntk.two_layer(1, width, d + 2, d, generator=g)
    fn, params = ntk.two_layer_function(model)
    u = ntk.ntk_inputs(x, t)
    report(f"two-layer network, width {width}, n = {n}, d = {d}", {
        "autograd loop": lambda: ntk.autograd_ntk(fn, params, x, t),
        "torch.func (empirical_ntk)": lambda: ntk.empirical_ntk(fn, params, x, t),
        "closed form (two_layer_ntk)": lambda: ntk.two_layer_ntk(model, u, full=True)[0],
    })


def score_mlp(n: int) -> None:
    g = torch.Generator().manual_seed(1)
    x, t, _ = ntk.regression_data(lib.demo_2d(), n, 0.5, generator=g)
    net = lib.ScoreMLP(2, 64, 2, "mean", seed=0, dtype=torch.float64)
    fn, params = ntk.score_mlp_function(net)
    report(f"ScoreMLP (d = 2, width 64, 2 hidden layers), n = {n}, end to end", {
        "autograd loop": lambda: ntk.autograd_ntk(fn, params, x, t),
        "torch.func (empirical_ntk)": lambda: ntk.empirical_ntk(fn, params, x, t),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, width = (32, 1024) if args.quick else (128, 4096)
    two_layer(n, width, 1)
    two_layer(n, width, 2)
    score_mlp(n)


if __name__ == "__main__":
    main()

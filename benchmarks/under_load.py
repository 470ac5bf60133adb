"""Execution under load: how much slower the book's typical work runs on a busy machine.

Two workloads stand for the book: the score-matching chapter's training cell (a width-64
``lib.ScoreMLP`` trained by ``lib.train_dsm`` for 300 Adam steps on minibatches of 512 points)
and a sampler run (``lib.sample`` with a mixture's exact score, 4000 points, 200 steps). Each
is timed with the machine as it is ("idle") and with one competing CPU-bound process per core,
which the script starts and stops itself. With perfect sharing of the cores the slowdown is
2x; the target is at most 2.5x.

The process runs with torch's default of one intra-op thread per core, as a user's Python
would; lib's loops then choose their own threads (:mod:`lib.threads`). For comparison the
same work also runs with that choice switched off (every loop on all cores), which is what
made the book's build time out on a busy machine.

Idle and loaded runs alternate, several times, and the medians are compared, so a change in
the background load (other users of the machine) hits both sides alike. Run it on a quiet
machine for the real figure: "idle" here means "without the script's own competitors".

    python benchmarks/under_load.py            # 5 rounds
    python benchmarks/under_load.py --quick    # 3 rounds, lib's choice only
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

import torch

import lib

TARGET = 2.5


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def training_cell() -> None:
    """The score-matching chapter's ``train_network`` cell, at 300 steps."""
    x0 = lib.demo_1d().sample(1000, generator=torch.Generator().manual_seed(0)).float()
    net = lib.ScoreMLP(1, width=64, hidden_layers=2, seed=0)
    lib.train_dsm(net, x0, t_range=(1e-3, 3.0), steps=300, lr=3e-3, batch_size=512, seed=0, progress=False)


def sampler_run() -> None:
    mix = lib.demo_1d()
    lib.sample(mix.score, 4000, 1, T=10.0, gamma=1e-3, n_steps=200, generator=torch.Generator().manual_seed(1))


WORKLOADS = {"training cell": training_cell, "sampler run": sampler_run}


class Competitors:
    """One busy-looping Python process per core, for the duration of a ``with`` block."""

    def __init__(self, count: int) -> None:
        self.count, self.procs = count, []

    def __enter__(self) -> Competitors:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        time.sleep(0.5)  # let them start spinning
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(modes: dict[str, int | None], rounds: int) -> dict[tuple[str, str, bool], list[tuple[float, float]]]:
    """Times of every workload under every thread mode, idle and loaded, rounds interleaved."""
    out: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    before = lib.threads.small_work_threads()
    for k in range(rounds):
        for loaded in (False, True):
            with Competitors(cores()) if loaded else contextlib.nullcontext():
                for mode, setting in modes.items():
                    lib.threads.set_small_work_threads(setting)
                    for name, fn in WORKLOADS.items():
                        out.setdefault((mode, name, loaded), []).append(timed(fn))
                        # progress as it comes: a run cut short still leaves its numbers
                        print(f"  round {k + 1}, {'loaded' if loaded else 'idle'}, {mode}, {name}: "
                              f"{out[(mode, name, loaded)][-1][0]:.2f} s", flush=True)
    lib.threads.set_small_work_threads(before)
    return out


def results(quick: bool) -> list[tuple[str, float, str, bool]]:
    """``(what, slowdown, target, met)`` rows; prints the timings on the way."""
    torch.set_num_threads(cores())  # a user's default, whatever the caller's environment says
    setting = lib.threads.small_work_threads()
    modes = {f"lib's choice ({setting} thread{'s' if setting != 1 else ''})": setting}
    if not quick:
        modes[f"all {cores()} threads"] = None
    for fn in WORKLOADS.values():  # warm up: first calls pay imports and allocations
        fn()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rounds = 3 if quick else 5
    print(f"{cores()} cores, torch default {torch.get_num_threads()} threads, load average {load:.1f} "
          f"before the run; {rounds} rounds, medians; competitors: {cores()} busy processes")
    times = measure(modes, rounds)
    print(f"{'threads':>24} {'workload':>14} {'idle (s)':>9} {'loaded (s)':>11} {'slowdown':>9} "
          f"{'CPU idle':>9} {'CPU loaded':>11}")
    rows = []
    for mode in modes:
        for name in WORKLOADS:
            idle, busy = times[(mode, name, False)], times[(mode, name, True)]
            med = [statistics.median(t[i] for t in ts) for ts in (idle, busy) for i in (0, 1)]
            ratio = med[2] / med[0]
            print(f"{mode:>24} {name:>14} {med[0]:>9.2f} {med[2]:>11.2f} {ratio:>8.1f}x {med[1]:>9.2f} {med[3]:>11.2f}")
            lib_choice = mode.startswith("lib")
            rows.append((f"under load, {name}, {mode}", ratio, f"<= {TARGET}" if lib_choice else "(comparison)",
                         ratio <= TARGET or not lib_choice))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, lib's choice of threads only")
    args = parser.parse_args()
    for what, ratio, target, met in results(args.quick):
        print(f"result: {what} = {ratio:.1f}x slowdown (target {target}){'' if met else '  NOT MET'}")


if __name__ == "__main__":
    main()

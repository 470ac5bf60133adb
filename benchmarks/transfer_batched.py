"""Pre-training many shared-encoder runs as one batch against a Python loop over the runs.

What a user would otherwise write: a loop that pre-trains each run (one encoder, eight heads)
separately with ``lib.transfer.fit``. lib's way: one ``SharedEncoderScore`` holding all runs,
trained by one ``fit`` call. Same data, initialisations, minibatches and noise (each run has its
own generator), so the results agree to rounding error, which the script checks before timing.
One thread, float32, the chapter's synthetic setting.

    python benchmarks/transfer_batched.py            # 12 runs, 400 steps
    python benchmarks/transfer_batched.py --quick    # 12 runs, 100 steps
"""

from __future__ import annotations

import argparse
import time

import torch

from lib import transfer as tr

RUNS, HEADS, N, BATCH = 12, 8, 500, 32


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    G = tr.orthonormal_columns(64, 2, g)
    tasks = [tr.LinearInverseTask(tr.circle_prior(2.0, generator=g), G, 0.5) for _ in range(HEADS)]
    pairs = [tr.sample_tasks(tasks, N, g) for _ in range(RUNS)]
    return torch.stack([p[0] for p in pairs]).float(), torch.stack([p[1] for p in pairs]).float()


def batched(x: torch.Tensor, y: torch.Tensor, steps: int) -> tr.SharedEncoderScore:
    model = tr.SharedEncoderScore(RUNS, HEADS, 2, 64, 2, seeds=range(RUNS))
    tr.fit(model, x, y, steps=steps, batch_size=BATCH, seeds=range(RUNS), progress=False)
    return model


def looped(x: torch.Tensor, y: torch.Tensor, steps: int) -> list[tr.SharedEncoderScore]:
    out = []
    for r in range(RUNS):
        model = tr.SharedEncoderScore(1, HEADS, 2, 64, 2, seeds=[r])
        tr.fit(model, x[r:r + 1], y[r:r + 1], steps=steps, batch_size=BATCH, seeds=[r], progress=False)
        out.append(model)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 steps instead of 400")
    steps = 100 if parser.parse_args().quick else 400
    torch.set_num_threads(1)
    x, y = data()
    one, many = batched(x, y, 5), looped(x, y, 5)
    for r, m in enumerate(many):
        torch.testing.assert_close(one.encoder["weight"][r], m.encoder["weight"][0], rtol=1e-4, atol=1e-5)
    t0 = time.process_time()
    batched(x, y, steps)
    t_batch = time.process_time() - t0
    t0 = time.process_time()
    looped(x, y, steps)
    t_loop = time.process_time() - t0
    print(f"{RUNS} runs x {HEADS} heads, {steps} steps, CPU seconds: batched {t_batch:.2f}, "
          f"looped {t_loop:.2f}, ratio {t_loop / t_batch:.1f}x")


if __name__ == "__main__":
    main()

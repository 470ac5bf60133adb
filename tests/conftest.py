import os
import sys
from pathlib import Path

# One intra-op thread per test process and per chapter kernel it starts (kernels inherit the
# environment): tests run as parallel processes (pytest -n 2), and two processes with two
# threads each on two cores run the book's small networks several times slower (lib.threads).
# An explicit OMP_NUM_THREADS (e.g. `make test OMP_NUM_THREADS=2`) is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import matplotlib  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
matplotlib.use("Agg")
os.environ.setdefault("BOOK_WIDGETS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

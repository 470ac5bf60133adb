"""``lib``: the library behind *Learning the Score*.

One home for each idea the chapters use:

* :mod:`lib.forward` — the OU forward process (``a_t``, ``s_t``, perturbation, time grids);
* :mod:`lib.mixtures` — Gaussian mixtures with exact noised scores and posterior means;
* :mod:`lib.networks` — time-conditioned ReLU score networks reporting ``P`` and ``D``;
* :mod:`lib.dsm` — the denoising score-matching objective and trainer;
* :mod:`lib.sampling` — reverse SDE and probability-flow ODE samplers;
* :mod:`lib.metrics` — L2 score errors, the DSM objective's minimum, distribution distances;
* :mod:`lib.hardness` — exact 1-D score metrics by quadrature, ERM over a finite class;
* :mod:`lib.quantile` — the quantile score error ``D^delta``, per-time profiles, corruptions;
* :mod:`lib.badsets` — scores that are quantile-accurate but arbitrarily wrong on bad sets;
* :mod:`lib.gmm_learning` — gradient descent on the DDPM objective for mixtures, EM, power method;
* :mod:`lib.threads` — which work runs on how many intra-op threads;
* :mod:`lib.optim` — Adam for the training loops (torch's step, without importing ``torch._dynamo``);
* :mod:`lib.girsanov` — the KL chain-rule cost of a score error to the sampler, injected errors;
* :mod:`lib.statistical` — DSM as regression: label noise, the sandwich theory of the statistical
  error, the empirical optimal score;
* :mod:`lib.transfer` — conditional scores with a shared encoder of the condition: exact linear-inverse
  tasks, pre-training, fine-tuning, from scratch, conditional sampling, the digits tasks;
* :mod:`lib.ntk` — score matching as regression: NTKs (analytic, finite-width, ``torch.func``), kernel GD;
* :mod:`lib.assignments` — gradable exercises: answers registered by label, checked against lib;
* :mod:`lib.plotting`, :mod:`lib.widgets`, :mod:`lib.book` — figures, widgets, chapter helpers.
"""

from . import threads as threads  # lib.threads: intra-op threads for small and large work
from .assignments import answer, check
from .book import quick_mode, record, seed_everything
from .dsm import TrainResult, dsm_loss, train_dsm
from .forward import alpha, perturb, sigma, sigma2, time_for_sigma, time_grid
from .metrics import (
    Estimate,
    dsm_minimum,
    dsm_objective,
    mmd,
    score_errors,
    score_l2_error,
    sliced_wasserstein,
    tv_1d,
    w1_1d,
    w1_to_mixture_1d,
)
from .mixtures import GaussianMixture, demo_1d, demo_2d, equal_weights, hardness_pair, symmetric_two
from .networks import ScoreMLP
from .plotting import PALETTE, plot_density_and_score_1d, plot_score_field_2d, use_style
from .quantile import QuantileEstimate, quantile_error, score_quantile_error
from .sampling import sample
from .widgets import explore, widgets_enabled

__all__ = [
    "Estimate", "GaussianMixture", "PALETTE", "QuantileEstimate", "ScoreMLP", "TrainResult",
    "alpha", "answer", "check", "demo_1d", "demo_2d", "dsm_loss", "dsm_minimum", "dsm_objective", "equal_weights",
    "explore", "hardness_pair", "mmd", "perturb", "plot_density_and_score_1d", "plot_score_field_2d",
    "quantile_error", "quick_mode", "record", "sample", "score_errors", "score_l2_error",
    "score_quantile_error", "seed_everything", "sigma", "sigma2", "sliced_wasserstein",
    "symmetric_two", "time_for_sigma", "time_grid", "train_dsm", "tv_1d", "use_style", "w1_1d",
    "w1_to_mixture_1d", "widgets_enabled",
]
__version__ = "0.1.0"

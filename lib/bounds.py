"""Sample-complexity bounds for score-based diffusion models, as formulas.

Each function returns the number of training samples a published bound asks for, with
every constant hidden by its ``Õ``/``O`` set to 1 and hidden logarithms dropped (the GPPX
theorem, for one, also carries logarithmic factors such as ``log Theta`` for a bound
``Theta`` on the weights, which its summary table leaves out). They are therefore
**shapes**, not predictions: they show how the requirement scales with the target accuracy
``eps``, the early-stopping level, the dimension ``d``, the network's parameter count ``P``
and depth ``D``. Exponents written ``O(d)`` in a source are taken as exactly ``d``.

Two variables need care. **The sources' gamma is a noise scale**, the ``sigma_t`` at which
sampling stops (GPPX: the score is hardest "when sigma_t = gamma"); the book's ``gamma`` is a
stopping *time*. These functions take the source's variable as ``sigma_min``; convert a
stopping time with ``lib.sigma(gamma)`` and back with ``lib.time_for_sigma``. **eps means
different things**: the TV error of the sampler's output for OAS23, CHZW23 and GPPX, an
accuracy of the output in GPPX's comparison for BMR20 (whose own analysis of Langevin sampling
is not restated here), a score-estimation accuracy for Gaur et al. (:attr:`Bound.eps_measures`).

The table of Gupta, Parulekar, Price and Xun (2024; "GPPX") compares (the sources' gamma
written ``sigma_min``)

* Oko, Akiyama and Suzuki (2023; OAS23): ``Õ(eps^{-O(d)})``, density on ``[-1, 1]^d`` in a Besov space;
* Chen, Huang, Zhao and Wang (2023; CHZW23): ``Õ((eps sigma_min)^{-O(d)})``, data on a ``d``-dim subspace;
* Block, Mroueh and Rakhlin (2020; BMR20): ``Õ(d^{5/2} R^3 P^D sqrt(D) / (sigma_min^3 eps^2 m_2^3))``,
  a denoising auto-encoder at one noise level and Langevin sampling, network can represent
  the scores, data bounded by ``R``;
* GPPX itself: ``Õ(d^2 P D log^3(1/sigma_min) / eps^3)``, network can represent the scores
  (the simplified statement of the paper's summary table);

and Gaur, Trivedi, Kunapuli, Bedi and Aggarwal (2025) bound the sample count of the
*trained* network (no empirical-risk-minimiser access), with ``eps`` a score-estimation
accuracy: ``Õ(eps^{-6})`` in their first version, ``O(eps^{-4})`` under a
Polyak–Łojasiewicz condition in a later one.

Used in: chap-sample-complexity (the table of bounds and its calculator).

All functions broadcast their arguments (numbers or arrays/tensors) and return float64
tensors; pass ``log10=True`` to get ``log10`` of the count, which never overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import as_tensor, check_choice


def _pos(value: object, name: str, *, below_one: bool = False, at_least_one: bool = False) -> Tensor:
    v = as_tensor(value, name)
    if (v <= 0).any():
        raise ValueError(f"{name} must be > 0, got min {v.min().item():.3g}")
    if below_one and (v >= 1).any():
        raise ValueError(f"{name} must lie in (0, 1), got max {v.max().item():.3g}")
    if at_least_one and (v < 1).any():
        raise ValueError(f"{name} must be >= 1, got min {v.min().item():.3g}")
    return v


def _out(log10_count: Tensor, log10: bool) -> Tensor:
    return log10_count if log10 else torch.pow(10.0, log10_count)


def oko2023(eps: object, d: object, *, log10: bool = False) -> Tensor:
    """OAS23: ``m = eps^{-d}`` (``Õ(eps^{-O(d)})``, exponent taken as ``d``).

    Assumes a density supported on ``[-1, 1]^d`` in a Besov space (minimax-optimal rate).
    """
    eps = _pos(eps, "eps", below_one=True)
    d = _pos(d, "d", at_least_one=True)
    return _out(-d * torch.log10(eps), log10)


def chen2023(eps: object, sigma_min: object, d: object, *, log10: bool = False) -> Tensor:
    """CHZW23: ``m = (eps sigma_min)^{-d}`` (``Õ((eps gamma)^{-O(d)})`` with the source's
    ``gamma``, read as the stopping noise scale ``sigma_min``; exponent taken as ``d``).

    Assumes the data lie on a ``d``-dimensional linear subspace.
    """
    eps = _pos(eps, "eps", below_one=True)
    sig = _pos(sigma_min, "sigma_min", below_one=True)
    d = _pos(d, "d", at_least_one=True)
    return _out(-d * (torch.log10(eps) + torch.log10(sig)), log10)


def block2020(eps: object, sigma_min: object, d: object, P: object, D: object, *, R: object = 1.0,
              m2: object = 1.0, log10: bool = False) -> Tensor:
    """BMR20: ``m = d^{5/2} R^3 P^D sqrt(D) / (sigma_min^3 eps^2 m_2^3)``, the source's
    ``gamma`` (the noise level of its denoising auto-encoder) written ``sigma_min``.

    BMR20 train a denoising auto-encoder at one noise level and sample with Langevin
    dynamics. Assumes the network class can represent the scores and the data are bounded by
    ``R``; ``m_2`` is the second moment. The ``P^D`` comes from a Rademacher-complexity bound,
    exponential in depth.
    """
    eps = _pos(eps, "eps", below_one=True)
    sig = _pos(sigma_min, "sigma_min", below_one=True)
    d, P, D = _pos(d, "d", at_least_one=True), _pos(P, "P", at_least_one=True), _pos(D, "D", at_least_one=True)
    R, m2 = _pos(R, "R"), _pos(m2, "m2")
    lg = (2.5 * torch.log10(d) + 3 * torch.log10(R) + D * torch.log10(P) + 0.5 * torch.log10(D)
          - 3 * torch.log10(sig) - 2 * torch.log10(eps) - 3 * torch.log10(m2))
    return _out(lg, log10)


def gupta2024(eps: object, sigma_min: object, d: object, P: object, D: object, *, log10: bool = False) -> Tensor:
    """GPPX: ``m = d^2 P D log^3(1/sigma_min) / eps^3`` (Gupta et al. 2024, the summary
    table's simplified statement; the source's ``gamma`` is the stopping noise scale ``sigma_min``).

    Assumes the network class (``P`` parameters, depth ``D``) can represent the scores; the
    guarantee is ``eps`` TV error and a Wasserstein error of the order of the stopping noise.
    """
    eps = _pos(eps, "eps", below_one=True)
    sig = _pos(sigma_min, "sigma_min", below_one=True)
    d, P, D = _pos(d, "d", at_least_one=True), _pos(P, "P", at_least_one=True), _pos(D, "D", at_least_one=True)
    lg = (2 * torch.log10(d) + torch.log10(P) + torch.log10(D) + 3 * torch.log10(torch.log(1 / sig))
          - 3 * torch.log10(eps))
    return _out(lg, log10)


def gaur2025(eps: object, *, version: str = "v1", log10: bool = False) -> Tensor:
    """Gaur et al. (2025), trained network without ERM access: ``m = eps^{-6}`` (``version="v1"``,
    ``Õ``) or ``m = eps^{-4}`` (``version="v2"``, the later version, under a PL condition).
    Here ``eps`` is a score-estimation accuracy, not a TV error."""
    eps = _pos(eps, "eps", below_one=True)
    check_choice(version, "version", ("v1", "v2"))
    k = 6 if version == "v1" else 4
    return _out(-k * torch.log10(eps), log10)


@dataclass(frozen=True)
class Bound:
    """One row of the table of bounds: who, the formula as text, its assumptions, what its
    ``eps`` measures."""

    key: str
    label: str
    cite: str
    formula: str
    assumptions: str
    eps_measures: str = "TV error of the output"


BOUNDS: dict[str, Bound] = {
    "oko2023": Bound("oko2023", "[OAS23]", "oko2023diffusion", r"$\tilde O(\varepsilon^{-O(d)})$",
                     "density on $[-1,1]^d$, Besov smoothness"),
    "chen2023": Bound("chen2023", "[CHZW23]", "chen2023score", r"$\tilde O((\varepsilon\sigma_{\min})^{-O(d)})$",
                      "data on a $d$-dim. subspace"),
    "block2020": Bound("block2020", "[BMR20]", "block2020generative",
                       r"$\tilde O(d^{5/2}R^3P^D\sqrt D/(\sigma_{\min}^3\varepsilon^2 m_2^3))$",
                       "DAE at one noise level + Langevin; network represents the scores; data bounded by $R$",
                       "output accuracy, as compared in GPPX's table"),
    "gupta2024": Bound("gupta2024", "GPPX", "gupta2024improved",
                       r"$\tilde O(d^2PD\log^3(1/\sigma_{\min})/\varepsilon^3)$", "network represents the scores"),
    "gaur2025_v1": Bound("gaur2025_v1", "Gaur et al. v1", "gaur2025sample", r"$\tilde O(\varepsilon^{-6})$",
                         "trained network (no ERM access); bounded moments and gradient variance",
                         "score-estimation error"),
    "gaur2025_v2": Bound("gaur2025_v2", "Gaur et al. later version", "gaur2025sample", r"$O(\varepsilon^{-4})$",
                         "as v1, plus a Polyak–Łojasiewicz condition", "score-estimation error"),
}


def sample_counts(eps: object, sigma_min: object, d: object, P: object, D: object, *, R: object = 1.0,
                  m2: object = 1.0, log10: bool = False) -> dict[str, Tensor]:
    """Every bound of :data:`BOUNDS` at the same parameters, keyed as ``BOUNDS``; all
    results have the broadcast shape of all the arguments (even bounds that ignore some).
    ``sigma_min`` is the sources' gamma, a noise scale (module docstring)."""
    args = [(eps, "eps"), (sigma_min, "sigma_min"), (d, "d"), (P, "P"), (D, "D"), (R, "R"), (m2, "m2")]
    shape = torch.broadcast_shapes(*(as_tensor(v, n).shape for v, n in args))
    out = {
        "oko2023": oko2023(eps, d, log10=log10),
        "chen2023": chen2023(eps, sigma_min, d, log10=log10),
        "block2020": block2020(eps, sigma_min, d, P, D, R=R, m2=m2, log10=log10),
        "gupta2024": gupta2024(eps, sigma_min, d, P, D, log10=log10),
        "gaur2025_v1": gaur2025(eps, version="v1", log10=log10),
        "gaur2025_v2": gaur2025(eps, version="v2", log10=log10),
    }
    return {k: v.expand(shape) for k, v in out.items()}

"""The hidden parameters of a trainee's training response: what ``FitnessWeights-v1``'s agent never sees.

Trainees differ in how their bodies answer the same plan. Each trainee draws, with a generator of their own (so
a trainee is the same drawn alone or in a batch):

==================  =====================================================================================
parameter           draw
==================  =====================================================================================
``responsiveness``  per quality, lognormal: ``r_q = exp(RESPONSIVENESS_SIGMA z_q)`` with
                    ``z_q = sqrt(rho) g + sqrt(1 - rho) e_q`` (``rho = RESPONSIVENESS_CORRELATION``, 0.3),
                    so that responses correlate about 0.3 across qualities, as trait-specific responses
                    do, and not at all with the baseline level (HERITAGE, Bouchard et al. 1999, J Appl
                    Physiol 87:1003-1008: 481 adults, 20 weeks, VO2max responses from none to over +1
                    L/min, a correlation of 0.08 between baseline and response). ``RESPONSIVENESS_SIGMA``
                    0.5 gives a coefficient of variation of about 0.53 (an estimate; the spread of
                    the gains it makes is in ``benchmarks/RESULTS.md``)
``tau1``            fitness time constant, lognormal around 42 days (``exp(N(ln 42, 0.15))``), clipped to
                    [25, 70] (Banister and Busso's fits give 38 to 45 days for the median athlete)
``tau2``            fatigue time constant, lognormal around 8.5 days (``exp(N(ln 8.5, 0.15))``), clipped
                    to [4, 15] (7 to 10 days in the same fits)
``gain_ratio``      ``k2 / k1``, lognormal around 2 (``exp(N(ln 2, 0.2))``), clipped to [1.2, 4]: fatigue
                    outweighs fitness at first, so a load first tires and later pays
``transfer``        the true exercise-to-quality transfer, per exercise a Dirichlet draw around the
                    catalog's loadings, ``Dirichlet(TRANSFER_CONCENTRATION E_prior[e] + TRANSFER_FLOOR)``
                    (20 and 0.1): the catalog is right on average, not for each trainee
==================  =====================================================================================

The spreads of ``tau1``, ``tau2`` and ``gain_ratio`` are estimates, written down here as such.

**Distributions.** The spreads above are :data:`DEFAULT_HIDDEN`, the draw of ``FitnessWeights-v1`` unless told
otherwise. A :class:`HiddenDistribution` holds them, and :data:`HIDDEN_DISTRIBUTIONS` names the presets, chosen
with the env's ``hidden`` argument (``gym.make("FitnessWeights-v1", hidden="wide")``):

===========  ============================================================================================
preset       what it is for
===========  ============================================================================================
``default``  the spreads above; every recorded v1 result is of this draw (the same calls, the same values)
``wide``     trainees who want different plans: the time constants' and the gain ratio's log-sd doubled
             (0.3, 0.3, 0.4) and the transfer's concentration 5 instead of 20 (:data:`WIDE_HIDDEN`; the
             measurement that chose it is in ``benchmarks/RESULTS.md``, "Meta-RL: the gate")
===========  ============================================================================================

The medians and the bounds of the time constants and the gain ratio are the same in every distribution; only the
spreads change. Every distribution makes the same two calls per generator (the normals, then the gammas), so a
trainee's seed gives the same standard normals under any spreads; the gammas, and what the generator draws after
them, depend on the transfer's Dirichlet parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.errors import FieldError

__all__ = [
    "DEFAULT_HIDDEN",
    "EXERCISE_LOADINGS",
    "HIDDEN_DISTRIBUTIONS",
    "RESPONSIVENESS_CORRELATION",
    "RESPONSIVENESS_SIGMA",
    "TRANSFER_CONCENTRATION",
    "TRANSFER_FLOOR",
    "WIDE_HIDDEN",
    "HiddenDistribution",
    "HiddenParameters",
    "hidden_distribution",
    "sample_hidden",
]

RESPONSIVENESS_SIGMA = 0.5
RESPONSIVENESS_CORRELATION = 0.3
TRANSFER_CONCENTRATION = 20.0
TRANSFER_FLOOR = 0.1

_TAU1 = (42.0, 0.15, 25.0, 70.0)  # median, log-sd, low, high
_TAU2 = (8.5, 0.15, 4.0, 15.0)
_GAIN_RATIO = (2.0, 0.2, 1.2, 4.0)
EXERCISE_LOADINGS = np.array([exercise.loadings for exercise in CATALOG.exercises])
"""The catalog's exercise-to-quality loadings ``E_prior`` (44, 5), rows on the simplex."""
_ALPHA = TRANSFER_CONCENTRATION * EXERCISE_LOADINGS + TRANSFER_FLOOR  # the Dirichlet parameters of the transfer

LogNormalSpec = tuple[float, float, float, float]
"""A clipped lognormal: median, log-sd, low, high."""


@dataclass(frozen=True)
class HiddenDistribution:
    """The spreads of the hidden parameters' draw (see the module docstring); validated on construction.

    Args:
        responsiveness_sigma: Log-sd of the responsiveness per quality (> 0).
        responsiveness_correlation: Correlation ``rho`` of the log-responsiveness across qualities, in [0, 1].
        tau1_sigma: Log-sd of the fitness time constant ``tau1`` (> 0; median 42 days, clipped to [25, 70]).
        tau2_sigma: Log-sd of the fatigue time constant ``tau2`` (> 0; median 8.5 days, clipped to [4, 15]).
        gain_ratio_sigma: Log-sd of ``k2 / k1`` (> 0; median 2, clipped to [1.2, 4]).
        transfer_concentration: Concentration of each exercise's transfer around the catalog's loadings (> 0):
            the lower, the farther a trainee's transfer is from the catalog.
        transfer_floor: What every Dirichlet parameter of the transfer gets on top (> 0).

    Raises:
        FieldError: A bad value, naming its field.
    """

    responsiveness_sigma: float = RESPONSIVENESS_SIGMA
    responsiveness_correlation: float = RESPONSIVENESS_CORRELATION
    tau1_sigma: float = _TAU1[1]
    tau2_sigma: float = _TAU2[1]
    gain_ratio_sigma: float = _GAIN_RATIO[1]
    transfer_concentration: float = TRANSFER_CONCENTRATION
    transfer_floor: float = TRANSFER_FLOOR

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise FieldError(spec.name, "must be a finite number", value)
            if spec.name == "responsiveness_correlation":
                if not 0.0 <= value <= 1.0:
                    raise FieldError(spec.name, "must be in [0, 1]", value)
            elif value <= 0:
                raise FieldError(spec.name, "must be above 0", value)
            object.__setattr__(self, spec.name, float(value))

    @property
    def tau1(self) -> LogNormalSpec:
        """``tau1``'s clipped lognormal: median, log-sd, low, high."""
        return (_TAU1[0], self.tau1_sigma, _TAU1[2], _TAU1[3])

    @property
    def tau2(self) -> LogNormalSpec:
        """``tau2``'s clipped lognormal: median, log-sd, low, high."""
        return (_TAU2[0], self.tau2_sigma, _TAU2[2], _TAU2[3])

    @property
    def gain_ratio(self) -> LogNormalSpec:
        """``gain_ratio``'s clipped lognormal: median, log-sd, low, high."""
        return (_GAIN_RATIO[0], self.gain_ratio_sigma, _GAIN_RATIO[2], _GAIN_RATIO[3])

    @property
    def alpha(self) -> np.ndarray:
        """The Dirichlet parameters of the transfer (44, 5): ``transfer_concentration E_prior + transfer_floor``."""
        return self.transfer_concentration * EXERCISE_LOADINGS + self.transfer_floor

    @property
    def mean_transfer(self) -> np.ndarray:
        """The population's mean transfer (44, 5), each row the mean of its Dirichlet."""
        alpha = self.alpha
        return alpha / alpha.sum(axis=1, keepdims=True)

    def sample(self, rngs: Sequence[np.random.Generator]) -> HiddenParameters:
        """The hidden parameters of one trainee per generator; each generator makes two calls (normals, gammas)."""
        n_q = CATALOG.n_qualities
        alpha = self.alpha
        normals = np.empty((len(rngs), n_q + 4))  # g, e_1..e_5, tau1, tau2, ratio
        gammas = np.empty((len(rngs), *alpha.shape))  # (N, 44, 5): a Dirichlet per exercise row
        for i, rng in enumerate(rngs):  # the normals, then the gammas, of each generator
            rng.standard_normal(out=normals[i])
            rng.standard_gamma(alpha, out=gammas[i])
        rho = self.responsiveness_correlation
        z = np.sqrt(rho) * normals[:, :1] + np.sqrt(1.0 - rho) * normals[:, 1 : n_q + 1]
        return HiddenParameters(
            responsiveness=np.exp(self.responsiveness_sigma * z),
            tau1=_lognormal(normals[:, n_q + 1], self.tau1),
            tau2=_lognormal(normals[:, n_q + 2], self.tau2),
            gain_ratio=_lognormal(normals[:, n_q + 3], self.gain_ratio),
            transfer=gammas / gammas.sum(axis=2, keepdims=True),
        )


DEFAULT_HIDDEN = HiddenDistribution()
"""v1's draw: the spreads of the module docstring's table."""
WIDE_HIDDEN = HiddenDistribution(tau1_sigma=0.3, tau2_sigma=0.3, gain_ratio_sigma=0.4, transfer_concentration=5.0)
"""Trainees who want different plans (``hidden="wide"``): the log-sd of ``tau1``, ``tau2`` and ``gain_ratio``
doubled (0.3, 0.3, 0.4: one sd is 31 to 57 days, 6.3 to 11.5 days and 1.3 to 3.0), the transfer's concentration
20 -> 5 (each trainee's transfer about twice as far from the catalog: a row's mean L1 distance 0.42 against 0.22),
the responsiveness as v1's. Chosen by how far the plan oracle leads the plan for the population's average trainee
(``benchmarks/bench_v1_spread.py``): 0.36 of the oracle's margin on v1's draw, 0.87 on this one, most of it from
the time constants and the gain ratio."""
HIDDEN_DISTRIBUTIONS: Mapping[str, HiddenDistribution] = {"default": DEFAULT_HIDDEN, "wide": WIDE_HIDDEN}
"""The named distributions that the env's ``hidden`` argument takes."""


def hidden_distribution(value: Any, field: str = "hidden") -> HiddenDistribution:
    """The distribution ``value`` names (a key of :data:`HIDDEN_DISTRIBUTIONS`), or ``value`` itself if it is one.

    Raises:
        FieldError: Neither, naming ``field``.
    """
    if isinstance(value, HiddenDistribution):
        return value
    if isinstance(value, str) and value in HIDDEN_DISTRIBUTIONS:
        return HIDDEN_DISTRIBUTIONS[value]
    names = ", ".join(repr(name) for name in HIDDEN_DISTRIBUTIONS)
    raise FieldError(field, f"must be one of {names} or a HiddenDistribution", value)


@dataclass(frozen=True)
class HiddenParameters:
    """The hidden parameters of a batch of N trainees (see the module docstring).

    Args:
        responsiveness: ``(N, 5)``, above 0.
        tau1: ``(N,)`` days.
        tau2: ``(N,)`` days, below ``tau1``.
        gain_ratio: ``(N,)``, ``k2 / k1``, above 1.
        transfer: ``(N, 44, 5)``, each exercise's row on the 5-simplex.
    """

    responsiveness: np.ndarray
    tau1: np.ndarray
    tau2: np.ndarray
    gain_ratio: np.ndarray
    transfer: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """The parameters as JSON-ready lists (what ``info["hidden"]`` shows)."""
        return {name: value.tolist() for name, value in vars(self).items()}


def _lognormal(normal: np.ndarray, spec: LogNormalSpec) -> np.ndarray:
    median, sigma, low, high = spec
    return np.clip(median * np.exp(sigma * normal), low, high)


def sample_hidden(
    rngs: Sequence[np.random.Generator], distribution: HiddenDistribution = DEFAULT_HIDDEN
) -> HiddenParameters:
    """The hidden parameters of one trainee per generator, drawn from ``distribution`` (v1's default unless told).

    Each generator makes two calls (normals, gammas): :meth:`HiddenDistribution.sample`.
    """
    return distribution.sample(rngs)

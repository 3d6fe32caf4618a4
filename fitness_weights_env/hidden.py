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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fitness_weights_env.catalog import CATALOG

__all__ = [
    "EXERCISE_LOADINGS",
    "RESPONSIVENESS_CORRELATION",
    "RESPONSIVENESS_SIGMA",
    "TRANSFER_CONCENTRATION",
    "TRANSFER_FLOOR",
    "HiddenParameters",
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


def _lognormal(normal: np.ndarray, spec: tuple[float, float, float, float]) -> np.ndarray:
    median, sigma, low, high = spec
    return np.clip(median * np.exp(sigma * normal), low, high)


def sample_hidden(rngs: Sequence[np.random.Generator]) -> HiddenParameters:
    """The hidden parameters of one trainee per generator; each generator makes two calls (normals, gammas)."""
    n_q = CATALOG.n_qualities
    normals = np.empty((len(rngs), n_q + 4))  # g, e_1..e_5, tau1, tau2, ratio
    gammas = np.empty((len(rngs), *_ALPHA.shape))  # (N, 44, 5): a Dirichlet per exercise row
    for i, rng in enumerate(rngs):  # the normals, then the gammas, of each generator
        rng.standard_normal(out=normals[i])
        rng.standard_gamma(_ALPHA, out=gammas[i])
    rho = RESPONSIVENESS_CORRELATION
    z = np.sqrt(rho) * normals[:, :1] + np.sqrt(1.0 - rho) * normals[:, 1 : n_q + 1]
    return HiddenParameters(
        responsiveness=np.exp(RESPONSIVENESS_SIGMA * z),
        tau1=_lognormal(normals[:, n_q + 1], _TAU1),
        tau2=_lognormal(normals[:, n_q + 2], _TAU2),
        gain_ratio=_lognormal(normals[:, n_q + 3], _GAIN_RATIO),
        transfer=gammas / gammas.sum(axis=2, keepdims=True),
    )

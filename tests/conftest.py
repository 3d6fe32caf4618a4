import numpy as np
import pytest
import torch as th

from fitness_weights_env import TraineeProfile, sample_profile


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' models are tiny: one thread avoids OpenMP contention (10-100x slower on a busy 2-core machine)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


@pytest.fixture
def profile() -> TraineeProfile:
    return sample_profile(np.random.default_rng(2024))


class ReferenceEpisode:
    """The original design's transition and reward, written plainly for one trainee (the test oracle)."""

    def __init__(self, cq0: np.ndarray, qx0: np.ndarray, qualities: np.ndarray, targets: list[int], drift_coef: float):
        self.cq, self.qx = cq0.astype(np.float64).copy(), qx0.astype(np.float64).copy()
        self.cq0, self.qx0 = self.cq.copy(), self.qx.copy()
        self.q = qualities.astype(np.float64)
        self.targets = targets
        self.drift_coef = drift_coef

    def step(self, action: int, delta: float) -> float:
        if action < 465:
            matrix, row, col = self.cq, action // 5, action % 5
        else:
            matrix, row, col = self.qx, (action - 465) // 44, (action - 465) % 44
        matrix[row, col] = min(max(matrix[row, col] + delta, 0.0), 1.0)
        matrix[row] /= matrix[row].sum()
        return self.reward()

    def reward(self) -> float:
        score = np.mean([self.cq[s] @ self.q for s in self.targets])
        drift = np.linalg.norm(self.cq - self.cq0) + np.linalg.norm(self.qx - self.qx0)
        return float(score - self.drift_coef * drift)


@pytest.fixture
def reference_episode():
    return ReferenceEpisode

"""Per-actor training metrics, computed with vectorized ops on the actor codes.

One ``index_add_`` sums |TD|, reward, Q and a column of ones (the count) per actor code:
no Python loop over the batch, and the cost stays nearly flat as the batch grows. Counts go
through float32, exact up to 2**24 samples per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


def per_actor_stats(codes: torch.Tensor, td: torch.Tensor, reward: torch.Tensor, q: torch.Tensor,
                    n_actors: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(count, td_abs_mean, reward_mean, q_mean)`` per actor code, as numpy arrays of shape ``(A,)``.

    A mean over zero samples is NaN (not 0, which would read as a measurement).
    """
    # one index_add_ of [|td|, reward, q, 1] rows: sums and counts in a single pass over the batch
    vals = torch.stack((td.detach().abs(), reward.detach().to(td.dtype), q.detach(), torch.ones_like(td)), dim=1)
    sums = torch.zeros((n_actors, 4), dtype=vals.dtype).index_add_(0, codes.long(), vals).numpy()
    count = sums[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 -> NaN where an actor is absent
        means = (sums[:, :3] / count[:, None]).astype(np.float32)
    return count.astype(np.int32), means[:, 0], means[:, 1], means[:, 2]


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan, np.float32)


@dataclass
class TrainMetrics:
    """What one training step did, per actor (arrays in vocabulary code order).

    ``metrics.per_actor()`` gives every actor by name; the properties ``batch_frac_dqn``,
    ``td_err_mean_expert``, ... are the names the team uses for the two standard actors.
    """

    step: int
    loss: float
    td_loss: float
    awr_loss: float
    actors: tuple[str, ...]
    batch_count: np.ndarray
    td_abs_mean: np.ndarray
    reward_mean: np.ndarray
    q_mean: np.ndarray
    grad_norm: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.grad_norm is None:
            self.grad_norm = _nan(len(self.actors))

    @property
    def batch_size(self) -> int:
        return int(self.batch_count.sum())

    @property
    def batch_frac(self) -> np.ndarray:
        n = self.batch_size
        return self.batch_count / n if n else np.full(len(self.actors), math.nan)

    def per_actor(self) -> dict[str, dict[str, float]]:
        frac = self.batch_frac
        return {name: {"batch_n": int(self.batch_count[i]), "batch_frac": float(frac[i]),
                       "td_err_mean": float(self.td_abs_mean[i]), "reward_mean": float(self.reward_mean[i]),
                       "q_mean": float(self.q_mean[i]), "grad_norm": float(self.grad_norm[i])}
                for i, name in enumerate(self.actors)}

    def _of(self, actor: str, values) -> float:
        try:
            i = self.actors.index(actor)
        except ValueError:
            raise KeyError(
                f"actor {actor!r} is not in this run's vocabulary {list(self.actors)}; "
                "use metrics.per_actor()[name] for other vocabularies"
            ) from None
        return values[i]

    batch_frac_dqn = property(lambda self: float(self._of("dqn", self.batch_frac)))
    batch_frac_expert = property(lambda self: float(self._of("expert", self.batch_frac)))
    batch_n_dqn = property(lambda self: int(self._of("dqn", self.batch_count)))
    batch_n_expert = property(lambda self: int(self._of("expert", self.batch_count)))
    td_err_mean_dqn = property(lambda self: float(self._of("dqn", self.td_abs_mean)))
    td_err_mean_expert = property(lambda self: float(self._of("expert", self.td_abs_mean)))
    reward_mean_dqn = property(lambda self: float(self._of("dqn", self.reward_mean)))
    reward_mean_expert = property(lambda self: float(self._of("expert", self.reward_mean)))
    q_mean_dqn = property(lambda self: float(self._of("dqn", self.q_mean)))
    q_mean_expert = property(lambda self: float(self._of("expert", self.q_mean)))

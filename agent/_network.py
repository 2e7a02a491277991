"""``HybridDQN``: a shared trunk with a discrete Q head and a continuous (tanh) action head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .errors import ConfigError


def state_input(state: torch.Tensor) -> torch.Tensor:
    """A batch of states as the network's float32 input: uint8 (pixels) scaled by 1/255, other
    integer and float dtypes cast as they are."""
    if state.dtype == torch.uint8:
        return state.to(torch.float32).div_(255.0)
    if state.dtype != torch.float32:
        return state.to(torch.float32)
    return state


class HybridDQN(nn.Module):
    """Q values over ``n_discrete`` actions and a continuous action in [-1, 1]^continuous_dim.

    ``forward(state: [B, *state_shape]) -> (q: [B, n_discrete], cont: [B, continuous_dim])``.
    With ``continuous_dim=0`` the continuous head has no parameters and returns a ``[B, 0]`` tensor.

    States may come in their stored dtype (``state_input``): uint8 states are pixels and are
    scaled by 1/255 to [0, 1], as DQN, Dopamine and Stable-Baselines3 do for images; other integer
    dtypes are cast to float32 as they are, float64 to float32. So pass a uint8 batch as it is:
    BEWARE that casting it to float first (``.float()``) skips the scaling.

    >>> net = HybridDQN((4,), n_discrete=2, continuous_dim=1, hidden=(16,))
    >>> q, c = net(torch.zeros(3, 4))
    >>> tuple(q.shape), tuple(c.shape)
    ((3, 2), (3, 1))
    >>> pixels = torch.full((1, 4), 255, dtype=torch.uint8)
    >>> torch.equal(net(pixels)[0], net(torch.ones(1, 4))[0])
    True
    """

    def __init__(self, state_shape: Sequence[int], n_discrete: int, continuous_dim: int = 0,
                 hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.state_shape = tuple(int(s) for s in state_shape)
        self.n_discrete = int(n_discrete)
        self.continuous_dim = int(continuous_dim)
        self.hidden = tuple(int(h) for h in hidden)
        if self.n_discrete < 1:
            raise ConfigError(f"n_discrete={n_discrete}: expected at least one discrete action")
        if self.continuous_dim < 0:
            raise ConfigError(f"continuous_dim={continuous_dim}: expected >= 0 (0 for discrete-only)")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"hidden={hidden!r}: expected positive layer widths, e.g. (128, 128)")
        in_dim = 1
        for s in self.state_shape:
            in_dim *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for h in self.hidden:
            layers += [nn.Linear(in_dim, h), nn.ReLU()]
            in_dim = h
        self.trunk = nn.Sequential(*layers)
        self.q_head = nn.Linear(in_dim, self.n_discrete)
        self.cont_head = nn.Linear(in_dim, self.continuous_dim) if self.continuous_dim else None

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.trunk(state_input(state))
        q = self.q_head(z)
        if self.cont_head is None:
            return q, z.new_zeros((z.shape[0], 0))
        return q, torch.tanh(self.cont_head(z))

    def spec(self) -> dict:
        """Constructor arguments (JSON-able), stored beside the weights in a checkpoint."""
        return {"state_shape": list(self.state_shape), "n_discrete": self.n_discrete,
                "continuous_dim": self.continuous_dim, "hidden": list(self.hidden)}

    @classmethod
    def from_spec(cls, spec: dict) -> "HybridDQN":
        return cls(spec["state_shape"], spec["n_discrete"], spec["continuous_dim"], spec["hidden"])

"""``AgentConfig``: every hyperparameter of a training run, one documented field each.

The command line parses into this dataclass in one place; the store's metadata keeps
``dataclasses.asdict(config)`` and checkpoints keep it too, so a run can be rebuilt from either.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import ConfigError

SAMPLER_STRATEGIES = ("uniform", "stratified", "prioritized")


@dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters of a hybrid-DQN run with an expert mixed in (defaults: the demo run).

    The defaults were tuned on CartPole-v1 over 8 seeds (greedy DQN alone, 10 episodes: mean 407,
    min 194, 4 of 8 seeds at 500; random ~22, the expert 500) in about 40 s on one free core.
    """

    env_id: str = "CartPole-v1"
    """Gymnasium id: ``CartPole-v1`` (discrete) or ``HybridCartPole-v1`` (discrete + continuous)."""
    seed: int = 0
    """Seeds the environment, the actor mixing, epsilon-greedy, the network init and the sampler."""
    expert_ratio: float = 0.26
    """Probability that the expert, not the DQN, decides a frame. Recorded as the run's declared ratio."""
    expert: str = "replaystore.agent:CartPoleExpert"
    """The expert, as ``"module:name"``: ``name(spec: EnvSpec)`` returns a policy ``state -> (discrete,
    continuous)``. Imported when ``expert_ratio > 0``. The default drives CartPole; name your own for
    other environments (``replaystore train --expert mypkg.experts:Pong``)."""
    total_steps: int = 30_000
    """Environment steps (frames) of the run."""
    learning_starts: int = 1_000
    """Frames stored before the first training step."""
    train_every: int = 1
    """Frames between training steps once learning has started."""
    batch_size: int = 128
    """Transitions per training batch."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor per frame."""
    n_step: int = 3
    """Horizon of the n-step return (1 = one-step TD). Rows r..r+n-1 of the same episode are gathered."""
    target_update_every: int = 500
    """Training steps between copies of the online network into the target network."""
    hidden: tuple[int, ...] = (128, 128)
    """Widths of the shared trunk's hidden layers."""
    huber_delta: float = 1.0
    """Huber loss threshold on the TD error."""
    max_grad_norm: float = 10.0
    """Gradient norm clip before each optimizer step (``inf`` to disable)."""
    eps_start: float = 1.0
    """Epsilon of the DQN's epsilon-greedy policy at the first frame."""
    eps_end: float = 0.02
    """Epsilon after the decay."""
    eps_fraction: float = 0.3
    """Share of ``total_steps`` over which epsilon decays linearly from ``eps_start`` to ``eps_end``."""
    awr_beta: float = 1.0
    """Temperature of advantage-weighted regression: weight = exp(advantage / beta), clipped."""
    awr_max_weight: float = 20.0
    """Upper clip of the AWR weights."""
    awr_coef: float = 1.0
    """Weight of the continuous head's AWR loss in the total loss (ignored when it has width 0)."""
    actor_loss_weights: dict[str, float] | None = None
    """Optional per-actor multipliers of each sample's loss, e.g. ``{"expert": 2.0}``; unnamed actors get 1."""
    sampler_strategy: str = "uniform"
    """``store.Sampler`` strategy: ``uniform``, ``stratified`` (needs ``actor_fractions``) or ``prioritized``."""
    actor_fractions: dict[str, float] | None = None
    """Batch share per actor for the ``stratified`` sampler."""
    actors: tuple[str, ...] = ("expert", "dqn")
    """The store's actor vocabulary (code order)."""
    expert_actor: str = "expert"
    """Vocabulary name of the frames the expert decides."""
    dqn_actor: str = "dqn"
    """Vocabulary name of the frames the DQN decides."""
    window: int = 1_000_000
    """Replay window of the store (rows sampled from)."""
    commit_every: int = 512
    """Store commit cadence in rows (rows become sampleable once committed)."""
    log_batch_every: int = 100
    """Training steps between ``[BATCH]`` log lines (0 = never)."""
    log_buffer_every: int = 1_000
    """Training steps between ``[BUFFER]`` log lines (0 = never)."""
    samples_every: int = 100
    """Training steps between per-sample telemetry rows (``train_samples``) (0 = never)."""
    grad_norm_every: int = 100
    """Training steps between per-actor gradient-norm measurements (0 = never)."""
    telemetry_block: int = 100
    """``train_steps`` rows staged in memory before they are handed to the store."""
    checkpoint_every: int = 5_000
    """Training steps between checkpoints (0 = only at the end of the run)."""
    torch_threads: int = 1
    """``torch.set_num_threads`` for the run: small ops are slower and erratic with more threads."""
    frames_once: bool = False
    """Store each observed frame once (``store.FrameStack``) instead of whole ``state``/``next_state``
    stacks: for image observations stacked on the first axis by gymnasium's ``FrameStackObservation``
    (the depth is the wrapper's). Reads, samples and training see the same stacks either way; an
    Atari-style run takes about 8x less disk. Other observations are a ConfigError at the start."""

    def __post_init__(self):
        for name in ("total_steps", "batch_size", "n_step", "train_every", "target_update_every",
                     "window", "commit_every", "telemetry_block", "torch_threads"):
            _positive_int(name, getattr(self, name))
        for name in ("learning_starts", "log_batch_every", "log_buffer_every", "samples_every",
                     "grad_norm_every", "checkpoint_every", "seed"):
            _nonneg_int(name, getattr(self, name))
        _unit("expert_ratio", self.expert_ratio)
        module, sep, name = self.expert.partition(":") if isinstance(self.expert, str) else ("", "", "")
        if not (sep and module.strip() and name.strip()):
            raise ConfigError(f"expert={self.expert!r}: expected 'module:name' of an expert factory, "
                              "e.g. 'replaystore.agent:CartPoleExpert'")
        if not isinstance(self.frames_once, bool):
            raise ConfigError(f"frames_once={self.frames_once!r}: expected True or False")
        _unit("eps_start", self.eps_start)
        _unit("eps_end", self.eps_end)
        _unit("eps_fraction", self.eps_fraction)
        if not (0.0 < self.gamma <= 1.0):
            raise ConfigError(f"gamma={self.gamma!r}: expected a discount in (0, 1]")
        for name in ("lr", "huber_delta", "awr_beta", "awr_max_weight", "max_grad_norm"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) or v <= 0:
                raise ConfigError(f"{name}={v!r}: expected a positive number")
        if not isinstance(self.awr_coef, (int, float)) or not math.isfinite(self.awr_coef) or self.awr_coef < 0:
            raise ConfigError(f"awr_coef={self.awr_coef!r}: expected a finite number >= 0")
        hidden = tuple(self.hidden)
        if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h <= 0 for h in hidden):
            raise ConfigError(f"hidden={self.hidden!r}: expected a non-empty tuple of positive ints, e.g. (128, 128)")
        object.__setattr__(self, "hidden", hidden)
        actors = tuple(self.actors)
        object.__setattr__(self, "actors", actors)
        for name in ("expert_actor", "dqn_actor"):
            if getattr(self, name) not in actors:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not in actors={actors}; "
                                  "name one of the vocabulary's actors")
        if self.expert_actor == self.dqn_actor:
            raise ConfigError(f"expert_actor and dqn_actor are both {self.dqn_actor!r}; they must differ")
        if self.sampler_strategy not in SAMPLER_STRATEGIES:
            raise ConfigError(f"sampler_strategy={self.sampler_strategy!r}: expected one of {SAMPLER_STRATEGIES}")
        if self.sampler_strategy == "stratified" and not self.actor_fractions:
            raise ConfigError("sampler_strategy='stratified' needs actor_fractions, e.g. {'expert': 0.5, 'dqn': 0.5}")
        for name in ("actor_loss_weights", "actor_fractions"):
            d = getattr(self, name)
            if d is None:
                continue
            if not isinstance(d, dict):
                raise ConfigError(f"{name}={d!r}: expected a dict of actor name -> number, or None")
            unknown = sorted(set(d) - set(actors))
            if unknown:
                raise ConfigError(f"{name} names {unknown}, which are not in actors={actors}")
            bad = {k: v for k, v in d.items()
                   if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0}
            if bad:
                raise ConfigError(f"{name} has invalid values {bad}: expected finite numbers >= 0")
            object.__setattr__(self, name, {k: float(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        """JSON-able form (tuples become lists), as stored in metadata and checkpoints."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["actors"] = list(self.actors)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AgentConfig":
        """Inverse of ``to_dict``; unknown keys are an error (a config from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"config keys {unknown} are not AgentConfig fields; known: {sorted(names)}")
        d = dict(d)
        for k in ("hidden", "actors"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def replace(self, **changes) -> "AgentConfig":
        return dataclasses.replace(self, **changes)


def _positive_int(name, v):
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"{name}={v!r}: expected a positive int")


def _nonneg_int(name, v):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ConfigError(f"{name}={v!r}: expected an int >= 0")


def _unit(name, v):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0.0 <= v <= 1.0):
        raise ConfigError(f"{name}={v!r}: expected a number in [0, 1]")

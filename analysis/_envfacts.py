"""What the audit knows of the environment a run was recorded in, and where each fact came from.

Facts come from four places, later ones overriding earlier ones field by field:

1. built-in rules for the CartPole family (time limit, per-step reward, terminal states, the agent's
   scripted expert);
2. gymnasium's registry, for an ``env_id`` already registered there: the spec's time limit and the
   observation and action spaces (bounds, discrete action count). The environment is constructed
   to read its spaces, never reset or stepped; an id with a ``module:`` prefix (which gymnasium
   would import) is never looked up, because a store is data and naming code in it must not run it;
3. an ``env`` block in the store's metadata (``ENV_KEYS``), for a custom environment;
4. facts the auditor supplies after the fact (``audit(env_facts=...)``, ``replaystore audit
   --env-facts FILE``), in the same format as the ``env`` block.

A run setting ``max_episode_steps`` (top level or the agent's ``config``) sets the time limit too.
Checks that need a fact the run does not have are skipped, with the reason, rather than guessed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ._anomalies import run_setting

# gymnasium's CartPole terminates past 12 degrees or 2.4 units. It decides on its float64 state and
# stores a float32 observation, so a state within SLACK (relative) of a bound is neither surely
# terminal nor surely not: the checks leave such rows alone.
THETA_LIMIT = 12 * 2 * np.pi / 360
X_LIMIT = 2.4
SLACK = 1e-5

ENV_KEYS = {
    "id": "str: the environment's name (reports only)",
    "max_episode_steps": "int > 0 or null: the time limit; an episode that reaches it is truncated, not terminal",
    "reward_range": "[low, high]: every per-step reward lies inside (null for an unbounded side)",
    "random_reset": "bool: whether reset states are drawn at random (repeated rows are then a copy, not chance)",
    "observation": "{'shape': [..], 'low': x or [..], 'high': x or [..]}: the state's shape and bounds",
    "action": "{'n': K} (discrete actions 0..K-1) or {'shape': [k], 'low': .., 'high': ..} (continuous)",
    "actors": "{actor: {'deterministic': bool, 'policy': 'package.module:function'}}: a deterministic actor "
              "acts the same on the same state; its policy is imported only when the auditor trusts it",
    "n_actions": "int: shorthand for 'action': {'n': K}",
    "action_low": "list: shorthand for 'action': {'shape': [len], 'low': .., 'high': ..}, with action_high",
    "action_high": "list: see action_low",
}
SHORTHAND = ("n_actions", "action_low", "action_high")
ACTOR_KEYS = ("deterministic", "scripted", "policy")


class EnvFactsError(ValueError):
    """An ``env`` block (metadata, ``--env-facts`` file or ``audit(env_facts=)``) is malformed."""


def cartpole_terminal(next_state: np.ndarray) -> np.ndarray:
    """+1 where a CartPole next state is surely past the termination bounds (pole fallen or cart
    out), -1 where it is surely inside them, 0 within rounding of a bound."""
    s = np.asarray(next_state, np.float64).reshape(len(next_state), -1)
    margin = np.maximum(np.abs(s[:, 0]) / X_LIMIT, np.abs(s[:, 2]) / THETA_LIMIT) - 1.0
    return np.where(margin > SLACK, 1, np.where(margin < -SLACK, -1, 0)).astype(np.int8)


@dataclass(frozen=True)
class EnvFacts:
    """``reward``: a constant per-step reward (CartPole's 1.0), else None; ``reward_range``: bounds
    of every per-step reward; ``policy``: the agent's built-in scripted policy for this environment;
    ``actors``: per actor, ``deterministic`` and the ``policy`` named by the data (never imported
    unless trusted); ``sources``: fact -> where it came from."""

    env_id: str | None
    max_steps: int | None = None
    reward: float | None = None
    random_reset: bool | None = None
    state_dim: int | None = None
    terminal: Callable[[np.ndarray], np.ndarray] | None = None
    policy: str | None = None
    reward_range: tuple | None = None
    obs_shape: tuple | None = None
    obs_low: np.ndarray | None = None
    obs_high: np.ndarray | None = None
    n_actions: int | None = None
    action_shape: tuple | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    reward_threshold: float | None = None  # the registry's "solved" return: its sign hints the rewards' sign
    actors: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)

    def deterministic_actors(self) -> list[str]:
        return [a for a, d in self.actors.items() if d.get("deterministic") or d.get("scripted")]

    def describe(self) -> dict:
        """The facts as JSON-ready data, for the report."""
        arr = lambda v: None if v is None else np.asarray(v).tolist()  # noqa: E731
        return {"env_id": self.env_id, "max_episode_steps": self.max_steps, "reward_per_step": self.reward,
                "reward_range": None if self.reward_range is None else list(self.reward_range),
                "random_reset": self.random_reset, "observation": {"shape": self.obs_shape, "low": arr(self.obs_low),
                                                                   "high": arr(self.obs_high)},
                "action": {"n": self.n_actions, "shape": self.action_shape, "low": arr(self.action_low),
                           "high": arr(self.action_high)},
                "reward_threshold": self.reward_threshold, "terminal_rule": self.terminal is not None, "builtin_policy": self.policy,
                "actors": self.actors, "sources": self.sources}


def _cartpole(env_id: str, limit: int) -> EnvFacts:
    src = "built-in CartPole facts"
    return EnvFacts(env_id, limit, 1.0, True, 4, cartpole_terminal, "CartPoleExpert", obs_shape=(4,),
                    n_actions=2, sources={k: src for k in ("max_episode_steps", "reward_per_step",
                                                          "random_reset", "observation", "action", "terminal_rule")})


KNOWN = {
    "CartPole-v1": _cartpole("CartPole-v1", 500),
    "CartPole-v0": _cartpole("CartPole-v0", 200),
    # reward 1 - 0.1 * (scale**2 - 1) per frame, scale in [0.5, 1.5]: between 0.875 and 1.075
    "HybridCartPole-v1": _cartpole("HybridCartPole-v1", 500),
}


def env_facts(meta: dict, supplied=None) -> tuple[EnvFacts | None, list[str]]:
    """The facts of the run: built-in, registry, the metadata ``env`` block, then ``supplied`` (a
    dict or a JSON file path in the same format). Returns ``(facts or None, problems)``: problems of
    the store's own ``env`` block are reported by the audit, not raised (a store is data); a
    malformed ``supplied`` raises ``EnvFactsError``."""
    problems: list[str] = []
    env_id = run_setting(meta, "env_id")
    env_id = env_id if isinstance(env_id, str) and env_id else None
    facts = KNOWN.get(env_id) if env_id else None
    if facts is None and env_id:
        facts, why = registry_facts(env_id)
        if why:
            problems.append(why)
    block = meta.get("env")
    if block is not None:
        try:
            facts = merge(facts, parse_block(block, "metadata 'env'"), "metadata 'env' block", env_id)
        except EnvFactsError as e:
            problems.append(f"{e}; the block is ignored")
    if supplied is not None:
        given = load_supplied(supplied)
        facts = merge(facts, parse_block(given, _name(supplied)), _name(supplied), env_id)
    limit = run_setting(meta, "max_episode_steps")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and facts is not None \
            and "max_episode_steps" not in _explicit(meta, supplied):
        facts = replace(facts, max_steps=limit, sources={**facts.sources, "max_episode_steps": "run setting"})
    elif isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and facts is None:
        facts = EnvFacts(env_id, limit, sources={"max_episode_steps": "run setting"})
    return facts, [p for p in problems if p]


def _name(supplied) -> str:
    return f"--env-facts {os.fspath(supplied)}" if isinstance(supplied, (str, os.PathLike)) else "audit(env_facts=)"


def _explicit(meta: dict, supplied) -> set:
    keys = set(meta["env"]) if isinstance(meta.get("env"), dict) else set()
    if isinstance(supplied, dict):
        keys |= set(supplied)
    return keys


def load_supplied(supplied) -> dict:
    if isinstance(supplied, dict):
        return supplied
    if not isinstance(supplied, (str, os.PathLike)):
        raise TypeError(f"env_facts must be a dict or the path of a JSON file, got {type(supplied).__name__}")
    try:
        with open(supplied, encoding="utf-8") as f:
            out = json.load(f)
    except json.JSONDecodeError as e:
        raise EnvFactsError(f"--env-facts {os.fspath(supplied)} is not JSON: {e}") from None
    if isinstance(out, dict) and set(out) == {"env"}:
        out = out["env"]  # a metadata-shaped file: {"env": {...}}
    return out


def registry_facts(env_id: str) -> tuple[EnvFacts | None, str]:
    """Facts from gymnasium's registry and the env's spaces (constructed, never reset or stepped)."""
    if ":" in env_id:
        return None, (f"env_id {env_id!r} names a module gymnasium would import; a store is data, so it is not "
                      "looked up (declare the facts in an 'env' block or pass --env-facts)")
    try:
        import gymnasium
    except ImportError:
        return None, (f"env_id {env_id!r}: gymnasium is not installed, so its registry cannot be read "
                      "(pip install gymnasium, or pass --env-facts)")
    spec = gymnasium.registry.get(env_id)
    if spec is None:
        return None, ""  # not registered: a custom environment; its facts come from the env block
    src = f"gymnasium registry ({env_id})"
    kw = dict(env_id=env_id, max_steps=spec.max_episode_steps, sources={"max_episode_steps": src})
    if isinstance(spec.reward_threshold, (int, float)) and math.isfinite(spec.reward_threshold):
        kw.update(reward_threshold=float(spec.reward_threshold))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gymnasium.make(env_id, disable_env_checker=True)
        try:
            obs, act = env.observation_space, env.action_space
        finally:
            env.close()
    except Exception as e:  # noqa: BLE001 - any failure to build the env only loses the space facts
        return EnvFacts(**kw), f"{env_id}: its spaces could not be read ({type(e).__name__}: {e})"
    kw.update(_space_facts(obs, act, src))
    kw["sources"]["reward_threshold"] = src
    kw["sources"].update({k: src for k in ("observation", "action") if k in kw.pop("_found", ())})
    return EnvFacts(**kw), ""


def _space_facts(obs, act, src) -> dict:
    out, found = {"sources": {"max_episode_steps": src}}, []
    if hasattr(obs, "low") and hasattr(obs, "high") and obs.shape is not None:
        out.update(obs_shape=tuple(obs.shape), obs_low=np.asarray(obs.low, np.float64),
                   obs_high=np.asarray(obs.high, np.float64), state_dim=int(np.prod(obs.shape)))
        found.append("observation")
    if hasattr(act, "n") and np.ndim(act.n) == 0:
        out["n_actions"] = int(act.n)
        found.append("action")
    elif hasattr(act, "low") and hasattr(act, "high") and act.shape is not None:
        out.update(action_shape=tuple(act.shape), action_low=np.asarray(act.low, np.float64),
                   action_high=np.asarray(act.high, np.float64))
        found.append("action")
    out["_found"] = found
    return out


def parse_block(block, where: str) -> dict:
    """Validate an ``env`` block; returns EnvFacts fields. Errors name the key, the value and the fix."""
    if not isinstance(block, dict):
        raise EnvFactsError(f"{where} must be a JSON object of {sorted(ENV_KEYS)}, got {type(block).__name__}")
    unknown = sorted(set(block) - set(ENV_KEYS))
    if unknown:
        raise EnvFactsError(f"{where}: unknown key(s) {unknown}; known keys: "
                            + "; ".join(f"{k}: {v}" for k, v in ENV_KEYS.items()))
    short = [k for k in SHORTHAND if k in block]
    if short:
        if "action" in block:
            raise EnvFactsError(f"{where}: give the action space once, as 'action' or as {short}, not both")
        given, block = block, {k: v for k, v in block.items() if k not in SHORTHAND}
        if short == ["n_actions"]:
            block["action"] = {"n": given["n_actions"]}
        elif short == ["action_low", "action_high"]:
            low = given["action_low"]
            block["action"] = {"shape": [len(low) if isinstance(low, list) else 1], "low": low,
                               "high": given["action_high"]}
        else:
            raise EnvFactsError(f"{where}: {short} given; give n_actions alone (discrete) or action_low and "
                                "action_high together (continuous)")
    out: dict = {}
    if "id" in block:
        if not isinstance(block["id"], str):
            raise EnvFactsError(f"{where}['id']={block['id']!r}: expected a string")
        out["env_id"] = block["id"]
    if "max_episode_steps" in block:
        v = block["max_episode_steps"]
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise EnvFactsError(f"{where}['max_episode_steps']={v!r}: expected a positive integer or null")
        out["max_steps"] = v
    if "reward_range" in block:
        out["reward_range"] = _range(block["reward_range"], f"{where}['reward_range']")
    if "random_reset" in block:
        if not isinstance(block["random_reset"], bool):
            raise EnvFactsError(f"{where}['random_reset']={block['random_reset']!r}: expected true or false")
        out["random_reset"] = block["random_reset"]
    if "observation" in block:
        shape, low, high = _box(block["observation"], f"{where}['observation']", need_bounds=False)
        out.update(obs_shape=shape, obs_low=low, obs_high=high, state_dim=int(np.prod(shape)))
    if "action" in block:
        out.update(_action(block["action"], f"{where}['action']"))
    if "actors" in block:
        out["actors"] = _actors(block["actors"], f"{where}['actors']")
    return out


def _number(v, where: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise EnvFactsError(f"{where}={v!r}: expected a number (or null for no bound)")
    return float(v)


def _range(v, where: str) -> tuple:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise EnvFactsError(f"{where}={v!r}: expected [low, high], e.g. [-1, 0] (null for an unbounded side)")
    lo, hi = (_number(x, where) for x in v)
    lo, hi = (-math.inf if math.isnan(lo) else lo), (math.inf if math.isnan(hi) else hi)
    if lo > hi:
        raise EnvFactsError(f"{where}={v!r}: low {lo} is above high {hi}")
    return lo, hi


def _box(v, where: str, need_bounds: bool) -> tuple:
    if not isinstance(v, dict) or "shape" not in v:
        raise EnvFactsError(f"{where}={v!r}: expected {{'shape': [..], 'low': .., 'high': ..}}")
    extra = sorted(set(v) - {"shape", "low", "high"})
    if extra:
        raise EnvFactsError(f"{where}: unknown key(s) {extra}; expected shape, low, high")
    shape = v["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                              for d in shape):
        raise EnvFactsError(f"{where}['shape']={shape!r}: expected a list of positive integers, e.g. [4]")
    shape = tuple(shape)
    bounds = []
    for k, fill in (("low", -math.inf), ("high", math.inf)):
        if k not in v:
            if need_bounds:
                raise EnvFactsError(f"{where}: '{k}' is required (the bound checks need it)")
            bounds.append(None)
            continue
        b = v[k]
        flat = b if isinstance(b, list) else [b]
        vals = [fill if x is None else _number(x, f"{where}['{k}']") for x in flat]
        arr = np.asarray(vals, np.float64)
        try:
            arr = np.broadcast_to(arr, shape).copy()
        except ValueError:
            raise EnvFactsError(f"{where}['{k}'] has {arr.size} value(s); expected 1 or {int(np.prod(shape))} "
                                f"for shape {list(shape)}") from None
        bounds.append(arr)
    low, high = bounds
    if low is not None and high is not None and (low > high).any():
        raise EnvFactsError(f"{where}: low {low.tolist()} is above high {high.tolist()} somewhere")
    return shape, low, high


def _action(v, where: str) -> dict:
    if isinstance(v, dict) and "n" in v:
        if set(v) != {"n"} or not (isinstance(v["n"], int) and not isinstance(v["n"], bool) and v["n"] > 0):
            raise EnvFactsError(f"{where}={v!r}: a discrete action space is {{'n': K}} with K > 0")
        return {"n_actions": v["n"]}
    shape, low, high = _box(v, where, need_bounds=True)
    return {"action_shape": shape, "action_low": low, "action_high": high}


def _actors(v, where: str) -> dict:
    if not isinstance(v, dict):
        raise EnvFactsError(f"{where}={v!r}: expected {{actor: {{'deterministic': true, ...}}}}")
    out = {}
    for name, d in v.items():
        if not isinstance(d, dict) or sorted(set(d) - set(ACTOR_KEYS)):
            raise EnvFactsError(f"{where}[{name!r}]={d!r}: expected an object with keys among {list(ACTOR_KEYS)}")
        for k in ("deterministic", "scripted"):
            if k in d and not isinstance(d[k], bool):
                raise EnvFactsError(f"{where}[{name!r}][{k!r}]={d[k]!r}: expected true or false")
        if "policy" in d and not (isinstance(d["policy"], str) and ":" in d["policy"]):
            raise EnvFactsError(f"{where}[{name!r}]['policy']={d['policy']!r}: expected 'package.module:function'")
        out[str(name)] = dict(d)
    return out


def merge(base: EnvFacts | None, fields: dict, source: str, env_id) -> EnvFacts:
    """``base`` with ``fields`` laid over it, each marked as coming from ``source``."""
    if base is None:
        base = EnvFacts(env_id)
    named = {"max_steps": "max_episode_steps", "reward_range": "reward_range", "random_reset": "random_reset",
             "obs_shape": "observation", "n_actions": "action", "action_shape": "action", "actors": "actors",
             "env_id": "id"}
    sources = dict(base.sources)
    for k in fields:
        if k in named:
            sources[named[k]] = source
    if "actors" in fields:
        fields = {**fields, "actors": {**base.actors, **fields["actors"]}}
    if "n_actions" in fields:
        fields = {**fields, "action_shape": None, "action_low": None, "action_high": None}
    elif "action_shape" in fields:
        fields = {**fields, "n_actions": None}
    return replace(base, **fields, sources=sources)

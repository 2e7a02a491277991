"""The audit's checks, registered in one place: name -> function, the columns it needs, and what it
looks for. ``run_checks`` runs each check whose columns the store has and records, for the report,
which ran (with their evidence) and which were skipped and why.

A check is ``fn(ctx) -> (anomalies, evidence)``; it raises ``Skip(reason)`` when the store cannot
answer its question (no policy recorded, interleaved episodes, ...). A check of ``scope`` "run"
compares a run's shards instead: ``audit_run`` calls it as ``fn(per_shard, actor_names) ->
(anomalies, evidence)`` after auditing each shard; a store audit does not run or list it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from . import (_anomalies, _behaviour, _fit_checks, _fit_dynamics, _integrity, _neighbours, _shards, _tags,
               _telemetry_checks)
from ._context import Context, Skip

_anomalies.ANOMALY_CODES.update(_fit_checks.FIT_CODES)  # the fit checks keep their codes beside them


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable
    needs: tuple[str, ...]
    about: str
    on_empty: bool = False  # runs on a store without rows (to say so)
    scope: str = "store"  # "store": one store's Context; "run": a run's per-shard actor shares


def _composition(ctx: Context):
    s = ctx.sections
    return _anomalies.composition_anomalies(ctx.names, ctx.meta, ctx.expected, ctx.codes, s["whole"], s["table"]), {}


def _nonfinite_rewards(ctx: Context):
    return _anomalies.reward_anomalies(ctx.names, ctx.codes, ctx.cols["reward"]), {}


def _telemetry(ctx: Context):
    s = ctx.sections
    found = _telemetry_checks.telemetry_anomalies(ctx.names, ctx.meta, ctx.expected, s["steps_raw"], s["training"],
                                                  s["samples"], s["samples_raw"], s["bvb"])
    if [a.code for a in found] == ["NO_TELEMETRY"]:
        raise Skip("no training telemetry (train_steps / train_samples tables) in the store yet", found)
    return found, {}


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("composition", _composition, ("actor",),
          "actor shares against the vocabulary and the declared expert_ratio / expected fractions, over time",
          on_empty=True),
    Check("nonfinite_rewards", _nonfinite_rewards, ("reward",), "non-finite rewards per actor"),
    Check("telemetry", _telemetry, ("actor",),
          "training telemetry: non-finite loss/TD/Q, sampled rows and tags, TD balance, batch vs buffer",
          on_empty=True),
    Check("transition_chain", _integrity.transition_chain, ("state", "next_state", "episode", "done"),
          "next_state[t] == state[t+1] inside each episode, per actor"),
    Check("next_state_copy", _integrity.next_state_copy, ("state", "next_state"),
          "next_state stored as a copy of state, per actor"),
    Check("duplicate_rows", _integrity.duplicate_rows, ("state", "next_state"),
          "blocks of rows that repeat earlier rows exactly (appended twice)"),
    Check("episode_bookkeeping", _integrity.episode_bookkeeping, ("episode", "done"),
          "done where episodes end and nowhere else, episode ids not reused, steps counting up"),
    Check("bootstrap_flags", _integrity.bootstrap_flags, ("done", "next_state"),
          "truncated implies done; terminal next states flagged done, time-limit ends truncated"),
    Check("reward_currency", _behaviour.reward_currency, ("reward",),
          "each actor's reward sign and scale against the environment or the other actors, per segment"),
    Check("action_collapse", _behaviour.action_collapse, ("discrete_action",),
          "per-actor action histograms and entropy; one actor collapsing onto one action"),
    Check("state_statistics", _behaviour.state_statistics, ("state",),
          "per-actor mean and spread of each state element against the other actors"),
    Check("tag_policy", _tags.tag_policy, ("state",),
          "rows tagged with an actor whose policy is known take its action; other actors' rows do not all do so"),
    Check("tag_behaviour", _neighbours.tag_behaviour, ("state",),
          "rows tagged with a deterministic actor act like its other rows on nearby states; no other actor does"),
    Check("action_bounds", _fit_checks.action_bounds, ("actor",),
          "actions inside the environment's action space (discrete count, continuous bounds), per actor"),
    Check("reward_clipped", _fit_checks.reward_clipped, ("reward",),
          "an actor's rewards piled up exactly at its extreme value while the other actors' pass it"),
    Check("reward_lag", _fit_checks.reward_lag, ("state", "next_state", "reward"),
          "each actor's rewards fit its own row better than the previous row of its episode"),
    Check("action_fit", _fit_dynamics.action_fit, ("state", "next_state", "discrete_action"),
          "each actor's stored discrete actions explain its state changes under the other actors' dynamics"),
    Check("foreign_rows", _fit_dynamics.foreign_rows, ("state", "next_state", "reward"),
          "blocks of rows unlike any row elsewhere in the run (another environment's rows)"),
    Check("shard_composition", _shards.shard_composition, ("actor",),
          "a shard whose actor shares stand far, beyond chance, from the median shard's", scope="run"),
)}


def run_checks(ctx: Context, names=None) -> tuple[list, dict, dict]:
    """Run the registered store checks (or those ``names``): ``(anomalies, section, seconds)``."""
    anomalies, section, seconds = [], {}, {}
    store_checks = [c for c in CHECKS.values() if c.scope == "store"]
    for check in (store_checks if names is None else [CHECKS[n] for n in names]):
        entry = {"about": check.about, "needs": list(check.needs)}
        missing = [c for c in check.needs if not ctx.has(c)]
        t = time.perf_counter()
        if ctx.n == 0 and not check.on_empty:
            entry.update(status="skipped", reason="the store has no committed rows")
        elif missing:
            entry.update(status="skipped", reason=f"no {', '.join(missing)} column(s) in the store")
        else:
            try:
                found, evidence = check.fn(ctx)
            except Skip as e:
                entry.update(status="skipped", reason=str(e))
                anomalies += e.found
            else:
                entry.update(status="ran", findings=[a.code for a in found], evidence=evidence)
                anomalies += found
        seconds[check.name] = round(time.perf_counter() - t, 4)
        section[check.name] = entry
    return anomalies, section, seconds

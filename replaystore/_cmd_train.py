"""``replaystore train --env CartPole-v1 --steps N --expert-ratio 0.26 --out runs/demo.h5 [--resume] [--seed S]
[--expert MODULE:NAME] [--frames-once]``.

The flags below set the usual fields of ``agent.AgentConfig``; ``--set FIELD=VALUE`` (VALUE as
JSON, repeatable) sets any other field, so the config dataclass stays the one place they live.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from replaystore.agent import AgentConfig

    d = AgentConfig()  # the defaults shown are the config's own, not copies that could drift
    p.add_argument("--env", default=None,
                   help="gymnasium id: CartPole-v1 or HybridCartPole-v1 (default: CartPole-v1 for a new store; "
                        "with --resume, the env the store was recorded on)")
    p.add_argument("--steps", type=int, default=None, help=f"environment frames the store should hold at the end (default: {d.total_steps}; "
                        "with --resume, the store's recorded setting)")
    p.add_argument("--expert-ratio", type=float, default=None, help=f"probability the expert decides a frame (default: {d.expert_ratio}; with --resume, the "
                        "store's)")
    p.add_argument("--expert", default=None, metavar="MODULE:NAME",
                   help=f"the expert's factory, called with the env's spec (default: {d.expert}; with --resume, "
                        "the store's)")
    p.add_argument("--frames-once", action="store_true", default=None,
                   help="store each frame of stacked image observations once (gymnasium FrameStackObservation "
                        "stacks on the first axis; about 8x less disk for Atari-style frames), not whole stacks "
                        "(default: off; with --resume, the store's)")
    p.add_argument("--out", required=True, help="the store to write (.h5)")
    p.add_argument("--resume", action="store_true", help="continue the store at --out from its latest checkpoint")
    p.add_argument("--seed", type=int, default=None, help=f"seed of env, mixing, network and sampler (default: {d.seed}; with --resume, the store's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other AgentConfig field, VALUE as JSON (e.g. --set batch_size=128)")
    p.add_argument("--eval-episodes", type=int, default=10, help="greedy-DQN evaluation episodes at the end (0: none)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: beside the store)")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="TensorBoard event files of the live telemetry (default: beside the store, <store>.tb/)")
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard files")
    p.add_argument("--quiet", action="store_true",
                   help="no progress and no [BATCH]/[BUFFER] lines (progress is a bar on a terminal, "
                        "a line every 10%% otherwise)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--workers", type=int, default=None,
                   help="N acting processes, each writing its own shard of a run folder at --out, one learner")
    p.add_argument("--engine", choices=["ray", "mp"], default="mp", help="how --workers run")


def build_config(args):
    """An ``AgentConfig`` from the parsed flags (on resume, the store's recorded config is the base)."""
    from replaystore.agent import AgentConfig
    from replaystore.agent.errors import ConfigError

    base = {}
    if args.resume:
        from replaystore.store import ReplayStore

        with ReplayStore.open(args.out, "r") as s:
            base = dict(s.metadata.get("config", {}))
    changes = {"env_id": args.env or base.get("env_id", "CartPole-v1")}
    for flag, field in (("steps", "total_steps"), ("expert_ratio", "expert_ratio"), ("seed", "seed"),
                        ("expert", "expert"), ("frames_once", "frames_once")):
        v = getattr(args, flag)
        if v is not None:
            changes[field] = v
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set batch_size=128")
        try:
            changes[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            changes[key.strip()] = value  # a bare string such as --set sampler_strategy=stratified
    merged = {**base, **changes}
    if args.resume and not args.env and ":" in str(base.get("env_id", "")):
        # gymnasium imports the module of a "module:Env" id
        raise ConfigError(f"--resume: {args.out} was trained on {base['env_id']!r}, an id that imports a module; a "
                          f"store's metadata never names code to run, so pass --env {base['env_id']} to resume")
    recorded = base.get("expert", AgentConfig.expert)
    if args.resume and "expert" not in changes and recorded != AgentConfig.expert:
        # a store is data: what its metadata names is not imported unless the user names it too
        raise ConfigError(f"--resume: {args.out} was trained with the expert {recorded!r}; a store's metadata never "
                          f"names code to run, so pass --expert {recorded} to resume with it")
    if args.resume and base and base.get("env_id") != changes["env_id"]:
        raise ConfigError(f"--resume: {args.out} was trained on {base.get('env_id')!r}; pass --env {base.get('env_id')}")
    return AgentConfig.from_dict(merged)


def tensorboard_dir(args: argparse.Namespace) -> str | None:
    """``--tensorboard DIR``, else ``<store without .h5>.tb`` beside the store; None with --no-tensorboard.

    An explicit ``--tensorboard DIR`` without the ``[tensorboard]`` extra is refused (exit 2); the
    default is skipped with one line on stderr saying which extra would write it.
    """
    from replaystore.common.extras import has_extra, require_extra

    if getattr(args, "no_tensorboard", False):
        return None
    if getattr(args, "tensorboard", None):
        require_extra("tensorboard", "replaystore train --tensorboard")
        return args.tensorboard
    if not has_extra("tensorboard"):
        print("note: no TensorBoard files: the [tensorboard] extra is not installed (pip install "
              "'replaystore[tensorboard]'); --no-tensorboard silences this note", file=sys.stderr)
        return None
    return os.path.splitext(args.out)[0] + ".tb"


class _LogToStderr(logging.Handler):
    """Agent log lines to stderr, above the progress bar when there is one."""

    def emit(self, record):
        from replaystore.common.progress import write

        write(self.format(record))


def run(args: argparse.Namespace) -> int:
    from replaystore.common.extras import require_extra

    require_extra("agent", "replaystore train")  # before anything is created (MissingExtraError: exit 2)
    if args.workers and args.engine == "ray":
        require_extra("ray", "replaystore train --engine ray")
    from replaystore.agent import train
    from replaystore.agent.errors import AgentError
    from replaystore.store.errors import StoreError

    log = logging.getLogger("replaystore.agent")
    if not args.quiet and not log.handlers:
        log.addHandler(_LogToStderr())
        log.setLevel(logging.INFO)
    try:
        tb = tensorboard_dir(args)
        config = build_config(args)
        if args.workers:  # distributed acting: agent/_distributed.py
            from replaystore.agent import train_distributed

            if args.resume:
                raise ValueError("--resume with --workers: a run's workers resume their shards by themselves "
                                 "after a crash; start a new run folder to train again")

            summary = train_distributed(config, args.out, workers=args.workers, engine=args.engine,
                                        progress=not args.quiet, eval_episodes=args.eval_episodes)
            print(json.dumps(summary, indent=2) if args.json else _distributed_lines(summary))
            return 0
        summary = train(config, args.out, resume=args.resume, progress=not args.quiet,
                        checkpoint_dir=args.checkpoint_dir, eval_episodes=args.eval_episodes, tensorboard=tb)
    except (AgentError, StoreError, OSError, TypeError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        comp = summary["composition"]
        print(f"wrote {summary['store']}: {summary['frames']} frames, {summary['train_steps']} training steps, "
              f"{summary['episodes']} episodes in {summary['elapsed_s']:.0f} s")
        print("  composition: " + ", ".join(f"{n} {c} ({comp['fractions'][n]:.1%})" for n, c in comp['counts'].items())
              + f"; declared expert_ratio {summary['expert_ratio']}")
        print(f"  checkpoint: {summary['checkpoint']}")
        if tb:
            print(f"  tensorboard: {tb} (view it with: tensorboard --logdir {tb})")
        if "eval_greedy_mean" in summary:
            print(f"  greedy DQN alone over {len(summary['eval_greedy_returns'])} episodes: "
                  f"mean return {summary['eval_greedy_mean']:.1f} (random policy "
                  f"{summary['eval_random_mean']:.1f}"
                  + (f", expert {summary['eval_expert_mean']:.1f})" if "eval_expert_mean" in summary else ")"))
    return 0


def _distributed_lines(s: dict) -> str:
    comp = s["composition"]
    lines = [f"wrote run {s['run']}: {s['frames']} frames from {s['workers']} workers ({s['engine']}), "
             f"{s['train_steps']} training steps in {s['elapsed_s']:.0f} s ({s['frames_per_s']:.0f} frames/s)",
             "  composition: " + ", ".join(f"{n} {c} ({comp['fractions'][n]:.1%})" for n, c in comp["counts"].items())]
    for w, r in zip(s["worker_metrics"], s["restarts"]):
        lines.append(f"  {w['worker']}: {w['frames']} frames, {w['episodes']} episodes, {w['frames_per_s']:.0f} "
                     f"frames/s, expert {w['expert_fraction']:.1%}, restarts {r}, weights v{w['weights_version']}")
    if "eval_greedy_mean" in s:
        lines.append(f"  greedy DQN alone: mean return {s['eval_greedy_mean']:.1f}")
    return "\n".join(lines)

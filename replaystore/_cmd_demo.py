"""``replaystore demo``: the README's main job. Train a demo run, write its store, audit it.

Everything goes to ``--out`` (default ``runs/demo``): ``run.h5`` (the store), ``run.ckpt/``
(checkpoints), ``run.tb/`` (TensorBoard scalars) and ``audit/`` (report.json, report.md, plots). A second demo replaces the first
one's files in that folder; a folder that holds anything else is refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

MARKER = ".replaystore-demo"


def add_arguments(p) -> None:
    p.add_argument("--out", default=os.path.join("runs", "demo"), help="folder for the run")
    p.add_argument("--env", default="CartPole-v1", help="CartPole-v1 or HybridCartPole-v1 (continuous head too)")
    p.add_argument("--steps", type=int, default=None, help="environment frames (default: the agent's demo setting)")
    p.add_argument("--expert-ratio", type=float, default=0.26, help="probability the expert decides a frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=10, help="greedy-DQN evaluation episodes")
    p.add_argument("--quiet", action="store_true", help="no progress bars or [BATCH]/[BUFFER] lines")


def _prepare(out: str) -> None:
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MARKER)):
        raise FileExistsError(f"{out} exists and was not made by `replaystore demo`; pass --out to another folder")
    from replaystore.store import store_files

    for p in [*store_files(os.path.join(out, "run.h5")), *(os.path.join(out, n) for n in ("run.ckpt", "run.tb", "audit"))]:
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, MARKER), "w").close()


def run(args) -> int:
    from . import _cmd_audit, _cmd_train

    try:
        _prepare(args.out)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = os.path.join(args.out, "run.h5")
    print(f"== training: {args.env}, expert ratio {args.expert_ratio}, store {store}", flush=True)
    # through the commands' own parsers, so every option they add later gets its default here too
    train_argv = ["--env", args.env, "--expert-ratio", str(args.expert_ratio), "--out", store, "--seed", str(args.seed),
                  "--eval-episodes", str(args.eval_episodes), "--checkpoint-dir", os.path.join(args.out, "run.ckpt"),
                  "--tensorboard", os.path.join(args.out, "run.tb")]
    train_argv += (["--steps", str(args.steps)] if args.steps is not None else []) + (["--quiet"] if args.quiet else [])
    rc = _cmd_train.run(_parse(_cmd_train, train_argv))
    if rc:
        return rc
    print(f"\n== audit of {store}", flush=True)
    rc = _cmd_audit.run(_parse(_cmd_audit, [store, "--out", os.path.join(args.out, "audit"), "--fail-on", "error"]))
    exe = os.path.join(os.path.relpath(os.path.dirname(sys.executable)), "replaystore")
    print(f"\nstore: {store}   inspect it with: {exe} info {store}")
    return rc


def _parse(module, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"replaystore {module.__name__.rsplit('_', 1)[-1]}")
    module.add_arguments(p)
    return p.parse_args(argv)

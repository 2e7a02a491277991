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
    for name in ("run.h5", "run.h5.commit", "run.ckpt", "run.tb", "audit"):
        p = os.path.join(out, name)
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
    train_args = argparse.Namespace(
        env=args.env, steps=args.steps, expert_ratio=args.expert_ratio, out=store, resume=False, seed=args.seed,
        set=[], eval_episodes=args.eval_episodes, checkpoint_dir=os.path.join(args.out, "run.ckpt"),
        quiet=args.quiet, json=False, tensorboard=os.path.join(args.out, "run.tb"), no_tensorboard=False)
    rc = _cmd_train.run(train_args)
    if rc:
        return rc
    print(f"\n== audit of {store}", flush=True)
    audit_args = argparse.Namespace(
        path=store, out=os.path.join(args.out, "audit"), fail_on="error", bucket_rows=None, no_plots=False,
        expect=None, expert_fraction=None, json=False)
    rc = _cmd_audit.run(audit_args)
    exe = os.path.join(os.path.relpath(os.path.dirname(sys.executable)), "replaystore")
    print(f"\nstore: {store}   inspect it with: {exe} info {store}")
    return rc

"""``replaystore demo``: the README's main job. Train a demo run, write its store, audit it.

Everything goes to ``--out`` (default ``runs/demo``): ``run.h5`` (the store), ``run.ckpt/``
(checkpoints), ``run.tb/`` (TensorBoard scalars, with the ``[tensorboard]`` extra) and ``audit/``
(report.json, report.md, plots). A folder that already holds something is left alone unless
``--overwrite`` is given, and even then only a folder an earlier demo made is replaced.

The same ``--seed`` gives the same store, bit for bit on CPU (the agent seeds the environment,
the mixing, the network and the sampler, commits by row count only, and the demo turns on
torch's deterministic algorithms); only wall-clock fields differ (see ``tests/cli/test_cli_demo.py``).
The ``[BATCH]``/``[BUFFER]`` lines are summarised (about ten of each over the run); ``--verbose``
prints every one.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from types import ModuleType

MARKER = ".replaystore-demo"
SHOWN_LINES = 10  # [BATCH] and [BUFFER] lines each, spread over the run, unless --verbose


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=os.path.join("runs", "demo"), help="folder for the run")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier demo in --out (a folder a demo did not make is never touched)")
    p.add_argument("--env", default="CartPole-v1", help="CartPole-v1 or HybridCartPole-v1 (continuous head too)")
    p.add_argument("--steps", type=int, default=None, help="environment frames (default: the agent's demo setting)")
    p.add_argument("--expert-ratio", type=float, default=0.26, help="probability the expert decides a frame")
    p.add_argument("--seed", type=int, default=0, help="one seed for everything: the same seed gives the same store")
    p.add_argument("--eval-episodes", type=int, default=10, help="greedy-DQN evaluation episodes")
    p.add_argument("--verbose", action="store_true", help="print every [BATCH]/[BUFFER] line, not a summary")
    p.add_argument("--quiet", action="store_true", help="no progress bars or [BATCH]/[BUFFER] lines")


def _prepare(out: str, overwrite: bool) -> None:
    """Refuse a folder that holds anything unless ``overwrite`` and an earlier demo made it; then
    remove that demo's files. Raises ``FileExistsError`` before touching anything."""
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise FileExistsError(f"{out} exists and was not made by `replaystore demo`; pass --out NEW_FOLDER")
        if not overwrite:
            raise FileExistsError(f"{out} holds an earlier demo run; pass --overwrite to replace it, "
                                  "or --out NEW_FOLDER to keep it")
    elif os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"{out} is a file, not a folder; pass --out NEW_FOLDER")
    from replaystore.store import file_layer, store_files

    for p in [*store_files(os.path.join(out, "run.h5")), *(os.path.join(out, n) for n in ("run.ckpt", "run.tb", "audit"))]:
        if os.path.isdir(p) and not os.path.islink(p):
            file_layer().rmtree(p)
        else:
            file_layer().remove(p)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, MARKER), "w").close()


class _Summary(logging.Filter):
    """Lets through the first and then every ``k``-th ``[BATCH]`` and ``[BUFFER]`` line (``SHOWN_LINES`` of each
    over the run, the line format untouched) and counts what it held back."""

    def __init__(self, every: dict[str, int]) -> None:
        super().__init__()
        self.every = every
        self.seen = dict.fromkeys(every, 0)
        self.shown = dict.fromkeys(every, 0)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        kind = next((k for k in self.every if msg.startswith(k)), None)
        if kind is None:
            return True
        self.seen[kind] += 1
        if (self.seen[kind] - 1) % self.every[kind]:  # the first line, then every k-th
            return False
        self.shown[kind] += 1
        return True

    def line(self) -> str:
        parts = [f"{self.shown[k]} of {self.seen[k]} {k}" for k in self.every if self.seen[k]]
        return f"(log lines shown: {', '.join(parts)}; --verbose prints them all)" if parts else ""


def _summary_filter(steps: int | None) -> _Summary:
    from replaystore.agent import AgentConfig

    c = AgentConfig() if steps is None else AgentConfig(total_steps=steps)
    train_steps = max(0, c.total_steps - c.learning_starts) // c.train_every
    every = {}
    for kind, cadence in (("[BATCH]", c.log_batch_every), ("[BUFFER]", c.log_buffer_every)):
        lines = train_steps // cadence if cadence else 0
        every[kind] = max(1, math.ceil(lines / SHOWN_LINES))
    return _Summary(every)


def run(args: argparse.Namespace) -> int:
    from replaystore.common.extras import require_extra

    require_extra("agent", "replaystore demo")  # before the folder is made (MissingExtraError: exit 2)
    from . import _cmd_audit, _cmd_train

    try:
        _prepare(args.out, args.overwrite)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = os.path.join(args.out, "run.h5")
    print(f"== training: {args.env}, expert ratio {args.expert_ratio}, seed {args.seed}, store {store}", flush=True)
    # through the commands' own parsers, so every option they add later gets its default here too
    train_argv = ["--env", args.env, "--expert-ratio", str(args.expert_ratio), "--out", store, "--seed", str(args.seed),
                  "--eval-episodes", str(args.eval_episodes), "--checkpoint-dir", os.path.join(args.out, "run.ckpt")]
    from replaystore.common.extras import has_extra

    if has_extra("tensorboard"):
        train_argv += ["--tensorboard", os.path.join(args.out, "run.tb")]
    else:
        train_argv += ["--no-tensorboard"]
    train_argv += (["--steps", str(args.steps)] if args.steps is not None else []) + (["--quiet"] if args.quiet else [])
    log = logging.getLogger("replaystore.agent")
    summary = None if args.verbose or args.quiet else _summary_filter(args.steps)
    if summary is not None:
        log.addFilter(summary)
    try:
        rc = _deterministic(lambda: _cmd_train.run(_parse(_cmd_train, train_argv)))
    finally:
        if summary is not None:
            log.removeFilter(summary)
    if summary is not None and summary.line():
        print(summary.line(), file=sys.stderr)
    if rc:
        return rc
    print(f"\n== audit of {store}", flush=True)
    rc = _cmd_audit.run(_parse(_cmd_audit, [store, "--out", os.path.join(args.out, "audit"), "--fail-on", "error"]))
    exe = os.path.join(os.path.relpath(os.path.dirname(sys.executable)), "replaystore")
    print(f"\nstore: {store}   inspect it with: {exe} info {store}")
    return rc


def _deterministic(fn):
    """Run ``fn`` with torch's deterministic algorithms on, restoring the caller's setting after."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return fn()
    finally:
        torch.use_deterministic_algorithms(before)


def _parse(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"replaystore {module.__name__.rsplit('_', 1)[-1]}")
    module.add_arguments(p)
    return p.parse_args(argv)

"""``replaystore`` command line: a thin face over store, agent and analysis.

Each subcommand lives in its own module, imported only when it runs, with two functions:
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "info": ("replaystore._cmd_info", "summary of a store: rows, actors, columns, size, writer state"),
    "train": ("replaystore._cmd_train", "train the hybrid DQN with an expert mixed in, writing a store"),
    "audit": ("replaystore._cmd_audit", "forensic audit of a store: report.json, report, plots"),
    "compare": ("replaystore._cmd_compare", "compare a store's audit against a baseline report"),
    "demo": ("replaystore._cmd_demo", "the README's main job: train a demo run, then audit it"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="replaystore", description="A replay buffer as a persistent, auditable record.")
    p.add_argument("--version", action="version", version=f"replaystore {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # not built yet
        sp = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

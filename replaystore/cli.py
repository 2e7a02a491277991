"""``replaystore`` command line: a thin face over store, agent and analysis.

Each subcommand lives in its own module with two functions, ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the command being run is imported, so ``info`` does not
pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": ("replaystore._cmd_demo", "the main job: train a demo run, write its store, audit it"),
    "info": ("replaystore._cmd_info", "summary of a store: rows, actors, columns, size, writer state"),
    "train": ("replaystore._cmd_train", "train the hybrid DQN with an expert mixed in, writing a store"),
    "audit": ("replaystore._cmd_audit", "forensic audit of a store: report.json, report, plots"),
    "compare": ("replaystore._cmd_compare", "compare a store's audit against a baseline report"),
    "verify": ("replaystore._cmd_verify", "re-read every committed row of a store and check its checksums"),
    "convert": ("replaystore._cmd_convert", "write a format-2 copy of a store (format 1 opens read-only)"),
    "compact": ("replaystore._cmd_compact", "rewrite a store's segments older than its window compressed"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="replaystore", description="A replay buffer as a persistent, auditable record.")
    p.add_argument("--version", action="version", version=f"replaystore {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(sp)
            sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``replaystore`` command line: a thin face over store, agent and analysis.

Each subcommand lives in its own module with two functions, ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the command being run is imported, so ``info`` does not
pay for importing torch. Conventions every command keeps: ``--help`` shows defaults and the exit
status (0 ok, 1 findings or regression, 2 usage error or unreadable input); ``--json`` prints one
JSON document to stdout and nothing else there; progress and logs go to stderr.
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
    "tensorboard": ("replaystore._cmd_tensorboard", "write a recorded store's telemetry as TensorBoard scalars"),
    "watch": ("replaystore._cmd_watch", "follow a store being written: composition, rates, anomalies"),
    "verify": ("replaystore._cmd_verify", "re-read every committed row of a store and check its checksums"),
    "convert": ("replaystore._cmd_convert", "write a format-2 copy of a store (format 1 opens read-only)"),
    "compact": ("replaystore._cmd_compact", "rewrite a store's segments older than its window compressed"),
    "export": ("replaystore._cmd_export", "write a store's or run's committed rows as Parquet (local or fsspec URL)"),
    "serve": ("replaystore._cmd_serve", "serve a run over Arrow Flight: clients write their own shards, learners sample"),
}

EXIT_CODES = """exit status:
  0  ok
  1  findings or regression (audit --fail-on, compare, watch --fail-on)
  2  usage error or unreadable input (bad flag, missing or damaged file)
  130  interrupted (Ctrl-C; for watch, Ctrl-C is the normal end: 0)"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless it has none to show) and keeps the epilog's lines."""

    def _get_help_string(self, action):
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def choice(*values: str):
    """An argparse ``type`` accepting ``values`` in any case (``--fail-on ERROR`` = ``error``)."""

    def parse(text: str) -> str:
        low = text.lower()
        for v in values:
            if v.lower() == low:
                return v
        raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(values)}, any case)")

    parse.__name__ = "choice"
    return parse


def build_parser(command: str | None) -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="replaystore", description="A replay buffer as a persistent, auditable record.",
                                epilog=EXIT_CODES, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"replaystore {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EXIT_CODES, formatter_class=HelpFormatter)
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

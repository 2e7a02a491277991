"""``replaystore`` command line: a thin face over store, agent and analysis.

Each subcommand lives in its own module with two functions, ``add_arguments(parser)`` and
``run(args) -> int``; only the module of the command being run is imported, so ``info`` does not
pay for importing torch. Conventions every command keeps: ``--help`` shows defaults and the exit
status (0 ok, 1 findings or regression, 2 usage error or unreadable input); ``--json`` prints one
JSON document to stdout and nothing else there; progress and logs go to stderr; no traceback
reaches the user: a known error is one ``error: ...`` line (exit 2), a missing extra names the
extra to install (exit 2), an output pipe closed early (``| head -1``) ends quietly, and any
other error prints one line saying where its traceback was written (``--debug`` prints it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from replaystore.common.extras import MissingExtraError

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
    "notebook": ("replaystore._cmd_notebook", "run the forensic notebook on a store: a walk-through of your own run"),
}

EXIT_CODES = """exit status:
  0  ok
  1  findings or regression (audit --fail-on, compare, watch --fail-on)
  2  usage error, unreadable input or a missing extra (bad flag, missing or damaged file)
  3  unexpected error (one line says where its traceback went; --debug prints it)
  130  interrupted (Ctrl-C; for watch, Ctrl-C is the normal end: 0)
  141  the output pipe closed early (| head): the command stops quietly, as standard tools do"""

EXIT_UNEXPECTED = 3
EXIT_PIPE = 128 + 13  # the status of a process ended by SIGPIPE, what `yes | head` reports


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default once (unless it has none to show or its help already says
    it) and keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS) or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def choice(*values: str) -> Callable[[str], str]:
    """An argparse ``type`` accepting ``values`` in any case (``--fail-on ERROR`` = ``error``)."""

    def parse(text: str) -> str:
        low = text.lower()
        for v in values:
            if v.lower() == low:
                return v
        raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(values)}, any case)")

    parse.__name__ = "choice"
    return parse


DEBUG_HELP = "on an unexpected error, print the traceback instead of writing it to a file"


def build_parser(command: str | None) -> argparse.ArgumentParser:
    from replaystore.common import __version__

    p = argparse.ArgumentParser(prog="replaystore", description="A replay buffer as a persistent, auditable record.",
                                epilog=EXIT_CODES, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"replaystore {__version__}")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EXIT_CODES, formatter_class=HelpFormatter)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(sp)
            # SUPPRESS: a subcommand's own default must not undo `replaystore --debug CMD`
            sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
            sp.set_defaults(_run=mod.run)
    return p


class PipeClosed(BaseException):
    """stdout's reader went away (``| head``). A BaseException, like KeyboardInterrupt, so that the
    commands' ``except OSError`` around their work cannot turn it into an ``error:`` line."""


class _GuardedStdout:
    """``sys.stdout`` whose writes raise ``PipeClosed`` instead of ``BrokenPipeError``."""

    def __init__(self, raw: TextIO) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        try:
            return self._raw.write(text)
        except BrokenPipeError:
            raise PipeClosed from None

    def flush(self) -> None:
        try:
            self._raw.flush()
        except BrokenPipeError:
            raise PipeClosed from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _silence_stdout(raw: TextIO) -> None:
    """After a closed pipe: point stdout's descriptor at /dev/null, so the interpreter's own flush
    at exit does not print "Exception ignored ... BrokenPipeError" (the Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, raw.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to silence
        pass


def _report_unexpected(exc: BaseException, command: str | None) -> str:
    """Write ``exc``'s traceback to a file in the temp folder; return the one line to print."""
    where = os.path.join(tempfile.gettempdir(),
                         f"replaystore-{command or 'cli'}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    detail = "".join(traceback.format_exception(exc))
    try:
        with open(where, "w", encoding="utf-8") as f:
            f.write(f"replaystore {command or ''}: argv {sys.argv!r}\n{detail}")
        said = f"traceback in {where}"
    except OSError as e:
        said = f"its traceback could not be written ({e})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"error: unexpected {type(exc).__name__}{': ' + first if first else ''} ({said}; "
            f"rerun with --debug to print it)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``replaystore`` command; returns its exit status (see ``EXIT_CODES``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    debug = "--debug" in argv
    raw = sys.stdout
    sys.stdout = _GuardedStdout(raw)  # a TextIO in all but name
    try:
        args = build_parser(command if command in COMMANDS else None).parse_args(argv)
        rc = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return rc
    except PipeClosed:
        _silence_stdout(raw)
        return EXIT_PIPE
    except MissingExtraError as e:  # raised before the command created anything
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        else:
            print(_report_unexpected(e, command), file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        sys.stdout = raw


if __name__ == "__main__":
    sys.exit(main())

"""``replaystore.progress``: a tqdm bar on a terminal, plain lines every N% otherwise."""

from __future__ import annotations

import io

from replaystore.common.progress import PlainProgress, progress, write


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_one_line_per_step_and_no_carriage_return():
    """1000 updates print exactly one line per 10%, each with the count, and no bar."""
    err = io.StringIO()
    bar = progress(total=1000, desc="work", unit="row", file=err)
    assert isinstance(bar, PlainProgress)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = err.getvalue().splitlines()
    assert [f"work: {p}% ({p * 10}/1000 row)" for p in range(10, 101, 10)] == [x.rsplit(" ", 2)[0] for x in lines]
    assert "\r" not in err.getvalue()


def test_resumed_and_coarse_updates_and_disable():
    """A bar resumed at 45% prints from 50%; a jump over several steps prints once; disable prints nothing."""
    err = io.StringIO()
    bar = progress(total=100, initial=45, desc="r", file=err)
    bar.update(5)
    bar.update(40)
    bar.set_postfix(ret=3)
    bar.update(10)
    lines = err.getvalue().splitlines()
    assert ["r: 50% (50/100)", "r: 90% (90/100)", "r: 100% (100/100)"] == [x.split(")")[0] + ")" for x in lines]
    assert lines[2].endswith("ret=3") and not lines[1].endswith("ret=3")
    quiet = io.StringIO()
    for _ in progress(range(10), file=quiet, disable=True):
        pass
    assert "" == quiet.getvalue()


def test_on_a_terminal_it_is_tqdm_and_write_goes_above_it():
    """With a terminal as the file, progress() is a tqdm bar; write() prints a line."""
    from tqdm import tqdm

    term = _Terminal()
    bar = progress(total=3, desc="t", file=term)
    assert isinstance(bar, tqdm)
    bar.close()
    plain = io.StringIO()
    write("[BATCH] x", file=plain)
    assert "[BATCH] x\n" == plain.getvalue()

"""Progress for long work: a tqdm bar when stderr is a terminal, a plain line every 10% otherwise.

A redrawing bar in a log file is noise (86 KB of carriage returns for one training run), so when
stderr is not a terminal ``progress(...)`` prints ``desc: 30% (300/1000 frame) 12.3 s`` lines
instead, one per ``step_pct`` percent. Both kinds answer ``update``, ``set_postfix``, ``close``,
iteration and ``with``; ``write(msg)`` prints a log line without tearing a live bar.

>>> import io
>>> err = io.StringIO()
>>> for _ in progress(range(4), desc="demo", file=err, step_pct=50):
...     pass
>>> print(err.getvalue().replace("\\r", ""), end="")  # doctest: +ELLIPSIS
demo: 50% (2/4) ...
demo: 100% (4/4) ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["progress", "write", "is_terminal"]


def is_terminal(file: Any = None) -> bool:
    f = sys.stderr if file is None else file
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False


class PlainProgress:
    """The tqdm subset the project uses, printing one line per ``step_pct`` percent."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, disable: bool = False, file: IO[str] | None = None,
                 step_pct: float = 10.0) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]  # hasattr said it has one
        self.total, self.n, self.desc, self.unit = total, int(initial), desc, unit
        self.disable, self.file, self.step = disable, file, float(step_pct)
        self._t0 = time.monotonic()
        self._postfix = ""
        self._next = self._threshold_after(self.n)

    def _threshold_after(self, n: int) -> float:
        if not self.total:
            return float("inf")
        done_pct = 100.0 * n / self.total
        return (int(done_pct // self.step) + 1) * self.step

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or not self.total:
            return
        pct = 100.0 * self.n / self.total
        if pct + 1e-9 >= self._next:
            shown = min(100, int(pct // self.step * self.step))
            unit = f" {self.unit}" if self.unit != "it" else ""
            post = f" {self._postfix}" if self._postfix else ""
            print(f"{self.desc}: {shown}% ({self.n}/{self.total}{unit}) {time.monotonic() - self._t0:.1f} s{post}",
                  file=self.file or sys.stderr, flush=True)
            self._next = self._threshold_after(self.n)

    def set_postfix(self, refresh: bool = False, **kw: Any) -> None:
        self._postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def set_postfix_str(self, s: str = "", refresh: bool = False) -> None:
        self._postfix = s

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        for x in self.iterable or ():
            yield x
            self.update(1)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, leave: bool = True, file: IO[str] | None = None,
             step_pct: float = 10.0, **tqdm_kw: Any) -> Any:
    """A progress bar over ``iterable`` (or ``total`` steps): tqdm on a terminal, plain lines otherwise."""
    out = sys.stderr if file is None else file
    if is_terminal(out):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    file=out, **tqdm_kw)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=out,
                         step_pct=step_pct)


def write(msg: str, file: IO[str] | None = None) -> None:
    """Print a log line to stderr; above a live tqdm bar when there is one."""
    out = sys.stderr if file is None else file
    if is_terminal(out):
        from tqdm import tqdm

        tqdm.write(msg, file=out)
    else:
        print(msg, file=out, flush=True)

"""``SampleToInsertRatio``: keeps a learner and its actors near a ratio of sampled to inserted rows.

In the spirit of Reverb's rate limiter of the same name (reverb/rate_limiters.py): until the
served run holds ``min_size_to_sample`` rows, sampling waits and inserting is free; afterwards
the error ``inserted * samples_per_insert - sampled`` (rows counted since the server started)
must stay within ``[min_diff, max_diff]``: an insert waits while the error is above
``max_diff`` (actors ahead of the learner), a sample while it is below ``min_diff`` (a learner
ahead of its actors). Two differences from Reverb, both because our calls move whole batches:
the bound is checked before a batch, so one batch may overshoot it by its own size (a batch
larger than the buffer would otherwise wait for ever); and the rows already in the store when
the server starts count towards ``min_size_to_sample`` but not towards the ratio, so a restarted
server does not hand a learner a burst of samples owed to rows inserted before the restart.
"""

from __future__ import annotations

import threading
import time

from .errors import RateLimitTimeout, ServerConfigError


class SampleToInsertRatio:
    """Rows sampled per row inserted, within an error buffer (see the module docstring).

    >>> r = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=4, error_buffer=8)
    >>> r.can_sample(rows_now=0), r.can_insert()
    (False, True)
    >>> r.inserted(4); r.can_sample(rows_now=4)
    True
    """

    def __init__(self, samples_per_insert: float, min_size_to_sample: int = 1, error_buffer: float | None = None):
        spi = float(samples_per_insert)
        if not spi > 0:
            raise ServerConfigError(f"samples_per_insert={samples_per_insert!r}: expected a positive number "
                                    "(rows sampled per row inserted, e.g. 8.0)")
        if isinstance(min_size_to_sample, bool) or int(min_size_to_sample) != min_size_to_sample or min_size_to_sample < 1:
            raise ServerConfigError(f"min_size_to_sample={min_size_to_sample!r}: expected a positive number of rows")
        buf = max(1.0, spi) * 2 if error_buffer is None else float(error_buffer)
        if not buf >= max(1.0, spi):  # Reverb's floor: smaller buffers can block both sides at once
            raise ServerConfigError(f"error_buffer={error_buffer!r}: expected >= max(1, samples_per_insert) = "
                                    f"{max(1.0, spi)}, or both sides may wait for each other")
        self.samples_per_insert = spi
        self.min_size_to_sample = int(min_size_to_sample)
        self.min_diff, self.max_diff = -buf, buf
        self._inserts = 0
        self._samples = 0
        self._cond = threading.Condition()

    # the error after stage 1: positive = inserts ahead of samples
    def _error(self) -> float:
        return self._inserts * self.samples_per_insert - self._samples

    def can_insert(self) -> bool:
        with self._cond:
            return self._error() <= self.max_diff

    def can_sample(self, rows_now: int) -> bool:
        with self._cond:
            return rows_now >= self.min_size_to_sample and self._error() >= self.min_diff

    def inserted(self, rows: int) -> None:
        with self._cond:
            self._inserts += int(rows)
            self._cond.notify_all()

    def sampled(self, rows: int) -> None:
        with self._cond:
            self._samples += int(rows)
            self._cond.notify_all()

    def wait_insert(self, cancelled=lambda: False) -> bool:
        """Wait until an insert may go ahead; False when ``cancelled()`` turned true meanwhile."""
        with self._cond:
            while self._error() > self.max_diff:
                if cancelled():
                    return False
                self._cond.wait(0.5)
        return True

    def wait_sample(self, rows_now, timeout: float | None, cancelled=lambda: False) -> bool:
        """Wait until a sample may go ahead (``rows_now()``: rows in the served run now).

        Raises ``RateLimitTimeout`` after ``timeout`` seconds (None: no limit); False when cancelled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                n = rows_now()
                if n >= self.min_size_to_sample and self._error() >= self.min_diff:
                    return True
                if cancelled():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise RateLimitTimeout(
                        f"sample: the rate limiter held this batch for {timeout} s: the run has {n} rows "
                        f"(sampling starts at {self.min_size_to_sample}); {self._samples} rows sampled for "
                        f"{self._inserts} inserted since the server started, at {self.samples_per_insert} samples "
                        "per insert. Let the actors insert more, or pass a longer timeout")
                # rows_now may grow without an insert through this server (another writer): poll too
                self._cond.wait(0.2 if left is None else min(0.2, left))

    def state(self) -> dict:
        with self._cond:
            return {"samples_per_insert": self.samples_per_insert, "min_size_to_sample": self.min_size_to_sample,
                    "error_buffer": self.max_diff, "inserted": self._inserts, "sampled": self._samples,
                    "error": self._error()}

"""A shard writer process for the run tests.

Run as ``python shard_proc.py RUN NAME START STOP [--hold]``: opens shard NAME of the run with
``run.create_shard`` (so a rerun resumes it), appends ``writer_proc`` rows ``[START, STOP)``,
commits, prints ``committed N`` and, with ``--hold``, keeps the shard open until killed.
"""

from __future__ import annotations

import sys
import time

import writer_proc

from replaystore.store import Run


def main(argv: list[str]) -> int:
    path, name, start, stop = argv[0], argv[1], int(argv[2]), int(argv[3])
    run = Run.open(path)
    store = run.create_shard(name, commit_seconds=3600.0)
    store.extend(writer_proc.given(writer_proc.make_rows(start, stop)))
    print(f"committed {store.commit()}", flush=True)
    if "--hold" in argv:
        while True:
            time.sleep(1)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

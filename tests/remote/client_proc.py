"""Game clients for the crash test: ``python client_proc.py LOCATION OUT_DIR K [K ...]``.

One thread per client index K streams client K's deterministic rows (``remote_helpers.
client_block``) to its shard ``client-KK`` in blocks of varying size, asking for a commit every
second block, and appends each acknowledgement (rows of K's sequence the server confirmed
durable) to ``OUT_DIR/client-KK.acks`` as one line, flushed, before it sends more. A thread
ends when the server goes away (or at ``OUT_DIR/stop``).
"""

from __future__ import annotations

import os
import sys
import threading

from remote_helpers import client_block

from replaystore.remote import RemoteWriter


def stream(location: str, out: str, k: int) -> None:
    name = f"client-{k:02d}"
    sent = 0
    with open(os.path.join(out, name + ".acks"), "a") as log:
        try:
            w = RemoteWriter(location, name, in_flight=2)
            j = 0
            while not os.path.exists(os.path.join(out, "stop")):
                n = 16 + (k * 31 + j * 17) % 96
                w.extend(client_block(k, sent, n))
                sent += n
                if j % 2 == 1:
                    w.commit()
                    log.write(f"{w.acknowledged}\n")
                    log.flush()
                j += 1
        except Exception as e:  # the server was killed: the test decides what must have survived
            log.write(f"# ended: {type(e).__name__}\n")
            log.flush()


def main(location: str, out: str, *ks: str) -> int:
    threads = [threading.Thread(target=stream, args=(location, out, int(k))) for k in ks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

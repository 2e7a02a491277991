"""``serve``: start a ``ReplayServer`` with the safety rules of ``replaystore serve``.

Loopback unless told otherwise; any other address needs a token (a served run accepts writes,
so an open port on a network would let anyone append rows under any actor); TLS when a
certificate and key are given (both or neither).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import threading

import pyarrow as pa

from ._ratelimit import SampleToInsertRatio
from ._server import ReplayServer
from .errors import ServerConfigError

TOKEN_ENV = "REPLAYSTORE_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def location_for(host: str, port: int, tls: bool = False) -> str:
    """The Flight location of ``host:port`` (``grpc+tls://`` with TLS); IPv6 hosts in brackets."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"grpc+{'tls' if tls else 'tcp'}://{h}:{int(port)}"


def serve(path, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None, tls_cert: bytes | None = None,
          tls_key: bytes | None = None, rate_limiter: SampleToInsertRatio | None = None,
          shard_options: dict | None = None, ready=None) -> None:
    """Serve ``path`` until SIGTERM/SIGINT (or ``shutdown``); ``ready(server, location)`` is called
    once the port is bound (``port=0`` picks a free one: ``server.port``).

    BEWARE: the first signal waits for the calls in progress to end, streams included (each
    client's shard is committed and closed as its stream ends); a second signal exits at once.
    """
    if not is_loopback(host) and not token:
        raise ServerConfigError(
            f"host={host!r} is not a loopback address and no token was given: anyone who reaches the port "
            f"could write rows. Give a token (--token-file FILE or the {TOKEN_ENV} environment variable), "
            "or bind 127.0.0.1")
    if (tls_cert is None) != (tls_key is None):
        raise ServerConfigError("TLS needs both a certificate and its key (--tls-cert and --tls-key), got one")
    tls = (tls_cert, tls_key) if tls_cert is not None else None
    location = location_for(host, port, tls is not None)
    try:
        server = ReplayServer(path, location, token=token, tls=tls, rate_limiter=rate_limiter,
                              shard_options=shard_options)
    except pa.ArrowException as e:  # gRPC says only "did not start": the usual causes are these
        raise ServerConfigError(f"could not serve on {location} ({e}): the port may be in use (--port 0 picks a "
                                "free one), the host not an address of this machine, or the TLS files not a "
                                "PEM certificate and its key") from None
    stop, stopped = threading.Event(), threading.Event()

    def _shutdown():
        server.shutdown()  # waits for the calls in progress: each stream commits and closes its shard
        stopped.set()

    def _stop(signum, frame):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=_shutdown, daemon=True).start()
        else:
            # a second signal: an idle client stream would hold shutdown for ever. Exit now, as a
            # kill would: every acknowledged row is committed; rows not yet committed are lost
            os._exit(128 + signum)

    # The server already listens (pyarrow starts it in the constructor). Its serve() would block
    # in C++, where Python's signal handlers never run (and install Arrow's own): the main thread
    # waits here instead, in short waits that let the handlers above run.
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        if ready is not None:
            ready(server, location_for(host, server.port, tls is not None))
        if main:
            while not stopped.wait(0.5):
                pass
        else:
            server.wait()
    finally:
        server.close_sessions()
        for s, h in old.items():
            signal.signal(s, h)

"""Exceptions raised by :mod:`replaystore.remote` (beside the store's own, which a server sends
back by name and the Python client raises again as the same class).

Each class also inherits the built-in that fits, like the store's errors do.
"""

from __future__ import annotations

from ..store.errors import StoreError

__all__ = ["RemoteError", "ProtocolError", "AuthError", "ShardBusyError", "RateLimitTimeout",
           "ServerConfigError", "ConnectionLostError"]


class RemoteError(StoreError):
    """Base class of the errors of a served store that are not the store's own."""


class ProtocolError(RemoteError, ValueError):
    """A request does not follow the protocol (PROTOCOL.md): a bad descriptor, ticket, action
    body or Arrow type."""


class AuthError(RemoteError, PermissionError):
    """The server wants a token and the call had none, or another one."""


class ShardBusyError(RemoteError, BlockingIOError):
    """Another stream of the same client name is writing that client's shard right now."""


class RateLimitTimeout(RemoteError, TimeoutError):
    """The rate limiter held a sample longer than the call's timeout."""


class ServerConfigError(RemoteError, ValueError):
    """``serve`` was asked for something unsafe or inconsistent (no token off loopback, half a
    TLS pair, a path that is neither a run nor a store)."""


class ConnectionLostError(RemoteError, ConnectionError):
    """The server went away (killed, restarted, network) in the middle of a call."""

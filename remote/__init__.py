"""replaystore over the network: a run served over Arrow Flight (``replaystore serve``).

Public names: ``ReplayServer`` (the server), ``serve`` (what ``replaystore serve`` runs),
``RemoteWriter`` and ``RemoteSampler`` (Python clients with the writer's and the Sampler's
calling conventions), ``connect`` (a raw ``pyarrow.flight`` client with the token),
``SampleToInsertRatio`` (the rate limiter) and ``errors``. The protocol, for clients in any
language with an Arrow Flight library, is PROTOCOL.md at the repository's root.
"""

try:
    import pyarrow.flight  # noqa: F401
except ImportError as e:
    raise ImportError(f"replaystore.remote needs pyarrow with Arrow Flight ({e}); install it with "
                      "`pip install 'replaystore[remote]'`") from None

from . import errors
from ._client import RemoteSampler, RemoteWriter, connect
from ._protocol import PROTOCOL_VERSION
from ._ratelimit import SampleToInsertRatio
from ._serve import serve, location_for
from ._server import ReplayServer

__all__ = ["PROTOCOL_VERSION", "RemoteSampler", "RemoteWriter", "ReplayServer", "SampleToInsertRatio", "connect",
           "errors", "location_for", "serve"]

"""Checkpoints: state dicts and JSON-able meta in a ``torch.save`` file, read with ``weights_only=True``.

No pickled objects: the network is rebuilt from its spec (JSON) and gets its weights back;
the meta (step, frames, gamma, n_step, config, RNG state) is plain JSON data.
"""

from __future__ import annotations

import io
import json
import os

import torch

from replaystore.store import file_layer

from ._network import HybridDQN
from .errors import CheckpointError

UNCHANGED = "The file that was there before is unchanged: free space and save again"
FORMAT = "replaystore-agent-checkpoint"
VERSION = 1


def save_checkpoint(path, net: HybridDQN, target: HybridDQN | None, optimizer: torch.optim.Optimizer | None,
                    meta: dict) -> str:
    """Write atomically (``write_torch``) and return the absolute path."""
    path = os.path.abspath(os.fspath(path))
    for key in ("gamma", "n_step", "step", "config"):
        if key not in meta:
            raise CheckpointError(f"checkpoint meta lacks {key!r}; it needs gamma, n_step, step and config")
    try:
        meta_json = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint meta must be JSON-able (numbers, str, lists, dicts): {e}") from e
    payload = {
        "format": FORMAT, "version": VERSION, "spec": json.dumps(net.spec()), "meta": meta_json,
        "net": net.state_dict(),
        "target": target.state_dict() if target is not None else {},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "torch_rng": torch.get_rng_state(),
    }
    file_layer().makedirs(os.path.dirname(path))
    write_torch(path, payload, "agent checkpoint")
    return path


def write_torch(path: str, payload: dict, what: str) -> None:
    """``torch.save`` into memory, then the store's file layer writes the bytes (fresh temporary
    file named per process, fsync, rename, fsync of the folder): after a crash or a power cut the
    file holds the old payload or the new one, never half of one."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    file_layer().write_atomic(path, buf.getbuffer(), True, what, tmp=f"{path}.tmp{os.getpid()}",
                              then=UNCHANGED)


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict (tensors, state dicts) with ``spec`` and ``meta`` decoded from JSON."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} could not be read as an agent checkpoint: {e}") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a replaystore agent checkpoint (format {FORMAT!r} expected)")
    if d.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {d.get('version')!r}; this agent reads {VERSION}")
    d["spec"] = json.loads(d["spec"])
    d["meta"] = json.loads(d["meta"])
    return d


def load_network(path) -> tuple[HybridDQN, dict]:
    """``(net, meta)``: the online ``HybridDQN`` in eval mode and the checkpoint's meta.

    ``meta`` has at least ``gamma`` (float), ``n_step`` (int), ``step`` (training steps) and
    ``config`` (the ``AgentConfig`` as a dict).
    """
    d = read_checkpoint(path)
    net = HybridDQN.from_spec(d["spec"])
    net.load_state_dict(d["net"])
    net.eval()
    return net, d["meta"]

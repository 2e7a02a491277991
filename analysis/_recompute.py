"""TD errors and Q values of the replay window recomputed under a saved checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ._load import actor_categorical, open_store

TRUNCATED = "truncated"  # a time limit, not a terminal state: the return bootstraps through it


def _nstep(reward, episode, done, terminal, valid, gamma):
    """``[B, n]`` windows (column k = row r+k) to ``(G, last, discount)``: the return stops at the
    end of the row's episode (a done row, or the episode number changing) or at the last committed
    row, and bootstraps with ``gamma ** (last + 1)`` unless the last row used was terminal."""
    b, n = reward.shape
    ok = (episode == episode[:, :1]) & valid
    if n > 1:
        ok[:, 1:] &= np.cumprod(~done[:, :-1], axis=1).astype(bool)
    used = np.cumprod(ok, axis=1).astype(bool)
    g = (reward.astype(np.float64) * gamma ** np.arange(n) * used).sum(1)
    last = used.sum(1) - 1
    discount = np.where(terminal[np.arange(b), last], 0.0, gamma ** (last + 1.0))
    return g, last, discount


def _batch(net, s, rows, hi, n, gamma, has_trunc):
    """``(q, target)`` of ``rows`` under ``net``: n-step return plus the bootstrapped max Q."""
    import torch

    win = rows[:, None] + np.arange(n, dtype=np.int64)
    valid = win < hi
    flat = np.minimum(win, hi - 1).reshape(-1)
    g = {c: v.reshape(win.shape) for c, v in s.gather(flat, ["reward", "episode", "done"]).items()}
    done = g["done"].astype(bool)
    term = done & ~s.gather(flat, TRUNCATED)[TRUNCATED].reshape(win.shape).astype(bool) if has_trunc else done
    ret, last, discount = _nstep(g["reward"], g["episode"], done, term, valid, gamma)
    action = s.gather(rows, "discrete_action")["discrete_action"].astype(np.int64)
    q_all = net(torch.from_numpy(s.gather(rows, "state")["state"]))[0]
    if action.size and (action.min() < 0 or action.max() >= q_all.shape[1]):
        bad = int(action[(action < 0) | (action >= q_all.shape[1])][0])
        raise ValueError(f"row discrete_action {bad} is outside the checkpoint's {q_all.shape[1]} discrete "
                         "actions: checkpoint and store differ")
    q = q_all.gather(1, torch.from_numpy(action)[:, None])[:, 0].double().numpy()
    boot = net(torch.from_numpy(s.gather(rows + last, "next_state")["next_state"]))[0].max(1).values.double().numpy()
    return q, ret + discount * boot


def resolve_checkpoint(s, checkpoint) -> str:
    """A checkpoint path: ``checkpoint`` itself, or for an int the checkpoint recorded in the store at
    that training step (its ``relpath`` beside the store is used when the absolute path is gone, as
    after copying a run's folder elsewhere)."""
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, (int, np.integer)):
        return os.fspath(checkpoint)
    found = [c for c in s.checkpoints if c.get("step") == int(checkpoint)]
    if not found:
        raise ValueError(f"no checkpoint at training step {checkpoint} is recorded in {s.path}; recorded steps: "
                         f"{[c.get('step') for c in s.checkpoints]}. Pass a step from that list or a file path")
    c = found[-1]
    p = c["path"]
    if not os.path.exists(p) and c.get("relpath"):
        p = os.path.join(os.path.dirname(os.path.abspath(s.path)), c["relpath"])
    return p


def recompute_td(path, checkpoint, *, batch_size: int = 4096, progress: bool = True) -> pd.DataFrame:
    """One row per transition of the replay window: ``row``, ``actor`` (Categorical), ``actor_code``,
    ``episode``, ``step``, ``reward``, ``done``, ``q`` (Q of the stored discrete action),
    ``target`` and ``td_error`` (target - q), under the network saved in ``checkpoint`` (a file
    path, or the training step of a checkpoint recorded in the store).

    The target is the checkpoint's n-step return (``meta["gamma"]``, ``meta["n_step"]``) plus the
    discounted ``max_a Q(s', a)`` of the same network: a checkpoint's target network is not part
    of the ``agent.load_network`` contract, so this is the TD error of the online network against
    itself. The window is read in batches of ``batch_size`` rows from the mapped file (memory
    stays bounded on a 1M-row store), with a tqdm progress bar unless ``progress=False``.
    """
    from replaystore.common.extras import require_extra
    from replaystore.common.progress import progress as progress_bar

    require_extra("agent", "recompute_td()")  # torch rebuilds the network: say which extra, not "No module named"
    import torch

    from replaystore.agent import load_network  # analysis needs the agent only to rebuild a network

    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size}: expected a positive number of rows")
    with open_store(path) as s:
        checkpoint = resolve_checkpoint(s, checkpoint)
        net, meta = load_network(checkpoint)
        missing = [k for k in ("gamma", "n_step") if k not in meta]
        if missing:
            raise ValueError(f"checkpoint {checkpoint}: its meta lacks {missing}; load_network must return "
                             "meta with 'gamma' and 'n_step'")
        gamma, n = float(meta["gamma"]), int(meta["n_step"])
        if n < 1 or not 0 <= gamma <= 1:
            raise ValueError(f"checkpoint {checkpoint}: n_step={n}, gamma={gamma}; expected n_step >= 1, "
                             "0 <= gamma <= 1")
        lo, hi = s.window_start(), len(s)
        want = getattr(net, "state_shape", None)
        if want is not None and tuple(want) != s.schema["state"].shape:
            raise ValueError(f"checkpoint {checkpoint} takes states of shape {tuple(want)}, but the store's "
                             f"'state' column has shape {s.schema['state'].shape}: checkpoint and store differ")
        has_trunc = TRUNCATED in s.schema
        parts = []
        with torch.no_grad():
            for b0 in progress_bar(range(lo, hi, int(batch_size)), desc="recompute TD", unit="batch",
                                   disable=not progress):
                rows = np.arange(b0, min(hi, b0 + int(batch_size)), dtype=np.int64)
                parts.append((rows, *_batch(net, s, rows, hi, n, gamma, has_trunc)))
        names = s.actors.names
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        cols = s.read(["actor", "episode", "step", "reward", "done"], lo, hi)
    q = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    target = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    df = pd.DataFrame({
        "row": rows, "actor": actor_categorical(cols["actor"], names), "actor_code": cols["actor"],
        "episode": cols["episode"], "step": cols["step"], "reward": cols["reward"], "done": cols["done"],
        "q": q.astype(np.float32), "target": target.astype(np.float32), "td_error": (target - q).astype(np.float32),
    })
    df.attrs.update({"checkpoint": str(checkpoint), "checkpoint_step": meta.get("step"), "gamma": gamma,
                     "n_step": n, "window": [lo, hi]})
    return df

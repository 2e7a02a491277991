"""TD errors and Q values of the replay window recomputed under a saved checkpoint."""

from __future__ import annotations

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


def recompute_td(path, checkpoint, *, batch_size: int = 4096, progress: bool = True) -> pd.DataFrame:
    """One row per transition of the replay window: ``row``, ``actor`` (Categorical), ``actor_code``,
    ``episode``, ``step``, ``reward``, ``done``, ``q`` (Q of the stored discrete action),
    ``target`` and ``td_error`` (target - q), under the network saved in ``checkpoint``.

    The target is the checkpoint's n-step return (``meta["gamma"]``, ``meta["n_step"]``) plus the
    discounted ``max_a Q(s', a)`` of the same network: a checkpoint's target network is not part
    of the ``agent.load_network`` contract, so this is the TD error of the online network against
    itself. The window is read in batches of ``batch_size`` rows from the mapped file (memory
    stays bounded on a 1M-row store), with a tqdm progress bar unless ``progress=False``.
    """
    import torch
    from tqdm import tqdm

    from agent import load_network  # analysis needs the agent only to rebuild a network

    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size}: expected a positive number of rows")
    net, meta = load_network(checkpoint)
    missing = [k for k in ("gamma", "n_step") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint {checkpoint}: its meta lacks {missing}; load_network must return "
                         "meta with 'gamma' and 'n_step'")
    gamma, n = float(meta["gamma"]), int(meta["n_step"])
    if n < 1 or not 0 <= gamma <= 1:
        raise ValueError(f"checkpoint {checkpoint}: n_step={n}, gamma={gamma}; expected n_step >= 1, 0 <= gamma <= 1")
    with open_store(path) as s:
        lo, hi = s.window_start(), len(s)
        want = getattr(net, "state_shape", None)
        if want is not None and tuple(want) != s.schema["state"].shape:
            raise ValueError(f"checkpoint {checkpoint} takes states of shape {tuple(want)}, but the store's "
                             f"'state' column has shape {s.schema['state'].shape}: checkpoint and store differ")
        maps, mf = s.column_maps(), s.mapped_file
        has_trunc = TRUNCATED in s.schema
        parts = []
        offsets = np.arange(n, dtype=np.int64)
        starts = range(lo, hi, int(batch_size))
        with torch.no_grad():
            for b0 in tqdm(starts, desc="recompute TD", unit="batch", disable=not progress):
                rows = np.arange(b0, min(hi, b0 + int(batch_size)), dtype=np.int64)
                win = rows[:, None] + offsets
                valid = win < hi
                flat = np.minimum(win, hi - 1).reshape(-1)
                g = {c: maps[c].gather(mf, flat).reshape(win.shape) for c in ("reward", "episode", "done")}
                done = g["done"].astype(bool)
                term = done & ~maps[TRUNCATED].gather(mf, flat).reshape(win.shape).astype(bool) if has_trunc else done
                ret, last, discount = _nstep(g["reward"], g["episode"], done, term, valid, gamma)
                state = torch.from_numpy(maps["state"].gather(mf, rows))
                nxt = torch.from_numpy(maps["next_state"].gather(mf, rows + last))
                action = maps["discrete_action"].gather(mf, rows).astype(np.int64)
                q_all = net(state)[0]
                if action.size and (action.min() < 0 or action.max() >= q_all.shape[1]):
                    bad = int(action[(action < 0) | (action >= q_all.shape[1])][0])
                    raise ValueError(f"row discrete_action {bad} is outside the checkpoint's {q_all.shape[1]} "
                                     "discrete actions: checkpoint and store differ")
                q = q_all.gather(1, torch.from_numpy(action)[:, None])[:, 0].double().numpy()
                boot = net(nxt)[0].max(1).values.double().numpy()
                target = ret + discount * boot
                parts.append((rows, q, target))
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

"""``audit(path)``: the one entry point. A store gets ``_report.audit_store``; a run folder (or
``Run``) of shards gets ``_run_audit.audit_run``, which audits each shard with ``audit_store``.
Kept apart from both so that the imports run one way: ``_report`` <- ``_run_audit`` <- ``_audit``
<- ``_compare``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

from ._load import StoreSource
from ._report import AuditReport, audit_store
from ._run_audit import RunAuditReport, audit_run

if TYPE_CHECKING:
    from replaystore.store import ReplayStore, Run

EnvFactsArg = Mapping[str, Any] | str | os.PathLike[str] | None
Policies = Mapping[str, Callable[..., Any]] | None


@overload
def audit(path: ReplayStore, expected: Mapping[str, Any] | None = None, *, bucket_rows: int | None = None,
          progress: bool | str = False, env_facts: EnvFactsArg = None, policies: Policies = None,
          trust_policies: bool = False) -> AuditReport: ...


@overload
def audit(path: Run, expected: Mapping[str, Any] | None = None, *, bucket_rows: int | None = None,
          progress: bool | str = False, env_facts: EnvFactsArg = None, policies: Policies = None,
          trust_policies: bool = False) -> RunAuditReport: ...


@overload
def audit(path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None, *,
          bucket_rows: int | None = None, progress: bool | str = False, env_facts: EnvFactsArg = None,
          policies: Policies = None, trust_policies: bool = False) -> AuditReport | RunAuditReport: ...


def audit(path: StoreSource | Run, expected: Mapping[str, Any] | None = None, *, bucket_rows: int | None = None,
          progress: bool | str = False, env_facts: EnvFactsArg = None, policies: Policies = None,
          trust_policies: bool = False) -> AuditReport | RunAuditReport:
    """Audit the committed rows of the store at ``path`` (or an open ``ReplayStore``); a run
    folder (or ``Run``) gets a ``RunAuditReport`` over its shards.

    ``expected`` states what the run should look like, e.g. ``{"expert_fraction": (0.26, 0.02)}``
    (see ``analysis._anomalies.EXPECTED_KEYS``). ``bucket_rows`` sets the size of the row buckets
    of the over-time composition (default: a round number giving about 50 buckets).
    ``progress``: a tqdm bar over the stages (``"auto"``: only for stores of 100k rows or more).

    ``env_facts``: facts about the environment (a dict in the format of the metadata ``env`` block,
    ``analysis._envfacts.ENV_KEYS``, or the path of such a JSON file); they override the registry's
    and the store's own. ``policies``: ``{actor: fn}``, the policy each actor followed, called on a
    batch of states (``(n, *state_shape)`` -> actions ``(n,)`` or ``(n, k)``) or, if that fails,
    state by state; ``TAG_POLICY`` checks each actor's rows against it. ``trust_policies``: also
    import the policies the store's metadata names (``env.actors.<actor>.policy``); without it,
    code named by a store is never imported.

    The checks that ran, those skipped and why, and each one's evidence are in ``report.checks``
    (the registry is ``analysis._checks.CHECKS``).
    """
    from replaystore.store import Run

    kw = dict(bucket_rows=bucket_rows, progress=progress, env_facts=env_facts, policies=policies,
              trust_policies=trust_policies)
    if isinstance(path, Run) or (isinstance(path, (str, os.PathLike)) and Run.is_run(path)):
        return audit_run(path, expected, **kw)
    return audit_store(path, expected, **kw)

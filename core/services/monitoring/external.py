"""Windows aggregated outside Quorum (a Spark job on the team's cluster): the reference the job
needs, and the aggregates it sends instead of rows. Quorum never sees those rows; the windows
say so."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.auth import Principal
from core.db import Database
from core.errors import InvalidInput
from core.monitoring.profile import PREDICTION, SCORE, FeatureReference, ReferenceProfile
from core.monitoring.windows import WindowAggregate
from core.services import read_as, unit_of_work
from core.services.monitoring import rows
from core.services.monitoring.common import (
    LABELS,
    MAX_LISTED,
    PREDICTIONS,
    _as_datetime,
    _target,
    _target_for,
    known_environment,
)
from core.services.monitoring.ingest import (
    IngestResult,
    _finish,
    _new_batch,
    _refuse_repeat,
    _store_windows,
)
from core.services.versions import get_version

SOURCE = "spark"


def profile_fingerprint(profile: dict[str, Any]) -> str:
    """SHA-256 of the reference profile as the job received it (sorted-key JSON)."""
    return hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Reference:
    """What a job outside Quorum needs to aggregate exactly as ingest does."""

    model: str
    environment: str
    version: int
    window: str
    profile: dict[str, Any]
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "environment": self.environment,
            "version": self.version,
            "window": self.window,
            "profile": self.profile,
            "profile_sha256": self.fingerprint,
        }


def reference(db: Database, actor: Principal, model_name: str, env: str) -> Reference:
    """The live version's reference profile and window in `env`, for a job outside Quorum."""
    environment = known_environment(env)
    with read_as(db, actor) as session:
        target = _target(session, actor, model_name, environment, "read the reference of")
        profile = target.profile.to_dict()
        return Reference(
            target.model.name,
            environment,
            target.version.number,
            target.settings.window,
            profile,
            profile_fingerprint(profile),
        )


@dataclass(frozen=True)
class Aggregates:
    """Per-window aggregates computed outside Quorum for one version in one environment."""

    version: int
    profile_sha256: str
    windows: list[dict[str, Any]]
    kind: str = PREDICTIONS
    name: str = "spark job"


def ingest_aggregates(
    db: Database,
    actor: Principal,
    model_name: str,
    sent: Aggregates,
    *,
    env: str = "production",
    source: str = SOURCE,
) -> IngestResult:
    """Merge aggregates built outside Quorum into the windows, as one batch that can be voided."""
    if sent.kind not in (PREDICTIONS, LABELS):
        raise InvalidInput(f"kind '{sent.kind}' is not known; send 'predictions' or 'labels'.")
    digest = hashlib.sha256(
        json.dumps(
            {"kind": sent.kind, "version": sent.version, "windows": sent.windows},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    written: list[str] = []
    try:
        with unit_of_work(db, actor) as session:
            target = _target(session, actor, model_name, env, "send aggregates for")
            if sent.version != target.version.number:
                version = get_version(session, target.model, sent.version)
                target = _target_for(session, target.model, version, target.environment)
            profile = target.profile.to_dict()
            if sent.profile_sha256 != profile_fingerprint(profile):
                raise InvalidInput(
                    f"The aggregates were computed on another reference than {target.model.name} "
                    f"v{target.version.number}'s; nothing was stored. Fetch the reference again "
                    "(client.reference) and rerun the job."
                )
            windows = _windows(sent.windows, target.profile, target.settings.window)
            _refuse_repeat(session, target, sent.kind, digest)
            batch = _new_batch(session, actor, target, sent.kind, source, digest, sent.name)
            batch.external = True
            files = rows.store()
            payload = {day: agg.to_dict() for day, agg in windows.items()}
            written += rows.put_aggregates(session, files, batch, payload)
            _store_windows(session, target, windows, external=True)
            n_rows = sum(_rows_of(agg, sent.kind) for agg in windows.values())
            days = sorted(windows)
            span = (_as_datetime(days[0]), _as_datetime(days[-1])) if days else None
            note = "Aggregated outside Quorum; Quorum did not see these rows."
            return _finish(session, actor, target, batch, days, n_rows, span, source, [note])
    except BaseException:
        rows.delete_files(rows.store(), written)
        raise


def _rows_of(agg: WindowAggregate, kind: str) -> int:
    if kind == LABELS:
        return int(agg.labels.get("n", 0) or 0)
    return agg.n_rows


def _windows(
    sent: list[dict[str, Any]], profile: ReferenceProfile, window: str
) -> dict[date, WindowAggregate]:
    if not sent:
        raise InvalidInput("The request holds no windows; send at least one window's aggregates.")
    found: dict[date, WindowAggregate] = {}
    problems: list[str] = []
    for number, data in enumerate(sent, start=1):
        try:
            agg = WindowAggregate.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            problems.append(f"window {number} cannot be read ({error})")
            continue
        problems += _window_problems(agg, profile, window)
        if agg.window_start in found:
            problems.append(f"window {agg.window_start} is sent twice")
        found[agg.window_start] = agg
    if problems:
        more = f" and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InvalidInput(
            f"The aggregates do not match the reference ({len(problems)} problem(s)); nothing "
            f"was stored. Compute them with quorum's Spark function on the reference from "
            f"client.reference{more}.",
            details=problems[:MAX_LISTED],
        )
    return found


def _window_problems(agg: WindowAggregate, profile: ReferenceProfile, window: str) -> list[str]:
    start = agg.window_start
    problems = []
    if window == "W" and start.weekday() != 0 or window == "M" and start.day != 1:
        problems.append(f"window {start} does not start a {'week' if window == 'W' else 'month'}")
    if agg.n_rows < 0:
        problems.append(f"window {start} has a negative row count")
    references: dict[str, FeatureReference | None] = {
        **profile.features,
        PREDICTION: profile.prediction,
        SCORE: profile.score,
    }
    for name, column in agg.columns.items():
        ref = references.get(name)
        if ref is None:
            problems.append(f"window {start}: column '{name}' is not in the reference")
        elif column.counts and len(column.counts) != ref.n_bins:
            problems.append(
                f"window {start}: column '{name}' has {len(column.counts)} bins, the reference "
                f"{ref.n_bins}"
            )
    return problems

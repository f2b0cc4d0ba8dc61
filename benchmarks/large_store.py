"""Build a large Quorum store for the P5 scale benchmark, in bulk.

The store starts as the demo store (`quorum admin demo seed`: real versions registered through
`register_version`, reviews, deployments) plus one real ingest of the credit model's
production stream. On top of it come cloned history: teams, users with grants, models,
versions (JSON fields and evaluations copied from a real credit version, metrics varied),
decisions, comments, deployments, a keyed, hash-chained audit trail (`core.audit_format.keyed_hash`)
and inference rows with their per-window aggregates. Everything is inserted in big
batches (executemany, or COPY for inference rows on PostgreSQL), never row by row through
the ORM. Cloned versions share the real version's artifact key.

    .venv/bin/python benchmarks/large_store.py --out /tmp/quorum-large
    .venv/bin/python benchmarks/large_store.py --out /tmp/q --models 100 --versions 1000 \
        --users 50 --events 10000 --rows 200000
    .venv/bin/python benchmarks/large_store.py --out /tmp/q \
        --url postgresql+psycopg://postgres@127.0.0.1:5432/quorum_large
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, func, insert, select, text, update
from sqlmodel import col

from core import audit_anchor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The large store is a copy of the demo store under another path; development audit keys are
# per store path, so both share one explicit key or the copied events would not verify.
os.environ.setdefault("QUORUM_AUDIT_KEY", "large-store-benchmark-audit-key-0123456789")

from core import audit, config, demo, migrate  # noqa: E402
from core.artifacts import default_store  # noqa: E402
from core.audit_format import KEYED, keyed_hash  # noqa: E402
from core.audit_keys import mac_key  # noqa: E402
from core.config import get_settings  # noqa: E402
from core.db import Database  # noqa: E402
from core.models import (  # noqa: E402
    AuditEvent,
    BatchFile,
    Comment,
    Decision,
    Deployment,
    Evaluation,
    InferenceBatch,
    MLModel,
    ModelVersion,
    Notification,
    PredictionKey,
    RoleGrant,
    Team,
    User,
    WindowAggregateRow,
    utcnow,
)
from core.monitoring.profile import ReferenceProfile  # noqa: E402
from core.monitoring.windows import WindowAggregate, aggregate_chunk  # noqa: E402
from core.services.monitoring.common import _as_datetime  # noqa: E402

CREDIT_MODEL = "credit-default-scorer"
INGEST_AS = "dana@demo.quorum"
STREAM_DAYS = 90
BATCH = 50_000
ROLES = ("data_scientist", "reviewer", "business_stakeholder", "compliance_officer")
ACTIONS = (
    "version.registered",
    "version.submitted",
    "decision.approve",
    "decision.request_changes",
    "comment.added",
    "deployment.promote",
    "deployment.rollback",
    "monitoring.ingested",
    "checklist.updated",
    "permission.denied",
)


@dataclass(frozen=True)
class Sizes:
    models: int = 1_000
    versions: int = 10_000
    users: int = 200
    events: int = 100_000
    rows: int = 5_000_000
    monitored_models: int = 100


def table(model: Any) -> Any:
    return model.__table__


def use_store(url: str, artifacts: Path) -> None:
    os.environ["QUORUM_DATABASE_URL"] = url
    os.environ["QUORUM_ARTIFACT_STORE"] = str(artifacts)
    config.reset_settings()


def build_demo_store(url: str, artifacts: Path) -> float:
    """The small store: the demo seed plus a real ingest of the credit production stream."""
    from core.demo.data import CREDIT_TARGET, credit_production_stream
    from core.services import monitoring, users

    started = time.perf_counter()
    use_store(url, artifacts)
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db)
    actor = users.principal_by_email(db, INGEST_AS)
    with db.read() as session:  # the demo seed may already ingest the credit stream itself
        ingested = session.execute(
            select(func.count())
            .select_from(table(InferenceBatch))
            .join(table(MLModel), InferenceBatch.model_id == MLModel.id)
            .where(MLModel.name == CREDIT_MODEL)
        ).scalar_one()
    if not ingested:
        stream = credit_production_stream(days=STREAM_DAYS)
        stream = stream.rename(columns={CREDIT_TARGET: "label"})
        monitoring.ingest(db, actor, CREDIT_MODEL, stream, filename="credit-stream.csv")
    with db.write() as session:  # the demo people have seen the alerts of the ingest
        session.connection().execute(
            update(table(Notification)).where(Notification.kind == "alert").values(read_at=utcnow())
        )
    if db.engine.dialect.name == "postgresql":  # as the large store (SQLite: as before)
        settle(db)
    db.dispose()
    return time.perf_counter() - started


def copy_sqlite(source: str, target: str) -> None:
    src, dst = Path(source.removeprefix("sqlite:///")), Path(target.removeprefix("sqlite:///"))
    db = Database(source)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    dst.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(dst) + suffix).unlink(missing_ok=True)
    shutil.copyfile(src, dst)


class Grower:
    """Appends cloned history to a demo store inside one connection."""

    def __init__(self, conn: Connection, sizes: Sizes, seed: int) -> None:
        self.conn = conn
        self.sizes = sizes
        self.rng = random.Random(seed)
        self.postgres = conn.dialect.name == "postgresql"
        self.now = utcnow()
        self.store = default_store()

    def next_id(self, model: Any) -> int:
        return (
            int(
                self.conn.execute(
                    select(func.coalesce(func.max(table(model).c.id), 0))
                ).scalar_one()
            )
            + 1
        )

    def count(self, model: Any) -> int:
        return int(self.conn.execute(select(func.count()).select_from(table(model))).scalar_one())

    def put(self, model: Any, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), BATCH):
            self.conn.execute(insert(table(model)), rows[start : start + BATCH])

    def when(self, days_back: float) -> datetime:
        return self.now - timedelta(days=days_back)

    # --- people -----------------------------------------------------------------------

    def teams(self, n: int = 20) -> list[int]:
        first = self.next_id(Team)
        rows = [
            {
                "id": first + i,
                "name": f"bench-team-{i:02d}",
                "description": "Benchmark team.",
                "created_at": self.when(400),
            }
            for i in range(n)
        ]
        self.put(Team, rows)
        return [r["id"] for r in rows]

    def users(self, team_ids: list[int]) -> dict[str, list[int]]:
        existing = self.count(User)
        first = self.next_id(User)
        n = max(self.sizes.users - existing, 0)
        rows, grants = [], []
        by_role: dict[str, list[int]] = {r: [] for r in ROLES}
        for i in range(n):
            uid = first + i
            role = ROLES[i % len(ROLES)]
            by_role[role].append(uid)
            rows.append(
                {
                    "id": uid,
                    "email": f"user{i:04d}@bench.quorum",
                    "name": f"Bench User {i:04d}",
                    "subject": None,
                    "is_active": True,
                    "is_demo": False,
                    "created_at": self.when(400 - i % 300),
                    "last_login_at": None,
                }
            )
            grants.append(
                {
                    "user_id": uid,
                    "role": role,
                    "team_id": self.rng.choice(team_ids),
                    "source": "store",
                    "granted_by_id": None,
                    "created_at": self.when(300),
                }
            )
        self.put(User, rows)
        self.put(RoleGrant, grants)
        demo_reviewers = (
            self.conn.execute(select(RoleGrant.user_id).where(RoleGrant.role == "reviewer"))
            .scalars()
            .all()
        )
        by_role["reviewer"] = sorted(set(by_role["reviewer"]) | set(demo_reviewers))
        if not by_role["data_scientist"]:
            by_role["data_scientist"] = [1]
        return by_role

    # --- models and versions ------------------------------------------------------------

    def template(self) -> tuple[MLModel, ModelVersion, Evaluation]:
        model = self.conn.execute(select(table(MLModel)).where(MLModel.name == CREDIT_MODEL)).one()
        version = self.conn.execute(
            select(table(ModelVersion))
            .where(ModelVersion.model_id == model.id)
            .order_by(ModelVersion.number)
        ).first()
        assert version is not None
        ev = self.conn.execute(
            select(table(Evaluation)).where(Evaluation.version_id == version.id)
        ).one()
        return model, version, ev

    def models(self, team_ids: list[int], owners: list[int]) -> list[dict[str, Any]]:
        tm, _, _ = self.template()
        first = self.next_id(MLModel)
        n = max(self.sizes.models - self.count(MLModel), 0)
        rows = []
        for i in range(n):
            rows.append(
                {
                    "id": first + i,
                    "name": f"bench-model-{i:04d}",
                    "team_id": self.rng.choice(team_ids),
                    "owner_id": self.rng.choice(owners),
                    "purpose": f"Benchmark model {i}: {tm.purpose}",
                    "risk_tier": self.rng.choice(("low", "medium", "high")),
                    "task": tm.task,
                    "target": tm.target,
                    "sensitive_column": tm.sensitive_column,
                    "goal_metric": tm.goal_metric,
                    "goal_operator": tm.goal_operator,
                    "goal_target": tm.goal_target,
                    "goal_description": tm.goal_description,
                    "tags": {"bench": str(i % 7)},
                    "model_card": dict(tm.model_card),
                    "monitoring_config": dict(tm.monitoring_config),
                    "archived_at": None,
                    "created_at": self.when(365),
                    "updated_at": self.when(30),
                    "row_version": 1,
                }
            )
        self.put(MLModel, rows)
        return rows

    def versions(
        self, models: list[dict[str, Any]], by_role: dict[str, list[int]]
    ) -> list[dict[str, Any]]:
        _, tv, te = self.template()
        n = max(self.sizes.versions - self.count(ModelVersion), 0)
        per_model = [
            n // len(models) + (1 if i < n % len(models) else 0) for i in range(len(models))
        ]
        vid, eid = self.next_id(ModelVersion), self.next_id(Evaluation)
        versions, evaluations = [], []
        for model, count in zip(models, per_model, strict=True):
            parent = None
            for number in range(1, count + 1):
                latest = number == count
                state = self._state(latest)
                created = self.when(365 - number * 300 / max(count, 1))
                versions.append(
                    {
                        "id": vid,
                        "model_id": model["id"],
                        "number": number,
                        "state": state,
                        "artifact_key": tv.artifact_key,
                        "artifact_sha256": tv.artifact_sha256,
                        "artifact_size": tv.artifact_size,
                        "artifact_format": tv.artifact_format,
                        "original_filename": tv.original_filename,
                        "estimator_class": tv.estimator_class,
                        "library_versions": tv.library_versions,
                        "feature_names": tv.feature_names,
                        "feature_types": tv.feature_types,
                        "params": {**tv.params, "bench_seed": vid},
                        "training_fingerprint": tv.training_fingerprint,
                        "tags": {},
                        "notes": f"Retrained on data up to {created:%Y-%m-%d}.",
                        "code_ref": "",
                        "parent_id": parent,
                        "registered_by_id": model["owner_id"],
                        "review_round": 1 if state != "registered" else 0,
                        "created_at": created,
                        "updated_at": created,
                        "row_version": 1,
                    }
                )
                evaluations.append(
                    {
                        "id": eid,
                        "version_id": vid,
                        "dataset_sha256": te.dataset_sha256,
                        "dataset_key": te.dataset_key,
                        "dataset_filename": te.dataset_filename,
                        "n_rows": te.n_rows,
                        "target": te.target,
                        "sensitive_column": te.sensitive_column,
                        "result": self._varied(te.result),
                        "reference_profile": te.reference_profile,
                        "created_at": created,
                    }
                )
                parent, vid, eid = vid, vid + 1, eid + 1
        self.put(ModelVersion, versions)
        self.put(Evaluation, evaluations)
        return versions

    def _state(self, latest: bool) -> str:
        roll = self.rng.random()
        if latest:
            if roll < 0.02:
                return "in_review"
            return (
                "approved" if roll < 0.7 else ("registered" if roll < 0.9 else "changes_requested")
            )
        return "archived" if roll < 0.6 else ("approved" if roll < 0.9 else "rejected")

    def _varied(self, result: dict[str, Any]) -> dict[str, Any]:
        metrics = {
            k: (None if v is None else round(v * self.rng.uniform(0.97, 1.03), 6))
            for k, v in result.get("metrics", {}).items()
        }
        return {**result, "metrics": metrics}

    def reviews(self, versions: list[dict[str, Any]], reviewers: list[int]) -> None:
        decisions, comments = [], []
        for v in versions:
            if v["state"] in ("approved", "archived", "rejected", "changes_requested"):
                kind = {"rejected": "reject", "changes_requested": "request_changes"}.get(
                    v["state"], "approve"
                )
                decisions.append(
                    {
                        "version_id": v["id"],
                        "review_round": 1,
                        "reviewer_id": self.rng.choice(reviewers),
                        "roles": ["reviewer"],
                        "kind": kind,
                        "reason": "Benchmark decision.",
                        "artifact_sha256": v["artifact_sha256"],
                        "evaluation_sha256": "",
                        "created_at": v["created_at"] + timedelta(days=1),
                    }
                )
            if v["id"] % 3 == 0:
                comments.append(
                    {
                        "version_id": v["id"],
                        "author_id": self.rng.choice(reviewers),
                        "body": "Looks fine; check the calibration on the newest region.",
                        "anchor": "",
                        "parent_id": None,
                        "created_at": v["created_at"] + timedelta(hours=5),
                    }
                )
        self.put(Decision, decisions)
        self.put(Comment, comments)

    def deployments(self, versions: list[dict[str, Any]], actor: int) -> list[dict[str, Any]]:
        """The newest approved version of every model with one goes live in production."""
        live: dict[int, dict[str, Any]] = {}
        for v in versions:
            if v["state"] == "approved":
                live[v["model_id"]] = v
        rows = [
            {
                "model_id": m,
                "version_id": v["id"],
                "environment": "production",
                "action": "promote",
                "reason": "Benchmark release.",
                "actor_id": actor,
                "live_from": v["created_at"] + timedelta(days=2),
                "live_until": None,
                "replaced_by_id": None,
            }
            for m, v in live.items()
        ]
        self.put(Deployment, rows)
        return list(live.values())

    # --- audit trail --------------------------------------------------------------------------

    def audit_events(self, models: list[dict[str, Any]], users: list[int]) -> int:
        last = self.conn.execute(
            select(AuditEvent.seq, AuditEvent.hash, AuditEvent.created_at)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        seq, prev, when = (
            (last.seq, last.hash, last.created_at) if last else (0, audit.GENESIS_HASH, self.now)
        )
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.now.tzinfo)
        n = max(self.sizes.events - self.count(AuditEvent), 0)
        key = mac_key(get_settings(), str(self.conn.engine.url))
        rows: list[dict[str, Any]] = []
        for i in range(n):
            model = models[self.rng.randrange(len(models))]
            action = ACTIONS[i % len(ACTIONS)]
            actor = users[self.rng.randrange(len(users))]
            event = AuditEvent(
                seq=seq + i + 1,
                created_at=when + timedelta(milliseconds=i + 1),
                actor_id=actor,
                actor_label=f"user{actor}@bench.quorum",
                action=action,
                object_type="version",
                object_id=str(model["id"]),
                model_id=model["id"],
                summary=f"{action.replace('.', ' ')} on {model['name']}",
                details={"bench": i, "note": "cloned history"},
                prev_hash=prev,
                hash="",
                mac=KEYED,
            )
            event.hash = keyed_hash(key, audit.event_fields(event))
            prev = event.hash
            rows.append(event.model_dump(exclude={"id"}))
            if len(rows) >= BATCH:
                self.put(AuditEvent, rows)
                rows = []
        self.put(AuditEvent, rows)
        return n

    # --- inference rows -----------------------------------------------------------------------

    def inference(self, live: list[dict[str, Any]], creator: int) -> tuple[int, int]:
        """Cloned production rows as Quorum stores them: Parquet files per batch and day in the
        artifact store, their file list and prediction-id index in SQL, and the windows."""
        tm, _, _ = self.template()
        template_rows = self._template_rows(tm.id or 0)
        wanted = self.sizes.rows - self.count(PredictionKey)
        if template_rows.empty or not live or wanted <= 0:
            return 0, 0
        targets = live[: self.sizes.monitored_models]
        per_model = wanted // len(targets)
        picked = self._picked(template_rows, per_model)
        windows = self._windows(picked)
        batch_id = self.next_id(InferenceBatch)
        batches, aggregates = [], []
        for k, v in enumerate(targets):
            batches.append(
                {
                    "id": batch_id + k,
                    "model_id": v["model_id"],
                    "version_id": v["id"],
                    "environment": "production",
                    "kind": "predictions",
                    "source": "upload",
                    "file_sha256": f"{batch_id + k:064d}",
                    "filename": "bench.csv",
                    "n_rows": per_model,
                    "window_start": template_rows["timestamp"].min().to_pydatetime(),
                    "window_end": template_rows["timestamp"].max().to_pydatetime(),
                    "created_by_id": creator,
                    "created_at": self.now,
                }
            )
            aggregates += [
                {
                    "model_id": v["model_id"],
                    "version_id": v["id"],
                    "environment": "production",
                    "window_start": _as_datetime(day),
                    "n_rows": w.n_rows,
                    "data": w.to_dict(),
                    "updated_at": self.now,
                    "row_version": 1,
                }
                for day, w in sorted(windows.items())
            ]
        self.put(InferenceBatch, batches)
        self.put(WindowAggregateRow, aggregates)
        total = 0
        for k, v in enumerate(targets):
            total += self._clone_rows(batch_id + k, v["model_id"], picked)
        return total, len(aggregates)

    def _picked(self, template: pd.DataFrame, n: int) -> pd.DataFrame:
        """`n` rows cycled from the template: what every monitored clone receives."""
        return template.iloc[np.arange(n) % len(template)].reset_index(drop=True)

    def _windows(self, picked: pd.DataFrame) -> dict[Any, WindowAggregate]:
        """The windows of the cloned rows, aggregated as a recompute reads them back from the
        files (stored columns, labels as text), against the clones' reference profile: the
        windows count exactly the rows the files and the prediction index hold."""
        from core.services.monitoring.common import quiet, settings_for

        tm, _, te = self.template()
        model = MLModel(**dict(tm._mapping))
        evaluation = Evaluation(**dict(te._mapping))
        settings = settings_for(model, evaluation)
        frame = picked.assign(prediction_id=[f"clone-{i}" for i in range(len(picked))])
        for name in ("label", "score"):
            if name in frame.columns and frame[name].isna().all():
                frame = frame.drop(columns=[name])
        with quiet():
            return aggregate_chunk(
                frame,
                ReferenceProfile.from_dict(evaluation.reference_profile),
                window=settings.window,
            )

    def _template_rows(self, model_id: int) -> pd.DataFrame:
        """The template model's production rows from its Parquet files, labels attached."""
        from core.services.monitoring import rows as stored_rows

        files = self.conn.execute(
            select(BatchFile.id, BatchFile.key)
            .join(InferenceBatch, col(InferenceBatch.id) == BatchFile.batch_id)
            .where(InferenceBatch.model_id == model_id, InferenceBatch.environment == "production")
        ).all()
        parts = []
        for file_id, key in files:
            frame = stored_rows.read_file(self.store, key)
            labels = dict(
                self.conn.execute(
                    select(PredictionKey.row, PredictionKey.label).where(
                        PredictionKey.file_id == file_id
                    )
                ).all()
            )
            frame["label"] = [labels.get(i) for i in range(len(frame))]
            parts.append(frame)
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True).sort_values("timestamp", kind="stable")

    def _clone_rows(self, batch_id: int, model_id: int, rows: pd.DataFrame) -> int:
        """The picked rows with this model's prediction ids, one Parquet file per day, and
        their index rows."""
        picked = rows.copy()
        picked["prediction_id"] = [f"m{model_id}-{i}" for i in range(len(picked))]
        labels = picked.pop("label")
        days = picked["timestamp"].dt.tz_convert(None).dt.floor("D")
        file_id = self.next_id(BatchFile)
        files, keys = [], []
        for part, (day, index) in enumerate(picked.groupby(days).groups.items()):
            piece = picked.loc[index]
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(piece, preserve_index=False), buffer)
            key = (
                f"predictions/model={model_id}/env=production/day={pd.Timestamp(str(day)):%Y-%m-%d}/"
                f"batch-{batch_id}-{part:05d}.parquet"
            )
            stored = self.store.put_at(key, buffer.getvalue())
            files.append(
                {
                    "id": file_id + part,
                    "batch_id": batch_id,
                    "day": pd.Timestamp(str(day)).tz_localize("UTC").to_pydatetime(),
                    "key": key,
                    "n_rows": len(piece),
                    "size": stored.size,
                }
            )
            keys += [
                (model_id, "production", pid, file_id + part, row, label)
                for row, (pid, label) in enumerate(
                    zip(piece["prediction_id"], labels.loc[index], strict=True)
                )
            ]
        self.put(BatchFile, files)
        return self._bulk_keys(keys)

    def _bulk_keys(self, rows: list[tuple[Any, ...]]) -> int:
        columns = ("model_id", "environment", "prediction_id", "file_id", "row", "label")
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self.postgres:
                with cursor.copy(f"COPY prediction_key ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO prediction_key ({', '.join(columns)}) VALUES ({marks})"
            for start in range(0, len(rows), BATCH):
                cursor.executemany(sql, rows[start : start + BATCH])
            return len(rows)
        finally:
            cursor.close()

    def fix_sequences(self) -> None:
        if not self.postgres:
            return
        for model in (
            Team,
            User,
            RoleGrant,
            MLModel,
            ModelVersion,
            Evaluation,
            Decision,
            Comment,
            Deployment,
            AuditEvent,
            InferenceBatch,
            BatchFile,
            WindowAggregateRow,
        ):
            name = table(model).name
            self.conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                    f'(SELECT COALESCE(MAX(id), 1) FROM "{name}"))'
                )
            )


def grow(url: str, sizes: Sizes, seed: int = 1) -> dict[str, float]:
    """Append cloned history to the demo store at `url`; returns seconds per step."""
    db = Database(url)
    timings: dict[str, float] = {}
    with db.engine.connect() as conn:
        conn = conn.execution_options(quorum_write=True)
        with conn.begin():
            g = Grower(conn, sizes, seed)
            steps: list[tuple[str, Any]] = []
            started = time.perf_counter()
            team_ids = g.teams()
            by_role = g.users(team_ids)
            timings["teams and users"] = time.perf_counter() - started
            started = time.perf_counter()
            models = g.models(team_ids, by_role["data_scientist"])
            versions = g.versions(models, by_role) if models else []
            g.reviews(versions, by_role["reviewer"])
            live = g.deployments(versions, by_role["reviewer"][0])
            timings["models, versions, evaluations, reviews"] = time.perf_counter() - started
            started = time.perf_counter()
            everyone = [u for ids in by_role.values() for u in ids]
            g.audit_events(models or [{"id": None, "name": "store"}], everyone)
            timings["audit events"] = time.perf_counter() - started
            started = time.perf_counter()
            n_rows, n_windows = g.inference(live, by_role["data_scientist"][0])
            timings[f"inference rows ({n_rows:,}) and windows ({n_windows:,})"] = (
                time.perf_counter() - started
            )
            g.fix_sequences()
            del steps
    started = time.perf_counter()
    settle(db)
    timings["vacuum and analyze" if db.engine.dialect.name == "postgresql" else "analyze"] = (
        time.perf_counter() - started
    )
    db.dispose()
    return timings


def settle(db: Database) -> None:
    """Statistics for the planner; on PostgreSQL also VACUUM, as autovacuum would have done on a
    store in use (a bulk-loaded table is never vacuumed when autovacuum is off, as on the
    benchmark server, and its index-only scans then read the table too)."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        return
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def summary(url: str) -> dict[str, int]:
    db = Database(url)
    with db.engine.connect() as conn:
        counts = {
            table(m).name: int(
                conn.execute(select(func.count()).select_from(table(m))).scalar_one()
            )
            for m in (
                User,
                MLModel,
                ModelVersion,
                Evaluation,
                AuditEvent,
                PredictionKey,
                WindowAggregateRow,
            )
        }
    db.dispose()
    return counts


def verify_chain(url: str) -> str:
    db = Database(url)
    with db.read() as session:
        message = audit_anchor.verify(session, get_settings()).message
    db.dispose()
    return message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the SQLite file and artifacts"
    )
    parser.add_argument(
        "--url", help="PostgreSQL URL of an empty database (default: SQLite in --out)"
    )
    parser.add_argument(
        "--base",
        help="SQLite URL of a demo store made by this script to copy instead of seeding again",
    )
    parser.add_argument(
        "--artifact-store",
        type=Path,
        help="artifact folder (default: --out/artifacts; give the base's with --base)",
    )
    parser.add_argument("--models", type=int, default=Sizes.models)
    parser.add_argument("--versions", type=int, default=Sizes.versions)
    parser.add_argument("--users", type=int, default=Sizes.users)
    parser.add_argument("--events", type=int, default=Sizes.events)
    parser.add_argument("--rows", type=int, default=Sizes.rows)
    parser.add_argument("--monitored-models", type=int, default=Sizes.monitored_models)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verify", action="store_true", help="verify the audit chain afterwards")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    artifacts = args.artifact_store or args.out / "artifacts"
    url = args.url or f"sqlite:///{args.out / 'large.db'}"
    sizes = Sizes(
        args.models, args.versions, args.users, args.events, args.rows, args.monitored_models
    )
    use_store(url, artifacts)
    if args.base and not args.url:
        copy_sqlite(args.base, url)
        print(f"copied the demo store from {args.base}", flush=True)
    else:
        if not args.url:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        print(f"demo store seeded in {build_demo_store(url, artifacts):.1f} s")
    started = time.perf_counter()
    for step, seconds in grow(url, sizes, args.seed).items():
        print(f"  {step}: {seconds:.1f} s", flush=True)
    print(f"history generated in {time.perf_counter() - started:.1f} s -> {url}")
    for name, n in summary(url).items():
        print(f"  {name}: {n:,}")
    if args.verify:
        print(verify_chain(url))


if __name__ == "__main__":
    main()

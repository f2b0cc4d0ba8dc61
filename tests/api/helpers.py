"""Files and checks the API tests share: a real scikit-learn model, evaluation data, production
rows, and a snapshot of the store to prove a refusal changed nothing."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sqlalchemy import MetaData

from core.db import Database
from core.demo import data as demo_data

FEATURES = ["income", "debt", "age"]
TEAM = "risk-analytics"


def toy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "debt": rng.normal(20, 5, n),
            "age": rng.integers(20, 70, n).astype(float),
        }
    )
    frame["defaulted"] = (frame["debt"] / frame["income"] + rng.normal(0, 0.05, n) > 0.4).astype(
        int
    )
    return frame


def toy_files(seed: int = 0, c: float = 1.0) -> tuple[bytes, bytes]:
    """A fitted LogisticRegression as .skops and its evaluation data as CSV."""
    frame = toy_frame(seed=seed)
    model = LogisticRegression(C=c).fit(frame[FEATURES], frame["defaulted"])
    return sio.dumps(model), frame.to_csv(index=False).encode()


def register_files(model_bytes: bytes, eval_bytes: bytes) -> dict[str, Any]:
    return {
        "model_file": ("model.skops", model_bytes, "application/octet-stream"),
        "eval_file": ("evaluation.csv", eval_bytes, "text/csv"),
    }


def new_model(client: httpx.Client, name: str, risk_tier: str = "low") -> dict[str, Any]:
    reply = client.post(
        "/models",
        json={
            "name": name,
            "team": TEAM,
            "task": "binary_classification",
            "risk_tier": risk_tier,
            "purpose": "Score loan defaults for the API tests.",
            "target": "defaulted",
            "goal_metric": "roc_auc",
            "goal_operator": ">=",
            "goal_target": 0.7,
            "tags": {"origin": "api-test"},
        },
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def bike_rows(n: int, tag: str | None = None) -> tuple[pd.DataFrame, bytes]:
    """Production rows for the demo bike forecaster with prediction ids nobody sent before."""
    stream = demo_data.bikeshare_production_stream().head(n).copy()
    prefix = tag or uuid.uuid4().hex[:8]
    stream["prediction_id"] = [f"{prefix}-{i}" for i in range(len(stream))]
    rows = stream.drop(columns=["bikers"])
    return stream, rows.to_csv(index=False).encode()


def labels_csv(stream: pd.DataFrame) -> bytes:
    labels = pd.DataFrame({"prediction_id": stream["prediction_id"], "label": stream["bikers"]})
    buffer = io.StringIO()
    labels.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the audit trail and tokens' last-use time (each call
    authenticates, which stamps its token), in primary-key order."""
    metadata = MetaData()
    metadata.reflect(db.engine)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for name, table in metadata.tables.items():
            if name == "audit_event":
                continue
            columns = [c for c in table.columns if c.name != "last_used_at"]
            order = list(table.primary_key.columns) or columns
            rows[name] = [
                tuple(r)
                for r in conn.execute(table.select().with_only_columns(*columns).order_by(*order))
            ]
    return rows


def audit_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM audit_event").scalar_one())


def assert_problem(reply: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status
    assert body["type"].startswith("https://quorum.dev/problems/")
    assert body["detail"] and "Traceback" not in body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body

"""Monitoring aggregates computed by Spark on the team's own cluster, exactly as Quorum's ingest
computes them (the same pure functions, run on each partition and merged), so that only the
per-window aggregates travel to Quorum and the rows never leave the cluster.

    from pyspark.sql import SparkSession
    from core.sdk import Client
    from core.client.spark import send_window_aggregates

    spark = SparkSession.builder.getOrCreate()
    scored = spark.read.parquet("s3://bucket/scores/2026-11-30/")
    with Client() as client:
        send_window_aggregates(client, "churn", scored, env="production")

Needs pyspark (4.x) and pyarrow where the job runs. Quorum marks the windows as aggregated
outside Quorum. Duplicate prediction ids are counted within a partition only (Quorum's own
ingest refuses a batch that repeats an id).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.monitoring.performance import outcome_text
from core.monitoring.profile import ReferenceProfile
from core.monitoring.windows import (
    SeenIds,
    WindowAggregate,
    aggregate_chunk,
    aggregate_labels,
    merge_windows,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from core.client.sdk import Client

TS, ID, PRED, SCORE, LABEL = "timestamp", "prediction_id", "prediction", "score", "label"
_MICROS = "__quorum_micros__"


def window_aggregates(df: DataFrame, reference: dict[str, Any]) -> dict[date, WindowAggregate]:
    """Per-window aggregates of scored rows (timestamp, prediction_id, the model's features,
    prediction, optional score and label) on the reference from `Client.reference`."""
    profile = ReferenceProfile.from_dict(reference["profile"])
    window = str(reference["window"])
    wanted = [TS, ID, *profile.features, PRED, SCORE, LABEL]
    rows = _portable_times(df.select(*[c for c in wanted if c in df.columns]))

    def per_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        merged: dict[date, WindowAggregate] = {}
        seen = SeenIds()
        for batch in batches:
            part = aggregate_chunk(_times(batch), profile, window=window, seen_ids=seen)
            merged = merge_windows(merged, part)
        yield _payload(merged)

    return _collect(rows.mapInPandas(per_partition, "payload string"))


def label_aggregates(
    predictions: DataFrame, labels: DataFrame, reference: dict[str, Any]
) -> dict[date, WindowAggregate]:
    """Label-joined metric sums per window (windowed by prediction time), as Quorum computes
    them when labels arrive: labels (prediction_id, label) joined to their predictions."""
    profile = ReferenceProfile.from_dict(reference["profile"])
    window = str(reference["window"])
    regression = profile.task == "regression"
    kept = [c for c in (ID, TS, PRED, SCORE) if c in predictions.columns]
    joined = _portable_times(predictions.select(*kept).join(labels.select(ID, LABEL), on=ID))

    def per_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        merged: dict[date, WindowAggregate] = {}
        for batch in batches:
            frame = _times(batch)
            frame[PRED] = outcome_text(frame[PRED], regression)
            frame[LABEL] = outcome_text(frame[LABEL], regression)
            if SCORE in frame.columns:
                frame[SCORE] = pd.to_numeric(frame[SCORE], errors="coerce")
            merged = merge_windows(merged, aggregate_labels(frame, profile, window=window))
        yield _payload(merged)

    return _collect(joined.mapInPandas(per_partition, "payload string"))


def send_window_aggregates(
    client: Client,
    model: str,
    predictions: DataFrame,
    *,
    env: str = "production",
    labels: DataFrame | None = None,
    name: str = "spark job",
) -> list[dict[str, Any]]:
    """Aggregate the rows (and labels, if given) with Spark and send only the aggregates.

    Each request carries an idempotency key derived from its content, so rerunning the same
    job after a lost reply stores nothing twice."""
    reference = client.reference(model, env)
    sent = [("predictions", window_aggregates(predictions, reference))]
    if labels is not None:
        sent.append(("labels", label_aggregates(predictions, labels, reference)))
    replies = []
    for kind, windows in sent:
        payload = [windows[day].to_dict() for day in sorted(windows)]
        digest = hashlib.sha256(
            json.dumps([kind, reference["profile_sha256"], payload], sort_keys=True).encode()
        ).hexdigest()
        replies.append(
            client.send_aggregates(
                model,
                reference,
                payload,
                kind=kind,
                name=name,
                idempotency_key=f"spark-{digest[:48]}",
            )
        )
    return replies


def _portable_times(df: DataFrame) -> DataFrame:
    """Spark timestamps as microseconds since the epoch, so no session time zone shifts them."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    field = df.schema[TS] if TS in df.columns else None
    if field is not None and isinstance(field.dataType, TimestampNTZType):  # naive: UTC, as ingest
        return df.withColumn(TS, F.col(TS).cast("string"))
    if field is None or not isinstance(field.dataType, TimestampType):
        return df
    return df.withColumn(_MICROS, F.unix_micros(F.col(TS))).drop(TS)


def _times(batch: pd.DataFrame) -> pd.DataFrame:
    if _MICROS not in batch.columns:
        return batch
    stamps = pd.to_datetime(batch[_MICROS], unit="us", utc=True)
    return batch.drop(columns=[_MICROS]).assign(**{TS: stamps})


def _payload(windows: dict[date, WindowAggregate]) -> pd.DataFrame:
    return pd.DataFrame({"payload": [json.dumps(w.to_dict()) for w in windows.values()]})


def _collect(payloads: DataFrame) -> dict[date, WindowAggregate]:
    merged: dict[date, WindowAggregate] = {}
    for row in payloads.collect():
        window = WindowAggregate.from_dict(json.loads(row["payload"]))
        merged = merge_windows(merged, {window.window_start: window})
    return merged

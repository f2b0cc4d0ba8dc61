"""The Python SDK: what a training script or a CI pipeline calls, as the QUORUM_TOKEN user.

from core.sdk import Client
quorum = Client()                      # settings and QUORUM_TOKEN from the environment
quorum.register_version("churn", model, eval_df, target="churned", notes="more data")
model = quorum.load_model("churn", env="production")
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio

from core import modelfile
from core.artifacts import ArtifactStore
from core.auth import Principal
from core.config import get_settings
from core.db import Database
from core.errors import AuthenticationFailed, NotFound
from core.services import deployments, registry, reviews, users, versions
from core.services.compare import live_version


class Client:
    """One signed-in session against the store; every call obeys the token user's roles."""

    def __init__(
        self,
        token: str | None = None,
        *,
        database_url: str | None = None,
        artifact_store: str | None = None,
    ) -> None:
        settings = get_settings()
        self.db = Database(database_url or settings.database_url)
        self.store = ArtifactStore(artifact_store or settings.artifact_store)
        secret = token if token is not None else os.environ.get("QUORUM_TOKEN", "")
        if not secret:
            raise AuthenticationFailed(
                "Set QUORUM_TOKEN to a personal access token (Profile page) or pass token=."
            )
        self.principal: Principal = users.authenticate_token(self.db, secret)

    # --- registry -----------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            return [
                {
                    "name": m.name,
                    "task": m.task,
                    "risk_tier": m.risk_tier,
                    "versions": [v.number for v in registry.versions_of(session, m.id or 0)],
                }
                for m in registry.list_models(session)
            ]

    def register_version(
        self,
        model: str,
        estimator_or_path: Any,
        evaluation_data: pd.DataFrame | str | Path,
        *,
        target: str | None = None,
        sensitive: str | None = None,
        notes: str = "",
        code_ref: str = "",
        tags: Mapping[str, str] | None = None,
        training_data: pd.DataFrame | None = None,
        submit: bool = False,
    ) -> dict[str, Any]:
        model_bytes, model_name = _model_bytes(estimator_or_path)
        eval_bytes, eval_name = _table_bytes(evaluation_data)
        upload = versions.VersionUpload(
            model=model,
            model_file=model_bytes,
            model_filename=model_name,
            eval_file=eval_bytes,
            eval_filename=eval_name,
            target=target,
            sensitive=sensitive,
            notes=notes,
            code_ref=code_ref,
            tags=tags,
            training_data=training_data,
        )
        version = versions.register_version(self.db, self.principal, upload, store=self.store)
        if submit:
            version = reviews.submit_for_review(self.db, self.principal, model, version.number)
        return {
            "model": model,
            "version": version.number,
            "state": version.state,
            "artifact_sha256": version.artifact_sha256,
        }

    def load_model(self, name: str, version: int | None = None, env: str | None = None) -> Any:
        """The estimator of a version, the one live in `env`, or the latest; hash-verified and
        loaded with the same checks as an upload, into the calling script's own process (the
        server itself never loads an artifact outside its sandbox)."""
        with self.db.read() as session:
            model = registry.get_model(session, name)
            if env is not None:
                chosen = live_version(session, model, env)
                if chosen is None:
                    raise NotFound(f"Nothing of {name} is live in {env}.")
            else:
                chosen = registry.get_version(session, model, version)
        data = self.store.get(chosen.artifact_key, sha256=chosen.artifact_sha256)
        return modelfile.load_model_bytes(data)

    # --- review and deployment --------------------------------------------------------------

    def submit(self, model: str, version: int, note: str = "") -> str:
        return reviews.submit_for_review(self.db, self.principal, model, version, note=note).state

    def decide(self, model: str, version: int, decision: str, reason: str = "") -> str:
        reviews.decide(self.db, self.principal, model, version, decision, reason)
        with self.db.read() as session:
            return registry.get_version(session, registry.get_model(session, model), version).state

    def approve(self, model: str, version: int, reason: str = "") -> str:
        return self.decide(model, version, "approve", reason)

    def request_changes(self, model: str, version: int, reason: str) -> str:
        return self.decide(model, version, "request_changes", reason)

    def reject(self, model: str, version: int, reason: str) -> str:
        return self.decide(model, version, "reject", reason)

    def promote(self, model: str, version: int, env: str, reason: str = "") -> None:
        deployments.promote(self.db, self.principal, model, version, env, reason)

    def rollback(self, model: str, env: str, reason: str) -> None:
        deployments.rollback(self.db, self.principal, model, env, reason)

    def deploy_status(self, model: str) -> dict[str, int | None]:
        return deployments.status(self.db, model)

    # --- production data ----------------------------------------------------------------------

    def log_predictions(
        self, model: str, dataframe: pd.DataFrame, env: str = "production"
    ) -> dict[str, Any]:
        """Record production predictions (features, prediction, prediction_id, timestamp)."""
        from core.sdk_monitoring import log_predictions

        return _plain(log_predictions(self.db, self.principal, model, dataframe, env=env))

    def log_labels(
        self, model: str, dataframe: pd.DataFrame, env: str = "production"
    ) -> dict[str, Any]:
        """Join late labels (prediction_id, label) to recorded predictions."""
        from core.sdk_monitoring import log_labels

        return _plain(log_labels(self.db, self.principal, model, dataframe, env=env))


def _plain(result: Any) -> dict[str, Any]:
    return dataclasses.asdict(result)


def _model_bytes(estimator_or_path: Any) -> tuple[bytes, str]:
    if isinstance(estimator_or_path, str | Path):
        path = Path(estimator_or_path)
        return path.read_bytes(), path.name
    return sio.dumps(estimator_or_path), "model.skops"


def _table_bytes(data: pd.DataFrame | str | Path) -> tuple[bytes, str]:
    if isinstance(data, pd.DataFrame):
        buffer = io.BytesIO()
        data.to_parquet(buffer, index=False)
        return buffer.getvalue(), "evaluation.parquet"
    path = Path(data)
    return path.read_bytes(), path.name

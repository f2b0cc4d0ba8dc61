"""The Python SDK: what a training script or a CI pipeline calls, through Quorum's REST API.

    from core.sdk import Client
    quorum = Client()          # QUORUM_URL (default http://127.0.0.1:8501) and QUORUM_TOKEN
    quorum.register_version("churn", model, eval_df, target="churned", notes="more data")
    model = quorum.load_model("churn", env="production")

Every call acts as the token's user (or service account) and obeys its permissions on the
server; a refusal raises the `core.errors` exception of the problem (PermissionDenied,
NotFound, InvalidInput, ...) whose message is the server's one-sentence detail.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.client.http import FilePart, Multipart, Progress, Session, path_of
from core.errors import InvalidInput, NotFound, QuorumError

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
MODEL_SUFFIXES = (".skops", ".joblib", ".pkl", ".pickle", ".onnx")


class ArtifactMismatch(QuorumError):
    """The downloaded artifact is not the file the version was registered with."""

    code = "artifact_mismatch"


class Client:
    """One token against one Quorum server; every call obeys the token holder's roles."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.session = Session(url, token)

    @property
    def url(self) -> str:
        return self.session.url

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- who -------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self.session.get("/me")

    def list_users(self) -> list[dict[str, Any]]:
        return self.session.get("/users")

    def list_tokens(self) -> list[dict[str, Any]]:
        return self.session.get("/tokens")

    def create_token(self, name: str, expires_in_days: int | None = None) -> dict[str, Any]:
        """A new personal token of the caller; its secret is in the reply, and only there."""
        return self.session.post("/tokens", {"name": name, "expires_in_days": expires_in_days})

    def revoke_token(self, token_id: int) -> Any:
        return self.session.delete(path_of("tokens", token_id))

    def list_service_accounts(self) -> list[dict[str, Any]]:
        return self.session.get("/service-accounts")

    def create_service_account(
        self, name: str, team: str, role: str, expires_in_days: int | None = None
    ) -> dict[str, Any]:
        """A pipeline's identity (admin only): one role in one team; its token is in the reply,
        and only there."""
        body = {"name": name, "team": team, "role": role, "expires_in_days": expires_in_days}
        return self.session.post(
            "/service-accounts", {k: v for k, v in body.items() if v is not None}
        )

    def revoke_service_account(self, account_id: int) -> Any:
        return self.session.delete(path_of("service-accounts", account_id))

    # --- registry ------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        return self.session.get("/models")

    def create_model(
        self,
        name: str,
        team: str,
        task: str,
        *,
        risk_tier: str = "medium",
        purpose: str = "",
        target: str | None = None,
        sensitive_column: str | None = None,
        goal_metric: str | None = None,
        goal_operator: str | None = None,
        goal_target: float | None = None,
        goal_description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "team": team,
            "task": task,
            "risk_tier": risk_tier,
            "purpose": purpose,
            "target": target,
            "sensitive_column": sensitive_column,
            "goal_metric": goal_metric,
            "goal_operator": goal_operator,
            "goal_target": goal_target,
            "goal_description": goal_description,
            "tags": dict(tags or {}),
        }
        return self.session.post("/models", {k: v for k, v in body.items() if v is not None})

    def get_model(self, name: str) -> dict[str, Any]:
        return self.session.get(path_of("models", name))

    def update_model(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change any of card, tags, risk_tier, purpose, goal_metric, goal_operator,
        goal_target, goal_description, owner (an email), with a `reason`. A change that can
        drop a requirement (tags, goal, a lower tier) waits for a compliance officer: the
        answer's `pending_change` names it."""
        return self.session.patch(path_of("models", name), changes)

    def set_decision_threshold(
        self, name: str, version: int, threshold: float | None, reason: str
    ) -> dict[str, Any]:
        """Propose a version's decision threshold (None: the model's own predict); a compliance
        officer confirms it, then the version is evaluated again at it."""
        return self.session.patch(
            path_of("models", name, "versions", version),
            {"decision_threshold": threshold, "reason": reason},
        )

    def confirm_change(self, change_id: int) -> dict[str, Any]:
        return self.session.post(path_of("changes", change_id, "confirm"), {})

    def refuse_change(self, change_id: int, reason: str) -> dict[str, Any]:
        return self.session.post(path_of("changes", change_id, "refuse"), {"reason": reason})

    def archive_model(self, name: str, reason: str) -> dict[str, Any]:
        return self.session.post(path_of("models", name, "archive"), {"reason": reason})

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
        submit: bool = False,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
        features: Sequence[str] | None = None,
        decision_threshold: float | None = None,
    ) -> dict[str, Any]:
        """Upload a fitted estimator (or a model file) with its evaluation data.

        `features` names, in training order, the features of a model fitted on a bare array
        (the server refuses to match them to the evaluation columns by position);
        `decision_threshold` is the positive class's probability at which a binary classifier
        predicts it. The answer's `warnings` flag, e.g., a file identical to an earlier version.

        The body is streamed; a retried call carries the same Idempotency-Key, so a network
        failure never registers the version twice. `progress(sent, total)` follows the upload.
        """
        body = Multipart.of(
            {
                "target": target,
                "sensitive": sensitive,
                "notes": notes,
                "code_ref": code_ref,
                "tags": json.dumps(dict(tags or {})),
                "submit": "true" if submit else "false",
                "features": ",".join(features or []),
                "decision_threshold": "" if decision_threshold is None else str(decision_threshold),
            },
            [
                model_part(estimator_or_path),
                table_part("eval_file", evaluation_data, "evaluation"),
            ],
        )
        return self.session.upload(
            path_of("models", model, "versions"),
            body,
            idempotency_key=idempotency_key or new_idempotency_key(),
            progress=progress,
        )

    def get_version(self, model: str, version: int) -> dict[str, Any]:
        return self.session.get(path_of("models", model, "versions", version))

    def compare(self, model: str, version: int) -> dict[str, Any]:
        """The candidate against the version live in production, on the same data."""
        return self.session.get(path_of("models", model, "versions", version, "compare"))

    def load_model(self, name: str, version: int | None = None, env: str | None = None) -> Any:
        """The estimator of `version`, of the one live in `env`, or of the latest version.

        The file is downloaded through the API, its SHA-256 compared with the version's
        registered `artifact_sha256`, and loaded with the same safe loader as the server.
        """
        from core import modelfile

        number = self._chosen_version(name, version, env)
        meta = self.get_version(name, number)
        data = self.download_artifact(name, number, expected_sha256=meta["artifact_sha256"])
        return modelfile.load_model_bytes(data)

    def download_artifact(
        self, model: str, version: int, *, expected_sha256: str | None = None
    ) -> bytes:
        """The version's model file, refused unless its SHA-256 is the registered one."""
        expected = expected_sha256 or self.get_version(model, version)["artifact_sha256"]
        buffer = io.BytesIO()
        self.session.download(path_of("models", model, "versions", version, "artifact"), buffer)
        data = buffer.getvalue()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactMismatch(
                f"The artifact of {model} v{version} has SHA-256 {actual[:12]}... but was "
                f"registered as {str(expected)[:12]}...; it was changed after registration. "
                "Nothing was loaded; tell an admin."
            )
        return data

    def _chosen_version(self, name: str, version: int | None, env: str | None) -> int:
        if version is not None and env is not None:
            raise InvalidInput("Pass either version= or env= to load_model, not both.")
        if version is not None:
            return int(version)
        if env is not None:
            live = self.deploy_status(name).get("live", {}).get(env)
            if live is None:
                raise NotFound(f"Nothing of {name} is live in {env}.")
            return int(live)
        versions = self.get_model(name).get("versions") or []
        if not versions:
            raise NotFound(f"{name} has no versions yet; register one first.")
        return max(int(v["number"]) for v in versions)

    # --- review --------------------------------------------------------------------------------

    def submit(self, model: str, version: int, note: str = "") -> dict[str, Any]:
        return self.session.post(
            path_of("models", model, "versions", version, "submit"), {"note": note}
        )

    def decide(self, model: str, version: int, decision: str, reason: str = "") -> dict[str, Any]:
        """Record approve / request_changes / reject; the reply holds the version's new state."""
        return self.session.post(
            path_of("models", model, "versions", version, "decisions"),
            {"decision": decision, "reason": reason},
        )

    def approve(self, model: str, version: int, reason: str = "") -> dict[str, Any]:
        return self.decide(model, version, "approve", reason)

    def request_changes(self, model: str, version: int, reason: str) -> dict[str, Any]:
        return self.decide(model, version, "request_changes", reason)

    def reject(self, model: str, version: int, reason: str) -> dict[str, Any]:
        return self.decide(model, version, "reject", reason)

    def comment(self, model: str, version: int, body: str, anchor: str = "") -> dict[str, Any]:
        return self.session.post(
            path_of("models", model, "versions", version, "comments"),
            {"body": body, "anchor": anchor},
        )

    def comments(self, model: str, version: int) -> list[dict[str, Any]]:
        return self.session.get(path_of("models", model, "versions", version, "comments"))

    def review_queue(self) -> list[dict[str, Any]]:
        return self.session.get("/reviews/queue")

    # --- deployment ----------------------------------------------------------------------------

    def promote(self, model: str, version: int, env: str, reason: str = "") -> dict[str, Any]:
        return self.session.post(
            path_of("models", model, "deployments"),
            {"version": version, "environment": env, "reason": reason},
        )

    def rollback(self, model: str, env: str, reason: str) -> dict[str, Any]:
        return self.session.post(
            path_of("models", model, "rollback"), {"environment": env, "reason": reason}
        )

    def deploy_status(self, model: str) -> dict[str, Any]:
        """`{"live": {env: version or None}, "history": [...]}`."""
        return self.session.get(path_of("models", model, "deployments"))

    def live_at(self, model: str, env: str, at: str) -> int | None:
        """The version that was live in `env` at `at` (ISO 8601), or None."""
        reply = self.session.get(
            path_of("models", model, "deployments", "live-at"), environment=env, at=at
        )
        return reply.get("version")

    # --- production data -----------------------------------------------------------------------

    def log_predictions(
        self,
        model: str,
        data: pd.DataFrame | str | Path,
        env: str = "production",
        *,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Record production predictions (timestamp, prediction_id, features, prediction)."""
        return self._ingest(model, "predictions", data, env, idempotency_key, progress)

    def log_labels(
        self,
        model: str,
        data: pd.DataFrame | str | Path,
        env: str = "production",
        *,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Join the true outcomes (prediction_id, label) to predictions logged earlier."""
        return self._ingest(model, "labels", data, env, idempotency_key, progress)

    def _ingest(
        self,
        model: str,
        kind: str,
        data: pd.DataFrame | str | Path,
        env: str,
        idempotency_key: str | None,
        progress: Progress | None,
    ) -> dict[str, Any]:
        body = Multipart.of({"environment": env}, [table_part("file", data, kind)])
        return self.session.upload(
            path_of("models", model, kind),
            body,
            idempotency_key=idempotency_key or new_idempotency_key(),
            progress=progress,
        )

    def reference(self, model: str, env: str = "production") -> dict[str, Any]:
        """The live version's reference profile, window and version, for a Spark job."""
        return self.session.get(
            path_of("models", model, "monitoring", "reference"), environment=env
        )

    def send_aggregates(
        self,
        model: str,
        reference: dict[str, Any],
        windows: list[dict[str, Any]],
        *,
        kind: str = "predictions",
        name: str = "spark job",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send per-window aggregates computed outside Quorum (see core.client.spark)."""
        body = {
            "environment": reference["environment"],
            "version": reference["version"],
            "profile_sha256": reference["profile_sha256"],
            "kind": kind,
            "name": name,
            "windows": windows,
        }
        return self.session.post(
            path_of("models", model, "aggregates"),
            body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )

    def report(
        self, model: str, env: str = "production", window: str | None = None
    ) -> dict[str, Any]:
        """Drift, quality and performance of one window (default: the latest)."""
        return self.session.get(
            path_of("models", model, "monitoring", "report"), environment=env, window=window
        )

    def alerts(self, model: str, status: str | None = None) -> list[dict[str, Any]]:
        return self.session.get(path_of("models", model, "alerts"), status=status)

    def void_batch(self, batch: int, reason: str) -> dict[str, Any]:
        """Void a prediction or label batch (the `batch` a log call answered) with a reason:
        its rows leave the monitoring windows, which are recomputed; the same file may then be
        sent again."""
        return self.session.post(path_of("batches", batch, "void"), {"reason": reason})

    def set_alert(self, alert_id: int, status: str) -> dict[str, Any]:
        return self.session.patch(path_of("alerts", alert_id), {"status": status})

    # --- compliance ----------------------------------------------------------------------------

    def checklists(self, model: str, version: int) -> list[dict[str, Any]]:
        return self.session.get(path_of("models", model, "versions", version, "checklists"))

    def set_item(
        self,
        model: str,
        version: int,
        template: str,
        item: str,
        *,
        status: str | None = None,
        notes: str | None = None,
        na_reason: str | None = None,
    ) -> dict[str, Any]:
        body = {"status": status, "notes": notes, "na_reason": na_reason}
        return self.session.patch(
            path_of("models", model, "versions", version, "checklists", template, item),
            {k: v for k, v in body.items() if v is not None},
        )

    def add_evidence(
        self,
        model: str,
        version: int,
        template: str,
        item: str,
        *,
        reference: str | None = None,
        kind: str | None = None,
        file: str | Path | None = None,
    ) -> dict[str, Any]:
        """Attach a link (`reference=` and its `kind=`, e.g. "model_card") or a document
        (`file=`) to a checklist item."""
        where = path_of("models", model, "versions", version, "checklists", template, item)
        if (reference is None) == (file is None):
            raise InvalidInput("Give either reference= (a link) or file= (a document).")
        if reference is not None and not kind:
            raise InvalidInput(
                "Give kind= with reference=: evaluation, fairness, drift_report, review_thread "
                "or model_card."
            )
        if file is not None:
            part = FilePart("file", Path(file).name, path=readable(file))
            return self.session.upload(where + "/evidence", Multipart.of({}, [part]))
        return self.session.post(where + "/evidence", {"kind": kind, "reference": reference})

    def signoffs(self, model: str, version: int) -> list[dict[str, Any]]:
        return self.session.get(path_of("models", model, "versions", version, "signoffs"))

    def sign(
        self,
        model: str,
        version: int,
        meaning: str,
        typed_name: str,
        *,
        role: str = "",
        reason: str = "",
        expires_in_days: int | None = None,
    ) -> dict[str, Any]:
        """An electronic signature bound to the version's artifact hash (personal tokens only)."""
        body = {
            "meaning": meaning,
            "typed_name": typed_name,
            "role": role,
            "reason": reason,
            "expires_in_days": expires_in_days,
        }
        return self.session.post(
            path_of("models", model, "versions", version, "signoffs"),
            {k: v for k, v in body.items() if v is not None},
        )

    def revoke_signoff(self, signoff_id: int, reason: str) -> dict[str, Any]:
        return self.session.post(path_of("signoffs", signoff_id, "revoke"), {"reason": reason})

    # --- findings and revalidation ---------------------------------------------------------

    def findings(
        self, model: str, version: int | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Findings of a model (or one version), newest first, each with its history."""
        params = {k: v for k, v in {"version": version, "status": status}.items() if v}
        return self.session.get(path_of("models", model, "findings"), **params)

    def finding(self, finding_id: int) -> dict[str, Any]:
        return self.session.get(path_of("findings", finding_id))

    def my_findings(self) -> list[dict[str, Any]]:
        return self.session.get("/findings/mine")

    def raise_finding(
        self,
        model: str,
        version: int,
        *,
        severity: str,
        text: str,
        owner: str,
        due_on: str,
        anchor: str = "",
    ) -> dict[str, Any]:
        """A finding for `owner` (e-mail or user id), due on `due_on` (YYYY-MM-DD)."""
        body = {
            "severity": severity,
            "text": text,
            "owner": str(owner),
            "due_on": due_on,
            "anchor": anchor,
        }
        return self.session.post(path_of("models", model, "versions", version, "findings"), body)

    def answer_finding(
        self, finding_id: int, note: str, *, file: str | Path | None = None
    ) -> dict[str, Any]:
        """The owner's remediation note, with an evidence document when `file` is given."""
        where = path_of("findings", finding_id, "answer")
        if file is not None:
            part = FilePart("file", Path(file).name, path=readable(file))
            return self.session.upload(where, Multipart.of({"note": note}, [part]))
        return self.session.post(where, {"note": note})

    def close_finding(self, finding_id: int, note: str = "") -> dict[str, Any]:
        return self.session.post(path_of("findings", finding_id, "close"), {"note": note})

    def reopen_finding(self, finding_id: int, note: str) -> dict[str, Any]:
        return self.session.post(path_of("findings", finding_id, "reopen"), {"note": note})

    def revalidations(self) -> list[dict[str, Any]]:
        """Live production versions you may see with their revalidation dates."""
        return self.session.get("/revalidations")

    def start_revalidation(self, model: str, version: int, reason: str = "") -> dict[str, Any]:
        return self.session.post(
            path_of("models", model, "versions", version, "revalidations"), {"reason": reason}
        )

    def revalidation_rounds(self, model: str, version: int) -> list[dict[str, Any]]:
        return self.session.get(path_of("models", model, "versions", version, "revalidations"))

    def pack(
        self, model: str, version: int, sink: IO[bytes], fmt: str = "pdf",
        progress: Progress | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Write the approval pack (PDF or HTML) into `sink`; return its name and type."""
        if fmt not in ("pdf", "html"):
            raise InvalidInput(f"The pack format {fmt!r} is not pdf or html.")
        headers = self.session.download(
            path_of("models", model, "versions", version, "pack"),
            sink,
            params={"format": fmt},
            progress=progress,
        )
        return {
            "content_type": headers.get("Content-Type", ""),
            "disposition": headers.get("Content-Disposition", ""),
        }

    # --- audit ---------------------------------------------------------------------------------

    def audit_events(
        self,
        model: str | None = None,
        action: str | None = None,
        limit: int | None = None,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        return self.session.get(
            "/audit/events", model=model, action=action, limit=limit, before_seq=before_seq
        )

    def audit_verify(self) -> dict[str, Any]:
        return self.session.get("/audit/verify")


def new_idempotency_key() -> str:
    return "quorum-" + uuid.uuid4().hex


def readable(path: str | Path) -> Path:
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"{file} is not a readable file; check the path.")
    return file


def model_part(estimator_or_path: Any) -> FilePart:
    """A model file as given, or a fitted estimator saved with skops (which runs no code)."""
    if isinstance(estimator_or_path, str | Path):
        file = readable(estimator_or_path)
        return FilePart("model_file", file.name, path=file)
    import skops.io as sio

    return FilePart("model_file", "model.skops", data=sio.dumps(estimator_or_path))


def table_part(field: str, data: Any, stem: str) -> FilePart:
    """A CSV / Parquet file as given, or a DataFrame written as Parquet."""
    if isinstance(data, str | Path):
        file = readable(data)
        return FilePart(field, file.name, path=file)
    if not hasattr(data, "to_parquet"):
        raise InvalidInput(
            f"The {stem} data must be a pandas DataFrame or the path of a CSV or Parquet file, "
            f"not {type(data).__name__}."
        )
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return FilePart(field, f"{stem}.parquet", data=buffer.getvalue())

"""Registration end to end on a real SQLite file: version fields, the hostile corpus, bad
evaluation files (the store left byte-for-byte unchanged) and champion/challenger."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io as sio
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sqlalchemy import func
from sqlmodel import select

from core import audit_anchor, demo, migrate, modelfile
from core.artifacts import ArtifactStore
from core.auth import SYSTEM, Principal
from core.config import get_settings
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.models import AuditEvent, Evaluation, ModelVersion, VersionState
from core.services import compare, deployments, registry, reviews, users, versions

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.fixtures.hostile import EXPECTED_REASONS, build_hostile_corpus  # noqa: E402

MODEL = "toy-scorer"
FEATURES = ["income", "debt", "age"]


@dataclass
class World:
    db: Database
    path: Path
    store: ArtifactStore
    dana: Principal
    riley: Principal


@pytest.fixture
def world(tmp_path: Path) -> World:
    path = tmp_path / "quorum.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    spec = registry.ModelSpec(
        name=MODEL,
        team=demo.DEMO_TEAM,
        task="binary_classification",
        target="defaulted",
        goal_metric="recall",
        goal_target=0.5,
    )
    registry.create_model(db, dana, spec)
    riley = users.principal_by_email(db, "riley@demo.quorum")
    yield World(db, path, ArtifactStore(tmp_path / "store"), dana, riley)
    db.dispose()


def training_frame(seed: int = 0, rows: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    frame["region"] = rng.choice(["north", "south", "east"], rows)
    noise = rng.normal(scale=0.7, size=rows)
    frame["defaulted"] = (frame["debt"] - frame["income"] + noise > 0).astype(int)
    return frame


def fit_logistic(seed: int = 0, c: float = 1.0) -> LogisticRegression:
    frame = training_frame(seed)
    return LogisticRegression(C=c).fit(frame[FEATURES], frame["defaulted"])


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def eval_bytes(seed: int = 1, with_region: bool = False) -> bytes:
    frame = training_frame(seed, rows=160)
    return csv_bytes(frame if with_region else frame.drop(columns="region"))


def upload(model_bytes: bytes, eval_file: bytes, **extra: object) -> versions.VersionUpload:
    return versions.VersionUpload(
        model=MODEL,
        model_file=model_bytes,
        model_filename=str(extra.pop("model_filename", "model.skops")),
        eval_file=eval_file,
        eval_filename=str(extra.pop("eval_filename", "evaluation.csv")),
        **extra,  # type: ignore[arg-type]
    )


def register(w: World, estimator: object, eval_file: bytes | None = None, **extra: object):
    data = eval_file if eval_file is not None else eval_bytes()
    return versions.register_version(
        w.db, w.dana, upload(sio.dumps(estimator), data, **extra), store=w.store
    )


def stored_files(store: ArtifactStore) -> list[str]:
    if not store.root.exists():
        return []
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def dump(path: Path, *, audit: bool = True) -> str:
    connection = sqlite3.connect(path)
    try:
        lines = connection.iterdump()
        return "\n".join(line for line in lines if audit or '"audit_event"' not in line)
    finally:
        connection.close()


def count(db: Database, table: type) -> int:
    with db.read() as session:
        return session.exec(select(func.count()).select_from(table)).one()


# --- a real registration --------------------------------------------------------------------


def test_register_logistic_regression_records_every_version_field(world: World) -> None:
    estimator = fit_logistic(c=0.5)
    model_bytes = sio.dumps(estimator)
    data = eval_bytes()
    train = training_frame(0)
    version = versions.register_version(
        world.db,
        world.dana,
        upload(
            model_bytes,
            data,
            notes="First try.",
            code_ref="git:abc123",
            tags={"owner": "risk"},
            training_data=train,
        ),
        store=world.store,
    )

    assert version.number == 1
    assert version.state == VersionState.REGISTERED
    assert version.artifact_sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert version.artifact_size == len(model_bytes)
    assert version.artifact_format == "skops"
    assert version.estimator_class.endswith("LogisticRegression")
    assert version.library_versions["sklearn"] == sklearn.__version__
    assert version.library_versions["numpy"] == np.__version__
    assert version.feature_names == FEATURES
    assert version.feature_types == dict.fromkeys(FEATURES, "numeric")
    assert version.params["C"] == 0.5
    assert version.parent_id is None
    assert version.notes == "First try." and version.code_ref == "git:abc123"
    assert version.tags == {"owner": "risk"}
    assert version.training_fingerprint["rows"] == len(train)
    assert version.training_fingerprint["columns"] == list(train.columns)
    assert len(version.training_fingerprint["sha256"]) == 64
    assert version.registered_by_id == world.dana.user_id
    # the file is stored under a generated name and reads back verified
    assert "model.skops" not in version.artifact_key
    stored = world.store.get(version.artifact_key, sha256=version.artifact_sha256)
    assert stored == model_bytes
    with world.db.read() as session:
        ev = versions.evaluation_of(session, version.id or 0)
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "version.registered"))
        (event,) = events.all()
    assert ev is not None
    assert ev.dataset_sha256 == hashlib.sha256(data).hexdigest()
    assert ev.n_rows == 160 and ev.target == "defaulted"
    metrics = ev.result["metrics"]
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"} <= set(metrics)
    assert 0.6 < metrics["accuracy"] <= 1.0
    assert ev.reference_profile, "the evaluation profile becomes the monitoring reference"
    assert event.details["artifact_sha256"] == version.artifact_sha256
    stored = world.store.get(version.artifact_key, sha256=version.artifact_sha256)
    loaded = modelfile.load_model_bytes(stored)
    x = training_frame(5)[FEATURES]
    assert (loaded.predict(x) == estimator.predict(x)).all()


def test_pipeline_with_categorical_feature_and_lineage(world: World) -> None:
    frame = training_frame(0)
    columns = [*FEATURES, "region"]
    pipeline = make_pipeline(
        make_column_transformer(
            (StandardScaler(), FEATURES), (OneHotEncoder(handle_unknown="ignore"), ["region"])
        ),
        LogisticRegression(),
    ).fit(frame[columns], frame["defaulted"])
    first = register(world, fit_logistic())
    second = register(world, pipeline, eval_bytes(with_region=True))
    third = register(world, fit_logistic(c=2.0), parent=1)

    assert second.estimator_class.endswith("Pipeline")
    assert second.feature_types == {**dict.fromkeys(FEATURES, "numeric"), "region": "categorical"}
    assert second.parent_id == first.id, "by default the parent is the latest version"
    assert third.parent_id == first.id, "an explicit parent is honoured"
    assert [second.number, third.number] == [2, 3]
    with pytest.raises(NotFound):
        register(world, fit_logistic(), parent=9)


# --- hostile files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    base = tmp_path_factory.mktemp("hostile")
    canary = base / "canary"
    return build_hostile_corpus(base / "files", canary), canary


def test_every_hostile_file_is_refused_audited_and_not_stored(
    world: World, corpus: tuple[dict[str, Path], Path]
) -> None:
    files, canary = corpus
    assert set(files) == set(EXPECTED_REASONS)
    register(world, fit_logistic())  # a good version first, so "nothing new" is meaningful
    files_before = stored_files(world.store)
    versions_before, evals_before = count(world.db, ModelVersion), count(world.db, Evaluation)
    data = eval_bytes()

    for name, path in files.items():
        audit_before = count(world.db, AuditEvent)
        raw = path.read_bytes()
        with pytest.raises(InvalidInput) as refused:
            versions.register_version(
                world.db,
                world.dana,
                upload(raw, data, model_filename=name),
                store=world.store,
            )
        assert EXPECTED_REASONS[name] in str(refused.value), name
        assert len(refused.value.user_message) > 30, name
        assert not canary.exists(), f"{name} ran code"
        assert stored_files(world.store) == files_before, f"{name} left a file behind"
        assert count(world.db, ModelVersion) == versions_before, name
        assert count(world.db, Evaluation) == evals_before, name
        with world.db.read() as session:
            added = session.exec(
                select(AuditEvent).where(AuditEvent.seq > audit_before).order_by(AuditEvent.seq)
            ).all()
        assert [e.action for e in added] == ["artifact.refused"], name
        assert added[0].details["sha256"] == hashlib.sha256(raw).hexdigest()
        assert added[0].details["filename"] == name
        assert added[0].actor_id == world.dana.user_id
    with world.db.read() as session:
        assert audit_anchor.verify(session, get_settings()).intact


# --- bad evaluation files --------------------------------------------------------------------


def _good_eval() -> pd.DataFrame:
    return training_frame(1, rows=160).drop(columns="region")


def _with_cell(column: str, value: object) -> bytes:
    frame = _good_eval().astype({column: object})
    frame.loc[0, column] = value
    return csv_bytes(frame)


BAD_EVAL_FILES: dict[str, tuple[bytes, list[str]]] = {
    "missing target": (csv_bytes(_good_eval().drop(columns="defaulted")), ["defaulted"]),
    "missing feature": (csv_bytes(_good_eval().drop(columns="debt")), ["debt", "missing"]),
    "wrong type": (_with_cell("debt", "lots"), ["debt", "numeric", "lots"]),
    "empty file": (b"", ["empty"]),
    "header only": (b"income,debt,age,defaulted\n", ["no data rows"]),
    "not utf-8": (
        csv_bytes(_good_eval().assign(note="ok")).replace(b"ok", "Zürich".encode("latin-1"), 1),
        ["UTF-8"],
    ),
    "formula cell": (
        csv_bytes(_good_eval().assign(region="north")).replace(b"north", b"=cmd|' /C calc'!A0", 1),
        ["formula", "region"],
    ),
    "infinite value": (_with_cell("income", "inf"), ["income", "infinite"]),
    "empty target": (_with_cell("defaulted", None), ["defaulted", "empty"]),
    "missing value": (_with_cell("age", None), ["NaN"]),
}


@pytest.mark.parametrize("case", list(BAD_EVAL_FILES), ids=lambda c: c.replace(" ", "-"))
def test_bad_evaluation_file_names_the_problem_and_changes_nothing(world: World, case: str) -> None:
    register(world, fit_logistic())
    data, expected = BAD_EVAL_FILES[case]
    files_before = stored_files(world.store)
    before = dump(world.path, audit=False)
    audit_before = count(world.db, AuditEvent)

    with pytest.raises(InvalidInput) as refused:
        register(world, fit_logistic(seed=3), data)

    message = str(refused.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert dump(world.path, audit=False) == before
    assert stored_files(world.store) == files_before
    with world.db.read() as session:
        added = session.exec(select(AuditEvent).where(AuditEvent.seq > audit_before)).all()
    # a model that fails inside its sandbox is recorded, by design; nothing else changes
    assert [e.action for e in added] in ([], ["sandbox.failed"]), case


# --- champion and challenger -------------------------------------------------------------------


def test_compare_with_parent_then_with_the_live_version(world: World) -> None:
    register(world, fit_logistic(seed=0, c=1.0))
    register(world, fit_logistic(seed=7, c=0.01))
    result = compare.compare(world.db, SYSTEM, MODEL, 2, store=world.store)
    assert (result.candidate, result.champion) == (2, 1)
    assert "parent" in result.champion_basis
    sentences = {row["name"]: row["sentence"] for row in result.rows}
    assert set(sentences) >= {"accuracy", "recall", "roc_auc"}
    recall = next(r for r in result.rows if r["name"] == "recall")
    if recall["delta"]:
        direction = "rose" if recall["delta"] > 0 else "fell"
        assert f"{direction} {abs(recall['delta']) * 100:.1f} points" in recall["sentence"]
    assert result.params_changed == [{"parameter": "C", "candidate": 0.01, "champion": 1.0}]
    assert "recall" in result.goal_candidate.lower()

    reviews.submit_for_review(world.db, world.dana, MODEL, 1)
    reviews.decide(world.db, world.riley, MODEL, 1, "approve", "fine")
    deployments.promote(world.db, world.riley, MODEL, 1, "production")
    register(world, fit_logistic(seed=9, c=0.3))  # v3, parent v2
    live = compare.compare(world.db, SYSTEM, MODEL, 3, store=world.store)
    assert live.champion == 1, "the live version is the champion, not the parent"
    assert "live in production" in live.champion_basis
    chosen = compare.compare(world.db, SYSTEM, MODEL, 3, 2, store=world.store)
    assert chosen.champion == 2 and chosen.champion_basis == "chosen by you"
    with pytest.raises(InvalidInput):
        compare.compare(world.db, SYSTEM, MODEL, 3, 3, store=world.store)


def test_compare_without_any_champion_says_why(world: World) -> None:
    register(world, fit_logistic())
    with pytest.raises(NotFound) as nothing:
        compare.compare(world.db, SYSTEM, MODEL, 1, store=world.store)
    assert "no version is live" in str(nothing.value)

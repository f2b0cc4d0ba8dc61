"""R5: malformed evaluation files (CSV and Parquet), model files (the hostile corpus and
broken files) and form fields, each through the real service. Each is refused with a clear
message naming the problem, nothing is written to the artifact store, and the SQLite file is
byte-for-byte unchanged after a checkpoint (a refused model file adds exactly one
'artifact.refused' audit event, by design, and nothing else; data on which the model itself
fails inside its sandbox adds exactly one 'sandbox.failed' event). A property test feeds
random bytes to the table reader."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sqlmodel import select

from core import demo, migrate, tables
from core.artifacts import ArtifactStore
from core.auth import Principal
from core.db import Database
from core.errors import InvalidInput, QuorumError, SandboxFailure, UnsafeArtifact
from core.models import AuditEvent
from core.services import registry, reviews, users, versions

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.fixtures.hostile import EXPECTED_REASONS, build_hostile_corpus  # noqa: E402

MODEL = "sweep-scorer"
FEATURES = ["income", "debt", "age"]
TARGET = "defaulted"


@dataclass
class World:
    db: Database
    path: Path
    store: ArtifactStore
    dana: Principal
    admin: Principal
    model_file: bytes


def frame(rows: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, 3)), columns=FEATURES)
    data[TARGET] = (data["debt"] - data["income"] > 0).astype(int)
    return data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One store for the whole sweep: each case proves it left the store unchanged."""
    base = tmp_path_factory.mktemp("sweep")
    path = base / "quorum.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database(url)
    demo.seed(db, with_models=False)
    dana = users.principal_by_email(db, "dana@demo.quorum")
    admin = users.principal_by_email(db, "ada@demo.quorum")
    spec = registry.ModelSpec(
        name=MODEL, team=demo.DEMO_TEAM, task="binary_classification", target=TARGET
    )
    registry.create_model(db, dana, spec)
    train = frame(200, seed=0)
    model_file = sio.dumps(LogisticRegression().fit(train[FEATURES], train[TARGET]))
    store = ArtifactStore(base / "artifacts")
    upload = versions.VersionUpload(MODEL, model_file, "m.skops", csv(frame()), "eval.csv")
    versions.register_version(db, dana, upload, store=store)
    yield World(db, path, store, dana, admin, model_file)
    db.dispose()


def csv(data: pd.DataFrame) -> bytes:
    return data.to_csv(index=False).encode()


def parquet(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


def checkpointed_sha256(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dump_without_audit(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [line for line in connection.iterdump() if '"audit_event"' not in line]
    finally:
        connection.close()


# --- evaluation files ----------------------------------------------------------------------------


def _with(column: str, values: object) -> bytes:
    data = frame()
    data[column] = data[column].astype(object)
    data.loc[3, column] = values
    return csv(data)


def _parquet_with(column: str, value: object) -> bytes:
    data = frame()
    data[column] = data[column].astype(float)
    data.loc[2, column] = value
    return parquet(data)


GOOD_CSV = csv(frame())
HEADER = b"income,debt,age,defaulted\n"
EVAL_CASES: dict[str, tuple[bytes, str, str]] = {
    # name: (file bytes, file name, text the refusal must contain)
    "missing_feature": (csv(frame().drop(columns="debt")), "e.csv", "debt"),
    "missing_target": (csv(frame().drop(columns=TARGET)), "e.csv", TARGET),
    "nan_in_feature": (_with("debt", np.nan), "e.csv", "debt"),
    "text_in_numeric": (_with("age", "forty"), "e.csv", "age"),
    "nan_in_target": (_with(TARGET, np.nan), "e.csv", TARGET),
    "inf_in_feature": (_with("income", np.inf), "e.csv", "income"),
    "empty_file": (b"", "e.csv", "empty"),
    "header_only": (HEADER, "e.csv", "header"),
    "whitespace_only": (b"   \n\n  \n", "e.csv", "e.csv"),
    "bad_encoding": (HEADER + b"1,2,3,\xff\xfe\n", "e.csv", "UTF-8"),
    "formula_cell": (_with("age", '=HYPERLINK("http://x")'), "e.csv", "formula"),
    "duplicate_headers": (b"income,debt,debt,defaulted\n1,2,3,0\n4,5,6,1\n", "e.csv", "debt"),
    "ragged_rows": (HEADER + b"1,2,3,0\n4,5,6,1,7,8\n9,10\n", "e.csv", "e.csv"),
    "huge_field": (HEADER + b"1,2," + b"9" * 300_000 + b",0\n", "e.csv", "field larger"),
    "binary_junk_as_csv": (bytes(range(256)) * 40, "junk.csv", "junk.csv"),
    "zip_as_csv": (b"PK\x03\x04" + b"\x00" * 200, "book.csv", "ZIP"),
    "pickle_as_csv": (b"\x80\x04\x95" + b"\x00" * 50, "p.csv", "pickle"),
    "nul_bytes": (HEADER + b"1,2,\x00,0\n", "e.csv", "e.csv"),
    "overlong_header": (
        b"income,debt,age,defaulted," + b"x" * 400 + b"\n1,2,3,0,5\n",
        "e.csv",
        "e.csv",
    ),
    "parquet_missing_feature": (parquet(frame().drop(columns="age")), "e.parquet", "age"),
    "parquet_nan_target": (_parquet_with(TARGET, np.nan), "e.parquet", TARGET),
    "parquet_inf": (_parquet_with("debt", -np.inf), "e.parquet", "debt"),
    "parquet_truncated": (parquet(frame())[:60], "e.parquet", "e.parquet"),
    "parquet_header_only": (parquet(frame().iloc[:0]), "e.parquet", "e.parquet"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_malformed_evaluation_file_is_refused_and_the_store_is_unchanged(
    world: World, case: str
) -> None:
    data, filename, named = EVAL_CASES[case]
    upload = versions.VersionUpload(MODEL, world.model_file, "m.skops", data, filename)
    keys, before = world.store.keys(), checkpointed_sha256(world.path)
    rows_before = dump_without_audit(world.path)
    with pytest.raises(InvalidInput) as refused:
        versions.register_version(world.db, world.dana, upload, store=world.store)
    message = refused.value.user_message + " " + " ".join(refused.value.details)
    assert named.lower() in message.lower(), message
    if isinstance(refused.value, SandboxFailure):  # the model itself failed on the data:
        assert dump_without_audit(world.path) == rows_before  # recorded, nothing else
        assert last_actions(world, 1) == ["sandbox.failed"]
    else:
        assert checkpointed_sha256(world.path) == before
    assert world.store.keys() == keys


def last_actions(world: World, n: int) -> list[str]:
    with world.db.read() as session:
        events = session.exec(
            select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(n)  # type: ignore[attr-defined]
        ).all()
    return [e.action for e in reversed(events)]


# --- model files ---------------------------------------------------------------------------------

BROKEN_MODELS = {
    "half_a_skops_file": ("m.skops", lambda good: good[: len(good) // 2], "truncated"),
    "zero_bytes": ("m.skops", lambda good: b"", "empty"),
    "random_bytes": ("m.joblib", lambda good: np.random.default_rng(3).bytes(5000), "model"),
    "csv_as_model": ("m.pkl", lambda good: GOOD_CSV, "model"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hostile")
    return build_hostile_corpus(base / "corpus", base / "canary")


def assert_refused_with_one_audit_event(
    world: World, model_bytes: bytes, filename: str, named: str
) -> None:
    upload = versions.VersionUpload(MODEL, model_bytes, filename, GOOD_CSV, "eval.csv")
    keys, before = world.store.keys(), dump_without_audit(world.path)
    with world.db.read() as session:
        last = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()  # type: ignore[attr-defined]
    assert last is not None
    with pytest.raises(InvalidInput) as refused:
        versions.register_version(world.db, world.dana, upload, store=world.store)
    message = refused.value.user_message + " " + " ".join(refused.value.details)
    assert named.lower() in message.lower(), message
    with world.db.read() as session:
        added = session.exec(select(AuditEvent).where(AuditEvent.seq > last.seq)).all()
    assert [e.action for e in added] == ["artifact.refused"]
    assert dump_without_audit(world.path) == before
    assert world.store.keys() == keys


@pytest.mark.parametrize("name", sorted(EXPECTED_REASONS))
def test_hostile_model_file_is_refused(world: World, hostile: dict[str, Path], name: str) -> None:
    assert_refused_with_one_audit_event(
        world, hostile[name].read_bytes(), name, EXPECTED_REASONS[name]
    )


@pytest.mark.parametrize("case", sorted(BROKEN_MODELS))
def test_broken_model_file_is_refused(world: World, case: str) -> None:
    filename, damage, named = BROKEN_MODELS[case]
    assert_refused_with_one_audit_event(world, damage(world.model_file), filename, named)


def test_unsafe_files_are_refused_as_unsafe(world: World, hostile: dict[str, Path]) -> None:
    upload = versions.VersionUpload(
        MODEL, hostile["reduce_os_system.pkl"].read_bytes(), "x.pkl", GOOD_CSV, "e.csv"
    )
    with pytest.raises(UnsafeArtifact):
        versions.register_version(world.db, world.dana, upload, store=world.store)


# --- form fields ---------------------------------------------------------------------------------

Call = Callable[[World], object]


def _model(name: str, **extra: object) -> Call:
    def call(w: World) -> object:
        spec = registry.ModelSpec(
            name=name,
            team=demo.DEMO_TEAM,
            task="binary_classification",
            **extra,  # type: ignore[arg-type]
        )
        return registry.create_model(w.db, w.dana, spec)

    return call


def _team(name: str, description: str = "") -> Call:
    return lambda w: users.create_team(w.db, w.admin, name, description)


def _user(address: str, name: str = "New Person") -> Call:
    return lambda w: users.create_user(w.db, w.admin, address, name)


def _comment(body: str, anchor: str = "") -> Call:
    return lambda w: reviews.add_comment(w.db, w.dana, MODEL, 1, body, anchor=anchor)


def _register_with(**extra: object) -> Call:
    def call(w: World) -> object:
        upload = versions.VersionUpload(
            MODEL,
            w.model_file,
            "m.skops",
            GOOD_CSV,
            "eval.csv",
            **extra,  # type: ignore[arg-type]
        )
        return versions.register_version(w.db, w.dana, upload, store=w.store)

    return call


FORM_CASES: dict[str, tuple[Call, str]] = {
    "model_name_dotdot": (_model("../../etc/passwd"), "model name"),
    "model_name_dotdot_inside": (_model("credit..scorer"), "model name"),
    "model_name_control": (_model("scorer\x00x"), "model name"),
    "model_name_html": (_model("<script>alert(1)</script>"), "model name"),
    "model_name_overlong": (_model("m" * 200), "model name"),
    "model_name_blank": (_model("   "), "model name"),
    "model_purpose_control": (_model("fine-name", purpose="bell\x07"), "purpose"),
    "model_tag_control_key": (_model("fine-name", tags={"k\x1b": "v"}), "tag name"),
    "model_bad_task": (
        lambda w: registry.create_model(
            w.db, w.dana, registry.ModelSpec(name="fine-name", team=demo.DEMO_TEAM, task="magic")
        ),
        "task",
    ),
    "team_name_dotdot": (_team("../admins"), "team name"),
    "team_name_html": (_team("<b>team</b>"), "team name"),
    "team_name_bidi_control": (_team("team\u202eevil"), "team name"),
    "team_description_overlong": (_team("fine-team", "d" * 600), "team description"),
    "email_plain_word": (_user("not-an-email"), "email"),
    "email_html": (_user("<x>@evil.com"), "email"),
    "email_newline": (_user("a\n@b.com"), "email"),
    "user_name_control": (_user("new@example.com", "Eve\x1b[31m"), "name"),
    "comment_empty": (_comment("   "), "comment"),
    "comment_control": (_comment("hello\x00world"), "comment"),
    "comment_overlong": (_comment("x" * 5001), "comment"),
    "comment_anchor_overlong": (_comment("fine", anchor="a" * 200), "pinned"),
    "tag_pair_without_equals": (lambda w: registry.parse_tag_pairs(["owner"]), "key=value"),
    "version_notes_control": (_register_with(notes="ok\x08"), "notes"),
    "version_tags_too_many": (_register_with(tags={f"k{i}": "v" for i in range(25)}), "tags"),
}


@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_malformed_form_field_is_refused_and_the_store_is_unchanged(
    world: World, case: str
) -> None:
    call, named = FORM_CASES[case]
    keys, before = world.store.keys(), checkpointed_sha256(world.path)
    with pytest.raises(InvalidInput) as refused:
        call(world)
    assert named.lower() in refused.value.user_message.lower(), refused.value.user_message
    assert checkpointed_sha256(world.path) == before
    assert world.store.keys() == keys


def test_the_sweep_has_at_least_forty_inputs() -> None:
    total = len(EVAL_CASES) + len(EXPECTED_REASONS) + len(BROKEN_MODELS) + len(FORM_CASES)
    assert total >= 40


# --- the table reader never fails with anything but InvalidInput -----------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=200).map(lambda b: b"PAR1" + b),
        st.lists(
            st.text(alphabet=st.characters(codec="utf-8"), max_size=12), min_size=1, max_size=6
        ).map(lambda cells: ("a,b,c\n" + ",".join(cells) + "\n").encode()),
    ),
    name=st.sampled_from(["data.csv", "data.parquet", "data.bin"]),
)
def test_random_bytes_either_parse_or_are_refused_clearly(data: bytes, name: str) -> None:
    try:
        parsed = tables.read_table(data, name)
    except QuorumError as refused:
        assert isinstance(refused, InvalidInput)
        assert refused.user_message.strip()
        return
    assert isinstance(parsed, pd.DataFrame)

"""Shared fixtures: stores on a real SQLite file and on PostgreSQL, demo data, principals."""

from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core import config, demo, migrate
from core.auth import Principal, principal_for
from core.db import Database
from core.demo.models import DEMO_CARDS
from core.models import Role, User
from core.services import registry
from core.services import users as users_service

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ENV = "QUORUM_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "QUORUM_REQUIRE_POSTGRES"

DEMO_EMAIL_BY_ROLE: dict[Role, str] = {
    Role.DATA_SCIENTIST: "dana@demo.quorum",
    Role.REVIEWER: "riley@demo.quorum",
    Role.COMPLIANCE: "casey@demo.quorum",
    Role.BUSINESS: "blake@demo.quorum",
    Role.ADMIN: "ada@demo.quorum",
}
NO_ROLE_EMAIL = "nobody@demo.quorum"

PrincipalFactory = Callable[[Role | None], Principal]


@pytest.fixture(scope="session", autouse=True)
def _artifact_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Artifacts written by tests go to a temporary directory, never to var/."""
    previous = os.environ.get("QUORUM_ARTIFACT_STORE")
    os.environ["QUORUM_ARTIFACT_STORE"] = str(tmp_path_factory.mktemp("artifacts"))
    yield
    if previous is None:
        os.environ.pop("QUORUM_ARTIFACT_STORE", None)
    else:
        os.environ["QUORUM_ARTIFACT_STORE"] = previous


@pytest.fixture(scope="session", autouse=True)
def _audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Development audit keys and checkpoints go to a temporary directory, never to var/;
    no test process starts the background scheduler unless a test asks for one."""
    saved = {name: os.environ.get(name) for name in ("QUORUM_AUDIT_DIR", "QUORUM_SCHEDULER")}
    os.environ["QUORUM_AUDIT_DIR"] = str(tmp_path_factory.mktemp("audit"))
    os.environ["QUORUM_SCHEDULER"] = "off"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process; every test starts and ends without a cached copy."""
    config.reset_settings()
    yield
    config.reset_settings()


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """AppTest leaves its page script installed as sys.modules['__main__']; a process
    spawned later in the same worker would then re-run that page. Put the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


# --- SQLite --------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite file, new for every test."""
    return f"sqlite:///{tmp_path / 'quorum.db'}"


# --- PostgreSQL ----------------------------------------------------------------------------


def _server_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        message = f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {message}", pytrace=False)
        pytest.skip(message)
    return url


def _admin_dsn(url: str) -> str:
    """A plain libpq DSN for psycopg, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_postgres_database(server_url: str, prefix: str = "quorum_test") -> str:
    """Create an empty, uniquely named database on the server; returns its SQLAlchemy URL."""
    import psycopg

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, database_url: str) -> None:
    import psycopg

    name = make_url(database_url).database
    with psycopg.connect(_admin_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_postgres_url(_postgres_session_database: str) -> Iterator[str]:
    """An empty PostgreSQL schema, first on the search path, for tests that must start from
    nothing (migrations). A schema, not a database: CREATE/DROP DATABASE can wait for a
    checkpoint behind other workers' writes."""
    import psycopg

    schema = f"empty_{uuid.uuid4().hex[:12]}"
    dsn = _admin_dsn(_postgres_session_database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(_postgres_session_database).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def _postgres_session_database() -> Iterator[str]:
    server = _server_url()
    url = create_postgres_database(server)
    yield url
    drop_postgres_database(server, url)


@pytest.fixture
def postgres_url(_postgres_session_database: str) -> str:
    """This test session's own PostgreSQL database (unique per xdist worker)."""
    return _postgres_session_database


@pytest.fixture(scope="session")
def _postgres_migrated(_postgres_session_database: str) -> str:
    migrate.upgrade(_postgres_session_database)
    return _postgres_session_database


def _truncate_all(url: str) -> None:
    database = Database(url)
    try:
        with database.engine.begin() as conn:
            # the audit table refuses TRUNCATE by trigger; a test reset is the one exception
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            names = conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            ).scalars()
            quoted = ", ".join(f'"{n}"' for n in names)
            if quoted:
                conn.exec_driver_sql(f"TRUNCATE TABLE {quoted} RESTART IDENTITY CASCADE")
    finally:
        database.dispose()


# --- a migrated, empty store on either backend ------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests get a copy (faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _copy_sqlite(source: Path, url: str) -> None:
    target = make_url(url).database
    assert target
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of a migrated, empty store: a new SQLite file, or the session's PostgreSQL database
    emptied with TRUNCATE ... RESTART IDENTITY."""
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        _copy_sqlite(request.getfixturevalue("_sqlite_template"), url)
        return url
    url = request.getfixturevalue("_postgres_migrated")
    _truncate_all(url)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def seeded_db(db: Database) -> Database:
    """The full demo store, trained model versions included (takes seconds: use sparingly)."""
    demo.seed(db, with_models=True)
    return db


BARE_MODELS = (
    registry.ModelSpec(
        name="credit-default-scorer",
        team=demo.DEMO_TEAM,
        task="binary_classification",
        purpose="Scores loan applications for the probability of default.",
        risk_tier="high",
        target="default",
    ),
    registry.ModelSpec(
        name="bike-demand-forecaster",
        team=demo.DEMO_TEAM,
        task="regression",
        purpose="Forecasts hourly bike rentals.",
        target="bikers",
    ),
)


@pytest.fixture
def people_db(db: Database) -> Database:
    """The demo team and people, and two models without versions, owned by Dana (fast)."""
    demo.seed(db, with_models=False)
    owner = users_service.principal_by_email(db, DEMO_EMAIL_BY_ROLE[Role.DATA_SCIENTIST])
    for spec in BARE_MODELS:
        model = registry.create_model(db, owner, spec)
        if spec.name in DEMO_CARDS:  # the high-risk policy requires a written card, as in the demo
            card = {"purpose": spec.purpose, **DEMO_CARDS[spec.name]}
            registry.update_card(db, owner, model.id or 0, card, row_version=model.row_version)
    return db


def _no_role_user(database: Database) -> User:
    from sqlmodel import select

    with database.write() as session:
        user = session.exec(select(User).where(User.email == NO_ROLE_EMAIL)).first()
        if user is None:
            user = User(email=NO_ROLE_EMAIL, name="Nora Noroles", is_demo=True)
            session.add(user)
            session.flush()
        return user


def principal_of(database: Database, role: Role | None) -> Principal:
    """The demo person holding `role` (None: a signed-in person with no role at all)."""
    if role is None:
        user = _no_role_user(database)
        with database.read() as session:
            return principal_for(session, user)
    return users_service.principal_by_email(database, DEMO_EMAIL_BY_ROLE[role])


@pytest.fixture
def principal(people_db: Database) -> PrincipalFactory:
    """`principal(Role.REVIEWER)` is Riley, as the store holds her now; `principal(None)` has
    no role. The demo people live in `people_db` (the same store as `db`)."""
    return lambda role: principal_of(people_db, role)

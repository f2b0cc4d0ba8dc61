"""A real Quorum server for API tests: `streamlit run app.py` on a free loopback port, on a copy
of a store seeded by `quorum demo seed`, on SQLite and on PostgreSQL; httpx is the client.

The seeded store is built once per backend and session (seeding takes most of a minute); each
test module gets its own copy (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on
PostgreSQL) and its own server, with an access token per demo person.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from core.db import Database
from core.services import users
from tests.fixtures.quorum_server import (
    drop_postgres_database,
    free_port,
    log_tail,
    new_postgres_database,
    postgres_server_or_skip,
    start_app,
    stop_process,
    wait_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
API_AUDIT_KEY = "api-tests-audit-key-" + "7" * 32
MAX_UPLOAD_MB = 8  # above the demo models (about 4 MB), below what the 413 test sends
PEOPLE = {
    "dana": "dana@demo.quorum",
    "sam": "sam@demo.quorum",
    "riley": "riley@demo.quorum",
    "morgan": "morgan@demo.quorum",
    "casey": "casey@demo.quorum",
    "blake": "blake@demo.quorum",
    "ada": "ada@demo.quorum",
}


@dataclass(frozen=True)
class Store:
    url: str
    artifacts: Path

    def env(self) -> dict[str, str]:
        return {"QUORUM_DATABASE_URL": self.url, "QUORUM_ARTIFACT_STORE": str(self.artifacts)}

    @property
    def sqlite_path(self) -> Path | None:
        parsed = make_url(self.url)
        return Path(parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def _quorum(args: list[str], store: Store, log: Path) -> None:
    env = {**os.environ, **store.env(), "OMP_NUM_THREADS": "1"}
    with log.open("a") as out:
        done = subprocess.run(
            [sys.executable, "-m", "core.entry", "admin", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=600,
        )
    if done.returncode != 0:
        raise RuntimeError(f"quorum admin {' '.join(args)} failed:\n{log.read_text()[-3000:]}")


def _seed(store: Store, log: Path) -> Store:
    _quorum(["db", "upgrade"], store, log)
    _quorum(["demo", "seed"], store, log)
    return store


def _postgres_server() -> str:
    return postgres_server_or_skip("API tests on PostgreSQL")


def _new_database(server: str, template: str | None = None) -> str:
    return new_postgres_database(server, "quorum_api", template)


def _drop_database(server: str, url: str) -> None:
    drop_postgres_database(server, url)


@pytest.fixture(scope="session", autouse=True)
def _api_audit_key() -> Iterator[None]:
    """One audit key for the seed, its copies, the servers and the tests' own service calls
    (the development key is per store location, and every copy has its own location)."""
    from core import config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUORUM_AUDIT_KEY", API_AUDIT_KEY)
        config.reset_settings()
        yield
    config.reset_settings()


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """QUORUM_API_SEEDED_DIR=DIR reuses (or first fills) a seeded SQLite store across runs."""
    reuse = os.environ.get("QUORUM_API_SEEDED_DIR")
    directory = Path(reuse) if reuse else tmp_path_factory.mktemp("api-seeded-sqlite")
    store = Store(f"sqlite:///{directory / 'quorum.db'}", directory / "artifacts")
    if reuse and (directory / "quorum.db").exists():
        return store
    directory.mkdir(parents=True, exist_ok=True)
    return _seed(store, directory / "seed.log")


@pytest.fixture(scope="session")
def seeded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    server = _postgres_server()
    directory = tmp_path_factory.mktemp("api-seeded-postgres")
    store = Store(_new_database(server), directory / "artifacts")
    yield _seed(store, directory / "seed.log")
    _drop_database(server, store.url)


def _copy(seeded: Store, directory: Path) -> Store:
    shutil.copytree(seeded.artifacts, directory / "artifacts")
    source = seeded.sqlite_path
    if source is not None:
        target = directory / "quorum.db"
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        return Store(f"sqlite:///{target}", directory / "artifacts")
    server = _postgres_server()
    return Store(_new_database(server, make_url(seeded.url).database), directory / "artifacts")


@dataclass
class Server:
    """One `streamlit run app.py` serving pages and /api/v1 on one port."""

    store: Store
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def database(self) -> Database:
        return Database(self.store.url)

    def client(self, who: str | None = None, token: str | None = None) -> httpx.Client:
        secret = token if token is not None else (self.tokens[who] if who else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=300)

    def start(self, timeout: float = 90.0) -> Server:
        env = {
            **os.environ,
            **self.store.env(),
            "QUORUM_AUTH": "demo",
            "QUORUM_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
            "OMP_NUM_THREADS": "1",
        }
        self.process = start_app(self.port, env, self.log)
        try:
            wait_healthy(f"{self.url}/_stcore/health", self.process, self.log, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log, chars)

    def stop(self) -> None:
        stop_process(self.process)


def _issue_tokens(store: Store) -> dict[str, str]:
    database = Database(store.url)
    try:
        return {
            who: users.issue_token_as_operator(database, address, f"api-tests-{who}").secret
            for who, address in PEOPLE.items()
        }
    finally:
        database.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    seeded: Store = request.getfixturevalue(f"seeded_{request.param}")
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    store = _copy(seeded, directory)
    running = Server(store, directory / "streamlit.log", _issue_tokens(store)).start()
    yield running
    running.stop()
    if store.sqlite_path is None:
        _drop_database(_postgres_server(), store.url)

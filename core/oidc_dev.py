"""Try the real OpenID Connect login on one machine: a local provider and the secrets file.

    python -m core.oidc_dev --port 9400 --app-port 8501 [--run-app]

starts oidc-provider-mock on 127.0.0.1:9400 with the sample people below, writes
var/secrets.toml (the `[auth]` section st.login reads) and prints the command that starts
Quorum against it; --run-app starts Quorum too. On the provider's page, press a person's
button (or type a subject): their claims, roles included, reach Quorum as if from a company
identity provider.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from secrets import token_hex
from typing import Any

from sqlmodel import select

from core.config import PROJECT_ROOT, Settings
from core.db import Database

CLIENT_ID = "quorum-local"
CLIENT_SECRET = "quorum-local-client-secret"  # noqa: S105  (accepted by the local provider only)
ROLES_CLAIM = "roles"
DEFAULT_SECRETS = PROJECT_ROOT / "var" / "secrets.toml"

# Subject, e-mail, name and Quorum roles (values of core.models.Role) of the sample people.
SAMPLE_USERS: tuple[dict[str, Any], ...] = (
    {
        "sub": "alice",
        "email": "alice@example.com",
        "name": "Alice Reviewer",
        "roles": ["reviewer"],
    },
    {
        "sub": "dev",
        "email": "dev@example.com",
        "name": "Dev Scientist",
        "roles": ["data_scientist"],
    },
    {
        "sub": "carmen",
        "email": "carmen@example.com",
        "name": "Carmen Compliance",
        "roles": ["compliance_officer"],
    },
    {
        "sub": "bo",
        "email": "bo@example.com",
        "name": "Bo Business",
        "roles": ["business_stakeholder"],
    },
    {"sub": "root", "email": "root@example.com", "name": "Root Admin", "roles": ["admin"]},
)


def oidc_settings(
    provider_port: int, app_port: int, base: Settings | None = None, host: str = "127.0.0.1"
) -> Settings:
    """Settings for QUORUM_AUTH=oidc against the local provider on `provider_port`."""
    return dataclasses.replace(
        base or Settings(),
        auth="oidc",
        cookie_secret=token_hex(32),  # new for every run: never a public default
        oidc_server_metadata_url=f"http://{host}:{provider_port}/.well-known/openid-configuration",
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_redirect_uri=f"http://{host}:{app_port}/oauth2callback",
        oidc_roles_claim=ROLES_CLAIM,
    )


def app_env(settings: Settings) -> dict[str, str]:
    """The QUORUM_* variables that make the app read `settings`' sign-in part."""
    return {
        "QUORUM_AUTH": settings.auth,
        "QUORUM_COOKIE_SECRET": settings.cookie_secret,
        "QUORUM_OIDC_SERVER_METADATA_URL": settings.oidc_server_metadata_url,
        "QUORUM_OIDC_CLIENT_ID": settings.oidc_client_id,
        "QUORUM_OIDC_CLIENT_SECRET": settings.oidc_client_secret,
        "QUORUM_OIDC_REDIRECT_URI": settings.oidc_redirect_uri,
        "QUORUM_OIDC_ROLES_CLAIM": settings.oidc_roles_claim,
    }


def map_sample_roles(db: Database) -> list[str]:
    """Role mappings for the sample people's roles claim (a claim grants nothing without
    one): each value maps to the role of that name, in the demo team when it exists."""
    from core.auth import OPERATOR
    from core.demo import DEMO_TEAM
    from core.errors import Conflict
    from core.models import Role, Team
    from core.services import users

    with db.read() as session:
        team = session.exec(select(Team).where(Team.name == DEMO_TEAM)).first()
    added = []
    for value in sorted({r for u in SAMPLE_USERS for r in u["roles"]}):
        scoped = team is not None and value not in (Role.ADMIN, Role.COMPLIANCE)
        try:
            users.add_role_mapping(db, OPERATOR, value, value, team.id if scoped and team else None)
            added.append(value)
        except Conflict:
            continue
    return added


def write_secrets(settings: Settings, path: Path = DEFAULT_SECRETS) -> Path:
    """Write the `[auth]` section for st.login; readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings.oidc_secrets_toml())
    path.chmod(0o600)
    return path


def streamlit_args(app_port: int, secrets: Path) -> list[str]:
    """`streamlit run` arguments for Quorum on 127.0.0.1:`app_port` reading `secrets`."""
    return [
        "run",
        "app.py",
        f"--server.port={app_port}",
        "--server.address=127.0.0.1",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        f"--secrets.files={secrets}",
    ]


def app_command(settings: Settings, app_port: int, secrets: Path) -> str:
    """The shell command that starts Quorum against the local provider."""
    env = " ".join(f"{key}={shlex.quote(value)}" for key, value in app_env(settings).items())
    args = " ".join(shlex.quote(a) for a in streamlit_args(app_port, secrets))
    return f"{env} .venv/bin/streamlit {args}"


def _run_app(settings: Settings, app_port: int, secrets: Path) -> int:
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [str(streamlit), *streamlit_args(app_port, secrets)]
    env = {**os.environ, **app_env(settings)}
    return subprocess.call(command, cwd=PROJECT_ROOT, env=env)  # noqa: S603


@contextmanager
def running_provider(port: int, users: Sequence[Mapping[str, Any]] = SAMPLE_USERS) -> Iterator[int]:
    """oidc-provider-mock on 127.0.0.1:`port` (0: any free port) with `users`; yields the port."""
    try:
        from oidc_provider_mock import User, run_server_in_thread
    except ImportError as error:
        raise SystemExit(
            "oidc-provider-mock is not installed: run .venv/bin/pip install "
            "'oidc-provider-mock>=0.3,<0.4' (it is part of the test extras)."
        ) from error
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on this machine only
    people = [
        User(sub=str(u["sub"]), claims={k: v for k, v in u.items() if k != "sub"}) for u in users
    ]
    with run_server_in_thread(port=port, user_claims=people) as server:
        yield int(server.server_port)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.oidc_dev",
        description="Run a local OpenID Connect provider and print how to start Quorum with it.",
    )
    parser.add_argument("--port", type=int, default=9400, help="provider port (default 9400)")
    parser.add_argument("--app-port", type=int, default=8501, help="Quorum port (default 8501)")
    parser.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="file to write")
    parser.add_argument(
        "--run-app", action="store_true", help="also start Quorum (streamlit) against it"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    with running_provider(args.port) as port:
        settings = oidc_settings(port, args.app_port)
        mapped = map_sample_roles(Database(settings.database_url))
        if mapped:
            print(f"Mapped the roles claim values {', '.join(mapped)} to roles (Admin page).")
        secrets = write_secrets(settings, args.secrets)
        print(f"OpenID Connect provider: http://127.0.0.1:{port}")
        print(f"Wrote {secrets} ([auth] for st.login).")
        print("Sample people (press their button on the provider's page):")
        for user in SAMPLE_USERS:
            print(f"  {user['sub']:<8} {user['name']:<18} roles: {', '.join(user['roles'])}")
        if args.run_app:
            print(f"Quorum: http://127.0.0.1:{args.app_port}  (press Sign in; Ctrl+C stops both)")
            sys.stdout.flush()
            try:
                return _run_app(settings, args.app_port, secrets)
            except KeyboardInterrupt:
                return 0
        print("\nIn another terminal, from the project folder, start Quorum with:\n")
        print(f"  {app_command(settings, args.app_port, secrets)}\n")
        print(f"then open http://127.0.0.1:{args.app_port} and press Sign in. Ctrl+C stops.")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nProvider stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

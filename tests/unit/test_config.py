"""R9: settings from QUORUM_* variables; production refuses unsafe ones, naming what to set."""

from __future__ import annotations

import base64
import subprocess
import tomllib
from pathlib import Path

import pytest

from core import config
from core.config import DEFAULT_SECRET, PROJECT_ROOT, Settings
from core.errors import ConfigurationError

STRONG = "s" * 40
OTHER_STRONG = "c" * 40
OIDC = {
    "QUORUM_AUTH": "oidc",
    "QUORUM_OIDC_SERVER_METADATA_URL": "https://id.example.com/.well-known/openid-configuration",
    "QUORUM_OIDC_CLIENT_ID": "quorum",
    "QUORUM_OIDC_CLIENT_SECRET": "client-secret",
}
AUDIT_KEY = "a" * 40
SIGNING_KEY = base64.b64encode(b"k" * 32).decode()  # 32 raw private bytes, base64
GOOD_PRODUCTION = {
    "QUORUM_ENV": "production",
    "QUORUM_SECRET_KEY": STRONG,
    "QUORUM_COOKIE_SECRET": OTHER_STRONG,
    "QUORUM_AUDIT_KEY": AUDIT_KEY,
    "QUORUM_AUDIT_SIGNING_KEY": SIGNING_KEY,
    **OIDC,
}


def problems_for(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(environ)
    assert "cannot start" in refused.value.user_message
    assert refused.value.details
    return refused.value.details


def test_development_defaults_work() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development" and not settings.is_production
    assert settings.demo_login
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'quorum.db'}"
    assert settings.artifact_store == str(PROJECT_ROOT / "var" / "artifacts")
    assert settings.secret_key == DEFAULT_SECRET
    assert settings.environments == ("staging", "production")
    assert settings.problems() == []


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "QUORUM_DATABASE_URL": "postgresql+psycopg://q@db/quorum",
            "QUORUM_ARTIFACT_STORE": "/srv/artifacts",
            "QUORUM_ENV": " Development ",
            "QUORUM_ADMIN_EMAILS": "a@example.com, b@example.com,",
            "QUORUM_ENVIRONMENTS": "dev,prod",
            "QUORUM_MAX_UPLOAD_MB": "50",
            "QUORUM_OIDC_ROLES_CLAIM": "groups",
        }
    )
    assert settings.database_url == "postgresql+psycopg://q@db/quorum"
    assert settings.artifact_store == "/srv/artifacts"
    assert settings.env == "development"
    assert settings.admin_emails == ("a@example.com", "b@example.com")
    assert settings.environments == ("dev", "prod")
    assert settings.max_upload_mb == 50
    assert settings.oidc_roles_claim == "groups"


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = Settings.from_env(GOOD_PRODUCTION)
    assert settings.is_production and not settings.demo_login


def test_production_refuses_demo_login() -> None:
    details = problems_for({**GOOD_PRODUCTION, "QUORUM_AUTH": "demo"})
    assert any("demo login" in d and "QUORUM_AUTH=oidc" in d for d in details)


@pytest.mark.parametrize("secret", [None, DEFAULT_SECRET, "short-secret"])
def test_production_refuses_a_default_or_short_secret_key(secret: str | None) -> None:
    environ = dict(GOOD_PRODUCTION)
    environ.pop("QUORUM_SECRET_KEY")
    if secret is not None:
        environ["QUORUM_SECRET_KEY"] = secret
    details = problems_for(environ)
    assert any(d.startswith("set QUORUM_SECRET_KEY") and "32" in d for d in details)


@pytest.mark.parametrize("cookie", [None, "", "too-short", STRONG])
def test_production_refuses_a_missing_short_or_reused_cookie_secret(cookie: str | None) -> None:
    environ = dict(GOOD_PRODUCTION)
    environ.pop("QUORUM_COOKIE_SECRET")
    if cookie is not None:
        environ["QUORUM_COOKIE_SECRET"] = cookie  # STRONG is the secret key itself
    details = problems_for(environ)
    assert details == [d for d in details if "QUORUM_COOKIE_SECRET" in d]
    assert "login cookie" in details[0]


@pytest.mark.parametrize("missing", sorted(k for k in OIDC if k != "QUORUM_AUTH"))
def test_production_oidc_needs_its_provider_settings(missing: str) -> None:
    environ = {k: v for k, v in GOOD_PRODUCTION.items() if k != missing}
    assert any(missing in d for d in problems_for(environ))


def test_production_with_nothing_set_lists_every_problem() -> None:
    details = problems_for({"QUORUM_ENV": "production"})
    text = " ".join(details)
    for variable in ("QUORUM_AUTH", "QUORUM_SECRET_KEY", "QUORUM_COOKIE_SECRET"):
        assert variable in text


@pytest.mark.parametrize(
    ("name", "value"),
    [("QUORUM_ENV", "staging"), ("QUORUM_AUTH", "ldap"), ("QUORUM_ENVIRONMENTS", " , ")],
)
def test_unknown_values_name_the_variable(name: str, value: str) -> None:
    assert any(name in d for d in problems_for({name: value}))


def test_a_non_number_upload_limit_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="QUORUM_MAX_UPLOAD_MB"):
        Settings.from_env({"QUORUM_MAX_UPLOAD_MB": "lots"})


def test_oidc_secrets_toml_is_what_st_login_reads() -> None:
    settings = Settings.from_env(
        {**GOOD_PRODUCTION, "QUORUM_OIDC_CLIENT_SECRET": 'with "quotes" and \\ backslash'}
    )
    auth = tomllib.loads(settings.oidc_secrets_toml())["auth"]
    assert auth == {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": OTHER_STRONG,
        "client_id": "quorum",
        "client_secret": 'with "quotes" and \\ backslash',
        "server_metadata_url": OIDC["QUORUM_OIDC_SERVER_METADATA_URL"],
    }
    assert auth["redirect_uri"].endswith("/oauth2callback")


def test_get_settings_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUM_DATABASE_URL", "sqlite:///first.db")
    first = config.get_settings()
    monkeypatch.setenv("QUORUM_DATABASE_URL", "sqlite:///second.db")
    assert config.get_settings() is first
    config.reset_settings()
    assert config.get_settings().database_url == "sqlite:///second.db"


def test_get_settings_refuses_unsafe_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUM_ENV", "production")
    monkeypatch.delenv("QUORUM_AUTH", raising=False)
    with pytest.raises(ConfigurationError, match="QUORUM_AUTH=oidc"):
        config.get_settings()


# --- the audit keys (R11) ------------------------------------------------------------------


def test_good_production_settings_hold_both_audit_keys() -> None:
    settings = Settings.from_env(GOOD_PRODUCTION)
    assert settings.audit_key == AUDIT_KEY and settings.audit_signing_key == SIGNING_KEY
    assert AUDIT_KEY not in repr(settings) and SIGNING_KEY not in repr(settings)


@pytest.mark.parametrize("value", [None, "", "short-audit-key"])
def test_production_refuses_a_missing_or_short_audit_key(value: str | None) -> None:
    environ = {k: v for k, v in GOOD_PRODUCTION.items() if k != "QUORUM_AUDIT_KEY"}
    if value is not None:
        environ["QUORUM_AUDIT_KEY"] = value
    details = problems_for(environ)
    assert any("QUORUM_AUDIT_KEY" in d and "at least 32" in d for d in details)


@pytest.mark.parametrize("same_as", ["QUORUM_SECRET_KEY", "QUORUM_COOKIE_SECRET"])
def test_the_audit_key_must_not_be_another_secret(same_as: str) -> None:
    environ = {**GOOD_PRODUCTION, "QUORUM_AUDIT_KEY": GOOD_PRODUCTION[same_as]}
    assert any("QUORUM_AUDIT_KEY must differ" in d for d in problems_for(environ))


def test_production_refuses_a_missing_or_unreadable_signing_key() -> None:
    environ = {k: v for k, v in GOOD_PRODUCTION.items() if k != "QUORUM_AUDIT_SIGNING_KEY"}
    assert any("QUORUM_AUDIT_SIGNING_KEY" in d for d in problems_for(environ))
    garbled = {**GOOD_PRODUCTION, "QUORUM_AUDIT_SIGNING_KEY": "not a key"}
    assert any("not an Ed25519 private key" in d for d in problems_for(garbled))


def test_development_has_no_built_in_audit_key() -> None:
    settings = Settings.from_env({})
    assert settings.audit_key == "" and settings.audit_signing_key == ""
    assert settings.audit_dir == str(PROJECT_ROOT / "var" / "audit")
    assert Settings.from_env({"QUORUM_SCHEDULER": "off"}).scheduler is False
    with pytest.raises(ConfigurationError, match="QUORUM_SCHEDULER"):
        Settings.from_env({"QUORUM_SCHEDULER": "sometimes"})


def test_oidc_in_development_needs_its_own_cookie_secret() -> None:
    """Real sign-in never falls back to a built-in secret, whatever QUORUM_ENV says."""
    for cookie in (None, DEFAULT_SECRET, "short"):
        environ = dict(OIDC)
        if cookie is not None:
            environ["QUORUM_COOKIE_SECRET"] = cookie
        details = problems_for(environ)
        assert details == [d for d in details if "QUORUM_COOKIE_SECRET" in d]
    assert Settings.from_env({**OIDC, "QUORUM_COOKIE_SECRET": OTHER_STRONG}).problems() == []


def test_oidc_secrets_toml_never_falls_back_to_the_secret_key() -> None:
    settings = Settings(auth="oidc", secret_key=STRONG, cookie_secret="")
    with pytest.raises(ConfigurationError) as refused:
        settings.oidc_secrets_toml()
    assert any("QUORUM_COOKIE_SECRET" in d for d in refused.value.details)


def test_cluster_script_refuses_demo_sign_in_unless_asked(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "QUORUM_DATABASE_URL": f"sqlite:///{tmp_path / 'q.db'}",
        "QUORUM_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "QUORUM_COOKIE_SECRET": OTHER_STRONG,
        "BIN": str(tmp_path / "no-such-bin"),
    }
    script = PROJECT_ROOT / "scripts" / "run_cluster.sh"
    refused = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "Refusing to serve demo sign-in" in refused.stderr and "ALLOW_DEMO=1" in refused.stderr
    allowed = subprocess.run(
        ["bash", str(script)], env={**env, "ALLOW_DEMO": "1"}, capture_output=True, text=True
    )
    assert "Refusing to serve demo sign-in" not in allowed.stderr
    assert allowed.returncode != 0  # then stops at the missing programs in BIN, starting nothing

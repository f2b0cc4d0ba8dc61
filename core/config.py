"""One settings object, read from QUORUM_* environment variables."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError, InvalidInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "quorum-development-secret-change-me"  # noqa: S105
MIN_SECRET_LENGTH = 32
DEFAULT_ENVIRONMENTS = ("staging", "production")
MODEL_FORMATS = ("skops", "joblib", "pickle")
PRODUCTION_MODEL_FORMATS = ("skops",)


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'quorum.db'}"


@dataclass(frozen=True)
class Settings:
    """Every setting Quorum reads (the README's settings table documents each one)."""

    database_url: str = field(default_factory=_default_database_url)
    artifact_store: str = str(PROJECT_ROOT / "var" / "artifacts")
    artifact_store_options: dict[str, Any] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )
    env: str = "development"
    auth: str = "demo"
    secret_key: str = DEFAULT_SECRET
    cookie_secret: str = ""
    oidc_server_metadata_url: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_redirect_uri: str = "http://127.0.0.1:8501/oauth2callback"
    oidc_roles_claim: str = ""
    oidc_link_verified_emails: bool = False
    admin_emails: tuple[str, ...] = ()
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    max_upload_mb: int = 200
    audit_key: str = field(default="", repr=False)
    audit_signing_key: str = field(default="", repr=False)
    audit_dir: str = str(PROJECT_ROOT / "var" / "audit")
    audit_checkpoint_store: str = ""
    audit_checkpoint_store_options: dict[str, Any] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )
    audit_checkpoint_events: int = 100
    audit_checkpoint_minutes: int = 5
    scheduler: bool = True
    model_formats: tuple[str, ...] = MODEL_FORMATS
    sandbox_timeout_seconds: int = 120
    sandbox_memory_mb: int = 3072
    sandbox_cpu_seconds: int = 600
    public_url: str = ""  # the address links in e-mails and webhooks start with
    smtp_host: str = ""  # empty: no e-mail is sent
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "quorum@localhost"
    smtp_starttls: bool = False
    smtp_timeout_seconds: int = 10
    webhook_timeout_seconds: int = 5
    delivery_max_attempts: int = 5
    delivery_retry_seconds: int = 30  # the first retry's wait; each later one waits twice as long

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str) -> str:
            return env.get(f"QUORUM_{name}", default).strip()

        settings = cls(
            database_url=get("DATABASE_URL", defaults.database_url),
            artifact_store=get("ARTIFACT_STORE", defaults.artifact_store),
            artifact_store_options=_json_object(
                get("ARTIFACT_STORE_OPTIONS", ""), "ARTIFACT_STORE_OPTIONS"
            ),
            env=get("ENV", defaults.env).lower(),
            auth=get("AUTH", defaults.auth).lower(),
            secret_key=get("SECRET_KEY", defaults.secret_key),
            cookie_secret=get("COOKIE_SECRET", defaults.cookie_secret),
            oidc_server_metadata_url=get("OIDC_SERVER_METADATA_URL", ""),
            oidc_client_id=get("OIDC_CLIENT_ID", ""),
            oidc_client_secret=get("OIDC_CLIENT_SECRET", ""),
            oidc_redirect_uri=get("OIDC_REDIRECT_URI", defaults.oidc_redirect_uri),
            oidc_roles_claim=get("OIDC_ROLES_CLAIM", ""),
            oidc_link_verified_emails=_bool(
                get("OIDC_LINK_VERIFIED_EMAILS", "false"), "OIDC_LINK_VERIFIED_EMAILS"
            ),
            admin_emails=_split(get("ADMIN_EMAILS", "")),
            environments=_split(get("ENVIRONMENTS", ",".join(DEFAULT_ENVIRONMENTS))),
            max_upload_mb=_int(get("MAX_UPLOAD_MB", str(defaults.max_upload_mb)), "MAX_UPLOAD_MB"),
            audit_key=get("AUDIT_KEY", ""),
            audit_signing_key=get("AUDIT_SIGNING_KEY", ""),
            audit_dir=get("AUDIT_DIR", defaults.audit_dir),
            audit_checkpoint_store=get("AUDIT_CHECKPOINT_STORE", ""),
            audit_checkpoint_store_options=_json_object(
                get("AUDIT_CHECKPOINT_STORE_OPTIONS", ""), "AUDIT_CHECKPOINT_STORE_OPTIONS"
            ),
            audit_checkpoint_events=_int(
                get("AUDIT_CHECKPOINT_EVENTS", str(defaults.audit_checkpoint_events)),
                "AUDIT_CHECKPOINT_EVENTS",
            ),
            audit_checkpoint_minutes=_int(
                get("AUDIT_CHECKPOINT_MINUTES", str(defaults.audit_checkpoint_minutes)),
                "AUDIT_CHECKPOINT_MINUTES",
            ),
            scheduler=_switch(get("SCHEDULER", "on"), "SCHEDULER"),
            model_formats=_split(get("MODEL_FORMATS", "").lower())
            or _default_formats(get("ENV", "")),
            sandbox_timeout_seconds=_int(
                get("SANDBOX_TIMEOUT_SECONDS", str(defaults.sandbox_timeout_seconds)),
                "SANDBOX_TIMEOUT_SECONDS",
            ),
            sandbox_memory_mb=_int(
                get("SANDBOX_MEMORY_MB", str(defaults.sandbox_memory_mb)), "SANDBOX_MEMORY_MB"
            ),
            sandbox_cpu_seconds=_int(
                get("SANDBOX_CPU_SECONDS", str(defaults.sandbox_cpu_seconds)),
                "SANDBOX_CPU_SECONDS",
            ),
            public_url=get("PUBLIC_URL", "").rstrip("/"),
            smtp_host=get("SMTP_HOST", ""),
            smtp_port=_int(get("SMTP_PORT", str(defaults.smtp_port)), "SMTP_PORT"),
            smtp_user=get("SMTP_USER", ""),
            smtp_password=env.get("QUORUM_SMTP_PASSWORD", ""),
            smtp_from=get("SMTP_FROM", defaults.smtp_from),
            smtp_starttls=_bool(get("SMTP_STARTTLS", ""), "SMTP_STARTTLS"),
            smtp_timeout_seconds=_int(
                get("SMTP_TIMEOUT_SECONDS", str(defaults.smtp_timeout_seconds)),
                "SMTP_TIMEOUT_SECONDS",
            ),
            webhook_timeout_seconds=_int(
                get("WEBHOOK_TIMEOUT_SECONDS", str(defaults.webhook_timeout_seconds)),
                "WEBHOOK_TIMEOUT_SECONDS",
            ),
            delivery_max_attempts=_int(
                get("DELIVERY_MAX_ATTEMPTS", str(defaults.delivery_max_attempts)),
                "DELIVERY_MAX_ATTEMPTS",
            ),
            delivery_retry_seconds=_int(
                get("DELIVERY_RETRY_SECONDS", str(defaults.delivery_retry_seconds)),
                "DELIVERY_RETRY_SECONDS",
            ),
        )
        settings.validate()
        return settings

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def demo_login(self) -> bool:
        return self.auth == "demo"

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigurationError("Quorum cannot start with these settings.", details=problems)

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.env not in ("development", "production"):
            found.append("set QUORUM_ENV to 'development' or 'production'")
        if self.auth not in ("demo", "oidc"):
            found.append("set QUORUM_AUTH to 'demo' or 'oidc'")
        if not self.environments:
            found.append(
                "set QUORUM_ENVIRONMENTS to a comma-separated list such as staging,production"
            )
        if self.audit_checkpoint_events < 1 or self.audit_checkpoint_minutes < 1:
            found.append(
                "set QUORUM_AUDIT_CHECKPOINT_EVENTS and QUORUM_AUDIT_CHECKPOINT_MINUTES to "
                "whole numbers of at least 1"
            )
        found.extend(self._audit_key_problems())
        if self.auth == "oidc":
            found.extend(self._oidc_problems())
        unknown = [f for f in self.model_formats if f not in MODEL_FORMATS]
        if unknown or not self.model_formats:
            found.append(
                "set QUORUM_MODEL_FORMATS to a comma-separated list of skops, joblib and pickle "
                f"(found {', '.join(unknown) or 'nothing'})"
            )
        for name in (
            "sandbox_timeout_seconds",
            "sandbox_memory_mb",
            "sandbox_cpu_seconds",
            "smtp_timeout_seconds",
            "webhook_timeout_seconds",
            "delivery_max_attempts",
            "delivery_retry_seconds",
        ):
            if getattr(self, name) <= 0:
                found.append(f"set QUORUM_{name.upper()} to a positive whole number")
        if self.is_production:
            found.extend(self._production_problems())
        return found

    def _audit_key_problems(self) -> list[str]:
        found = []
        key = self.audit_key
        if self.is_production and len(key) < MIN_SECRET_LENGTH:
            found.append(
                f"set QUORUM_AUDIT_KEY to its own random value of at least {MIN_SECRET_LENGTH} "
                "characters; it keys the audit chain and only the server may hold it"
            )
        elif key and len(key) < MIN_SECRET_LENGTH:
            found.append(f"QUORUM_AUDIT_KEY is shorter than {MIN_SECRET_LENGTH} characters")
        if key and key in (self.secret_key, self.cookie_secret):
            found.append(
                "QUORUM_AUDIT_KEY must differ from QUORUM_SECRET_KEY and QUORUM_COOKIE_SECRET"
            )
        if self.is_production and not self.audit_signing_key:
            found.append(
                "set QUORUM_AUDIT_SIGNING_KEY to an Ed25519 private key (PEM or base64); it "
                "signs the audit checkpoints (quorum admin audit keygen prints one)"
            )
        elif self.audit_signing_key and not _is_signing_key(self.audit_signing_key):
            found.append("QUORUM_AUDIT_SIGNING_KEY is not an Ed25519 private key in PEM or base64")
        return found

    def _oidc_problems(self) -> list[str]:
        """Real sign-in, in any environment: never a built-in or shared cookie secret."""
        found = []
        if len(self.cookie_secret) < MIN_SECRET_LENGTH or self.cookie_secret in (
            self.secret_key,
            DEFAULT_SECRET,
        ):
            found.append(
                f"set QUORUM_COOKIE_SECRET to its own random value of at least {MIN_SECRET_LENGTH} "
                "characters; it signs the login cookie"
            )
        for name in ("oidc_server_metadata_url", "oidc_client_id", "oidc_client_secret"):
            if not getattr(self, name):
                found.append(f"set QUORUM_{name.upper()} for the OpenID Connect provider")
        return found

    def _production_problems(self) -> list[str]:
        found = []
        if self.auth == "demo":
            found.append(
                "demo login is refused in production: set QUORUM_AUTH=oidc and the QUORUM_OIDC_* settings"
            )
        if self.secret_key == DEFAULT_SECRET or len(self.secret_key) < MIN_SECRET_LENGTH:
            found.append(
                f"set QUORUM_SECRET_KEY to a random value of at least {MIN_SECRET_LENGTH} "
                "characters (for example: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        if self.auth != "oidc" and (
            len(self.cookie_secret) < MIN_SECRET_LENGTH or self.cookie_secret == self.secret_key
        ):  # with OIDC, _oidc_problems has said it already
            found.append(
                f"set QUORUM_COOKIE_SECRET to its own random value of at least {MIN_SECRET_LENGTH} "
                "characters; it signs the login cookie"
            )
        return found

    def oidc_secrets_toml(self) -> str:
        """The `[auth]` section Streamlit's st.login reads, built from these settings. There is
        no fallback: without its own cookie secret there is no secrets file."""
        problems = self._oidc_problems()
        if problems:
            raise ConfigurationError(
                "The OpenID Connect secrets file cannot be written.", details=problems
            )
        values = {
            "redirect_uri": self.oidc_redirect_uri,
            "cookie_secret": self.cookie_secret,
            "client_id": self.oidc_client_id,
            "client_secret": self.oidc_client_secret,
            "server_metadata_url": self.oidc_server_metadata_url,
        }
        lines = ["[auth]"] + [f"{key} = {_toml_string(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"


def _default_formats(env: str) -> tuple[str, ...]:
    """skops only in production: pickle-based files are refused unless listed explicitly."""
    return PRODUCTION_MODEL_FORMATS if env.lower() == "production" else MODEL_FORMATS


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _switch(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise ConfigurationError(f"QUORUM_{name} must be 'on' or 'off', not {value!r}.")


def _is_signing_key(value: str) -> bool:
    from core.audit_format import load_private_key

    try:
        load_private_key(value)
    except ValueError:
        return False
    return True


def _bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"QUORUM_{name} must be true or false, not {value!r}.")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"QUORUM_{name} must be a whole number, not {value!r}.") from None


def _json_object(value: str, name: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"QUORUM_{name} must be a JSON object such as "
            '{"endpoint_url": "https://s3.example.com", "key": "...", "secret": "..."}; '
            f"it is not valid JSON ({error.msg} at character {error.pos})."
        ) from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(
            f"QUORUM_{name} must be a JSON object ({{...}}), not a {type(parsed).__name__}."
        )
    return parsed


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_cached: Settings | None = None


def get_settings() -> Settings:
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached


def reset_settings() -> None:
    global _cached
    _cached = None


def known_environment(env: str, settings: Settings | None = None) -> str:
    """The environment named, normalised; refused in one sentence naming the known ones."""
    environment = (env or "").strip().lower()
    known = (settings or get_settings()).environments
    if environment not in known:
        raise InvalidInput(
            f"There is no environment '{environment}'; the environments are "
            f"{', '.join(known)}. Choose one of them."
        )
    return environment

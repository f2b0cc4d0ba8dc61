"""The audit trail's two secrets: the HMAC key of the chain and the Ed25519 key that signs
checkpoints. Production takes both from the settings; development generates each once per
store into `QUORUM_AUDIT_DIR` (mode 0600). There is no built-in default key."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import make_url

from core.audit_format import load_private_key, private_key_pem
from core.config import Settings
from core.errors import ConfigurationError

_lock = threading.Lock()
_mac_keys: dict[tuple[str, str, str], bytes] = {}
_signing_keys: dict[tuple[str, str, str], Ed25519PrivateKey] = {}


def store_name(database_url: str) -> str:
    """A stable directory name for one store (its URL, without the password)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        where = str(Path(url.database or ":memory:").resolve())
    else:
        where = url.render_as_string(hide_password=True)
    return f"{url.get_backend_name()}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def store_dir(settings: Settings, database_url: str) -> Path:
    return Path(settings.audit_dir) / store_name(database_url)


def mac_key(settings: Settings, database_url: str) -> bytes:
    cache_key = (settings.audit_key, settings.audit_dir, database_url)
    with _lock:
        key = _mac_keys.get(cache_key)
        if key is None:
            key = _load_mac_key(settings, database_url)
            _mac_keys[cache_key] = key
    return key


def signing_key(settings: Settings, database_url: str) -> Ed25519PrivateKey:
    cache_key = (settings.audit_signing_key, settings.audit_dir, database_url)
    with _lock:
        key = _signing_keys.get(cache_key)
        if key is None:
            key = _load_signing_key(settings, database_url)
            _signing_keys[cache_key] = key
    return key


def _load_mac_key(settings: Settings, database_url: str) -> bytes:
    if settings.audit_key:
        return settings.audit_key.encode()
    _refuse_in_production(settings, "QUORUM_AUDIT_KEY")
    path = store_dir(settings, database_url) / "audit-hmac.key"
    return _create_once(path, lambda: secrets.token_hex(32)).strip().encode()


def _load_signing_key(settings: Settings, database_url: str) -> Ed25519PrivateKey:
    if settings.audit_signing_key:
        try:
            return load_private_key(settings.audit_signing_key)
        except ValueError as error:
            raise ConfigurationError(f"QUORUM_AUDIT_SIGNING_KEY is {error}.") from None
    _refuse_in_production(settings, "QUORUM_AUDIT_SIGNING_KEY")
    path = store_dir(settings, database_url) / "audit-signing-key.pem"
    return load_private_key(
        _create_once(path, lambda: private_key_pem(Ed25519PrivateKey.generate()))
    )


def _refuse_in_production(settings: Settings, variable: str) -> None:
    if settings.is_production:
        raise ConfigurationError(f"Set {variable}: production never generates audit keys.")


def _create_once(path: Path, make: Callable[[], str]) -> str:
    """Read the key at `path`, or write a new one there exactly once (0600; a concurrent
    creator's key wins and is read back)."""
    if path.exists():
        return path.read_text()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text()


def forget_cached_keys() -> None:
    """For tests that change keys within one process."""
    with _lock:
        _mac_keys.clear()
        _signing_keys.clear()

"""The audit trail's bytes: canonical events, their hashes, and signed checkpoints.

Pure: no database, no settings. The server and the offline verifier share it, so both hash
and check exactly the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
LEGACY = "sha256"  # plain SHA-256, the chain before the keyed one
KEYED = "hmac-sha256"  # HMAC-SHA256 under the server's audit key
REKEYED_ACTION = "audit.rekeyed"
CHECKPOINT_FORMAT = "quorum-audit-checkpoint/1"
EVENT_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "model_id",
    "summary",
    "details",
    "prev_hash",
)


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers; `created_at` is an ISO string with microseconds.
    A keyed event also covers its scheme, so it cannot be passed off as a legacy one."""
    payload = {name: event[name] for name in EVENT_FIELDS}
    if event.get("mac", KEYED) != LEGACY:
        payload["mac"] = event["mac"]
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def legacy_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def keyed_hash(key: bytes, event: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical(event), hashlib.sha256).hexdigest()


def digest_step(previous: str, event: Mapping[str, Any]) -> str:
    """A keyless running digest over every event (content and stored hash): what a
    checkpoint anchors, so an offline verifier without the audit key can check content."""
    head = f"{previous}\n{event['hash']}\n".encode()
    return hashlib.sha256(head + canonical(event)).hexdigest()


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the trail held `count` events up to `seq`, ending in `head_hash`."""

    number: int
    seq: int
    count: int
    head_hash: str
    digest: str
    keyed_from: int | None
    created_at: str
    previous: str  # file digest of checkpoint number - 1 (GENESIS_HASH for the first)
    format: str = CHECKPOINT_FORMAT


class CheckpointInvalid(ValueError):
    """A checkpoint file that cannot be trusted; the message says why."""


def _payload_bytes(checkpoint: Checkpoint) -> bytes:
    return json.dumps(asdict(checkpoint), sort_keys=True, separators=(",", ":")).encode()


def sign_checkpoint(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> bytes:
    signature = key.sign(_payload_bytes(checkpoint))
    document = {
        "checkpoint": asdict(checkpoint),
        "signature": base64.b64encode(signature).decode(),
        "public_key": public_key_text(key.public_key()),
    }
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


def read_checkpoint(data: bytes, public_key: Ed25519PublicKey) -> Checkpoint:
    try:
        document = json.loads(data)
        checkpoint = Checkpoint(**document["checkpoint"])
        signature = base64.b64decode(document["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointInvalid(f"it is not a readable checkpoint ({error})") from None
    if checkpoint.format != CHECKPOINT_FORMAT:
        raise CheckpointInvalid(f"its format {checkpoint.format!r} is unknown")
    try:
        public_key.verify(signature, _payload_bytes(checkpoint))
    except InvalidSignature:
        raise CheckpointInvalid(
            "its signature does not verify with the audit public key (the file was altered "
            "or signed by another key)"
        ) from None
    return checkpoint


# --- keys ----------------------------------------------------------------------------------------


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (what the README and the Audit page show)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    return file_digest(base64.b64decode(public_key_text(key)))[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """Base64 of the 32 raw bytes, or a PEM public key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_public_key(text.encode())
        else:
            loaded = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("not an Ed25519 public key (base64 of 32 bytes, or PEM)") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return loaded


def load_private_key(text: str) -> Ed25519PrivateKey:
    """PEM (PKCS#8), or base64 of the 32 raw private bytes or of the PKCS#8 DER."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = base64.b64decode(text, validate=True)
            if len(raw) == 32:
                loaded = Ed25519PrivateKey.from_private_bytes(raw)
            else:
                loaded = serialization.load_der_private_key(raw, password=None)
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("not an Ed25519 private key (PEM, or base64)") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError("the private key is not an Ed25519 key")
    return loaded


def private_key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

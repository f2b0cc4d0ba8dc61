"""The sender: works through due deliveries, one attempt each, recorded; a failure waits
`delivery_retry_seconds * 2**(attempt-1)` before the next try, and after
`delivery_max_attempts` tries the delivery is failed (an admin may replay it from the log).

E-mail goes over SMTP (smtplib). A webhook goes only to a host on the admin's allow-list,
checked again at send time on the addresses the name resolves to now: private, loopback,
link-local, shared and metadata addresses are refused unless that host is allowed to use
them. The connection goes to the vetted address, redirects are not followed, and the body is
signed with HMAC-SHA256 over "<timestamp>.<body>" with the webhook's own secret."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from core.config import Settings
from core.db import Database
from core.errors import InvalidInput
from core.models import Delivery, DeliveryAttempt, User, Webhook, WebhookHost, utcnow
from core.services.notifications.outbox import EMAIL

PENDING, SENT, FAILED = "pending", "sent", "failed"
TIMESTAMP_HEADER = "X-Quorum-Timestamp"
SIGNATURE_HEADER = "X-Quorum-Signature"
DELIVERY_HEADER = "X-Quorum-Delivery"
# ranges a webhook may not reach unless its host is allowed private addresses
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("100.64.0.0/10", "169.254.169.254/32", "fd00:ec2::254/128", "192.0.0.0/24")
)


class SendFailed(Exception):
    """One attempt failed; the message says why in words for the delivery log."""


def webhook_secret(settings: Settings, salt: str) -> str:
    """A webhook's signing secret: derived from the server's key and the webhook's salt, so
    the store never holds it; changing QUORUM_SECRET_KEY changes every webhook's secret."""
    return hmac.new(
        settings.secret_key.encode(), f"quorum-webhook:{salt}".encode(), hashlib.sha256
    ).hexdigest()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True)
class SendReport:
    sent: int
    retrying: int
    failed: int

    @property
    def message(self) -> str:
        return (
            f"{self.sent} deliveries sent, {self.retrying} to retry, {self.failed} failed for good."
        )


def send_due(
    db: Database, settings: Settings, *, now: datetime | None = None, limit: int = 200
) -> SendReport:
    """Try each pending delivery whose time has come, oldest first."""
    moment = now or utcnow()
    with db.read() as session:
        due = session.exec(
            select(Delivery.id)
            .where(Delivery.status == PENDING, col(Delivery.next_attempt_at) <= moment)
            .order_by(col(Delivery.id))
            .limit(limit)
        ).all()
    counts = {SENT: 0, PENDING: 0, FAILED: 0}
    for delivery_id in due:
        if delivery_id is not None:
            counts[attempt(db, settings, delivery_id, now=moment)] += 1
    return SendReport(counts[SENT], counts[PENDING], counts[FAILED])


def attempt(
    db: Database, settings: Settings, delivery_id: int, *, now: datetime | None = None
) -> str:
    """One try at one delivery, recorded; returns its status afterwards."""
    with db.read() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != PENDING:
            return delivery.status if delivery else FAILED
        try:
            send = _prepare(session, settings, delivery)
        except SendFailed as refused:
            return _record(db, settings, delivery_id, str(refused), "", now)
    try:
        detail = send()
    except SendFailed as failed:
        return _record(db, settings, delivery_id, str(failed), "", now)
    return _record(db, settings, delivery_id, "", detail, now)


def _prepare(session: Session, settings: Settings, delivery: Delivery) -> Callable[[], str]:
    """Read what the attempt needs inside the read transaction; return the network call."""
    payload = json.loads(delivery.payload)
    if delivery.channel == EMAIL:
        user = session.get(User, delivery.user_id) if delivery.user_id else None
        if user is None or not user.is_active:
            raise SendFailed("The recipient is no longer an active user.")
        message = _email(settings, user.email, delivery.subject, payload)
        return lambda: send_email(settings, message)
    hook = session.get(Webhook, delivery.webhook_id) if delivery.webhook_id else None
    if hook is None or hook.revoked_at is not None:
        raise SendFailed("The webhook was removed; nothing was sent.")
    try:
        target = vet_url(session, hook.url)
    except InvalidInput as refused:
        raise SendFailed(refused.user_message) from None
    payload["link"] = absolute_link(settings, payload.get("link", ""))
    payload["delivery_id"] = delivery.id
    payload["webhook"] = {"id": hook.id, "name": hook.name}
    body = json.dumps(payload).encode()
    secret = webhook_secret(settings, hook.salt)
    return lambda: post_webhook(settings, target, body, secret, delivery.id or 0)


def _record(
    db: Database,
    settings: Settings,
    delivery_id: int,
    error: str,
    detail: str,
    now: datetime | None,
) -> str:
    with db.write() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return FAILED
        moment = now or utcnow()
        delivery.attempts += 1
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                attempted_at=moment,
                ok=not error,
                detail=(error or detail)[:2000],
            )
        )
        if not error:
            delivery.status, delivery.sent_at, delivery.last_error = SENT, moment, ""
        else:
            delivery.last_error = error[:2000]
            if delivery.attempts >= settings.delivery_max_attempts:
                delivery.status = FAILED
            else:
                wait = settings.delivery_retry_seconds * 2 ** (delivery.attempts - 1)
                delivery.next_attempt_at = moment + timedelta(seconds=wait)
        session.add(delivery)
        return delivery.status


def absolute_link(settings: Settings, link: str) -> str:
    """The address a person opens for an inbox link: the script path a page link takes
    (`pages/3_Reviews.py?model=m`, `app.py`) becomes the page's URL (`<public>/Reviews?model=m`)."""
    if not link or "://" in link or not settings.public_url:
        return link
    path, _, query = link.lstrip("/").partition("?")
    if path == "app.py":
        path = ""
    elif path.startswith("pages/") and path.endswith(".py"):
        stem = path.removeprefix("pages/").removesuffix(".py")
        number, _, name = stem.partition("_")
        path = name if number.isdigit() and name else stem
    return f"{settings.public_url.rstrip('/')}/{path}" + (f"?{query}" if query else "")


# --- e-mail -----------------------------------------------------------------------------------


def _email(settings: Settings, to: str, subject: str, payload: dict[str, str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = f"[Quorum] {subject}"
    lines = [payload.get("title", subject), ""]
    if payload.get("body"):
        lines += [payload["body"], ""]
    link = absolute_link(settings, payload.get("link", ""))
    if link:
        lines += [f"Open it in Quorum: {link}", ""]
    lines.append("You get this e-mail because you chose it on your Profile page in Quorum.")
    message.set_content("\n".join(lines))
    return message


def send_email(settings: Settings, message: EmailMessage) -> str:
    if not settings.smtp_host:
        raise SendFailed("E-mail is not configured: set QUORUM_SMTP_HOST.")
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            refused = smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise SendFailed(f"The mail server refused or could not be reached: {error}") from None
    if refused:
        raise SendFailed(f"The mail server refused {', '.join(refused)}.")
    return f"Accepted by {settings.smtp_host}:{settings.smtp_port} for {message['To']}."


# --- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


def allowed_host(session: Session, host: str) -> WebhookHost | None:
    return session.exec(
        select(WebhookHost).where(
            WebhookHost.host == host.lower(), col(WebhookHost.revoked_at).is_(None)
        )
    ).first()


def vet_url(session: Session, url: str) -> Target:
    """The target of `url` if its host is allowed and resolves only to addresses it may use."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(f"The webhook address {url!r} must start with https:// and name a host.")
    rule = allowed_host(session, host)
    if rule is None:
        raise InvalidInput(
            f"The host {host} is not on the webhook allow-list; an admin must allow it first "
            "(Admin page, Notifications tab)."
        )
    if parts.scheme == "http" and not rule.allow_private:
        raise InvalidInput(f"Use https:// for {host}; plain http is only for private hosts.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise InvalidInput(f"The host {host} does not resolve ({error}).") from None
    addresses = sorted({str(info[4][0]) for info in found})
    restricted = [a for a in addresses if is_restricted(a)]
    if restricted and not rule.allow_private:
        raise InvalidInput(
            f"The host {host} resolves to a private, loopback, link-local or metadata address "
            f"({', '.join(restricted)}); refused. An admin may allow private addresses for it."
        )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(parts.scheme, host, port, path, addresses[0])


def is_restricted(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or any(ip in network for network in _REFUSED_NETWORKS)
    )


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the vetted address, whatever the name resolves to a second time."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post_webhook(
    settings: Settings, target: Target, body: bytes, secret: str, delivery_id: int
) -> str:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Quorum-Webhook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
    }
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, settings.webhook_timeout_seconds)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        response.read(2000)
    except (OSError, http.client.HTTPException) as error:
        raise SendFailed(f"{target.host}:{target.port} could not be reached: {error}") from None
    finally:
        connection.close()
    if 300 <= status < 400:
        raise SendFailed(
            f"{target.host} answered {status} (a redirect); redirects are not followed."
        )
    if status >= 300:
        raise SendFailed(f"{target.host} answered HTTP {status}.")
    return f"{target.host} answered HTTP {status}."

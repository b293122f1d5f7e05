"""App push over Web Push: RFC 8030 delivery, RFC 8291 aes128gcm encryption, RFC 8292 VAPID.

One delivery goes to every active subscription of the participant (their phone's PWA, a
laptop's browser), all posted concurrently on one aiohttp session per batch; pywebpush
encrypts each payload. The endpoints came from browsers, that is from anyone: they are
posted to only on the configured push services, over https, at public addresses checked
as the connection is made (`outbound.safe_fetch`), and a redirect is never followed. The
push services' answers per subscription (a success, a failure, or gone: 404/410) are
collected during the batch and reported once, when the provider is closed, so that a batch
writes the subscriptions in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher, WebPushException
from sqlalchemy.orm import Session, sessionmaker

from core.egress import Egress, EgressRefused
from core.push import DEFAULT_EGRESS, PushTarget, record_push_results
from core.settings import load_vapid_key
from outbound import safe_fetch
from outbound.providers import Message, ProviderError

log = logging.getLogger("burgernet.webpush")

#: Per queue priority: how long a push service keeps an undelivered message (TTL, seconds)
#: and how eagerly it wakes the device (Urgency). A search alert is stale after an hour; a
#: result or an inquiry is still worth reading the next morning.
DELIVERY = {
    "urgent": (3600, "high"),
    "normal": (24 * 3600, "normal"),
    "result": (24 * 3600, "normal"),
}
#: RFC 8291: a push message body is at most 4096 bytes; aes128gcm adds a header of 86 bytes
#: (with the 65-byte key id), a 16-byte tag and a padding delimiter.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
#: Where a notification leads: the participant's page of the action (the web portal).
ACTION_PATH = "/actions/{action_id}"
#: A VAPID token lives 12 hours (RFC 8292 allows 24); renewed with an hour to spare.
TOKEN_LIFETIME = 12 * 3600
TOKEN_MARGIN = 3600
MAX_CONNECTIONS = 200

#: Called once per batch with the subscription ids that were delivered, failed, and gone.
Report = Callable[[set[int], set[int], set[int]], None]


@dataclass
class _Answers:
    delivered: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)


class WebPushProvider:
    """Sends a JSON notification {title, body, action_id, url, lang, priority} encrypted to
    each of the participant's subscriptions; the push message's id (from Location) is the
    provider id."""

    name = "webpush"
    keep_open = False

    def __init__(self, private_key: Path | ec.EllipticCurvePrivateKey, subject: str, *,
                 public_url: str = "", timeout: float = 10.0,
                 report: Report | None = None, egress: Egress = DEFAULT_EGRESS,
                 resolver: AbstractResolver | None = None) -> None:
        key = load_vapid_key(private_key) if isinstance(private_key, Path) else private_key
        # our settings check the subject; py_vapid's own check refuses https URLs with a path
        self.vapid = Vapid02(key, conf={"no-strict": True})
        self.subject = subject
        self.public_url = public_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.report = report
        self.egress, self.resolver = egress, resolver
        self.answers = _Answers()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: Message) -> str:
        if not message.push:
            raise ProviderError(False, "no_subscription",
                                detail="participant has no active push subscription")
        payload = self.payload(message)
        ttl, urgency = DELIVERY.get(message.priority, DELIVERY["normal"])
        headers = {"Urgency": urgency, "Content-Type": "application/octet-stream"}
        if message.action_id is not None:
            headers["Topic"] = f"burgernet-action-{message.action_id}"
        answers = await asyncio.gather(*(self._post(target, payload, ttl, headers)
                                         for target in message.push))
        failures = []
        for target, outcome in zip(message.push, answers, strict=True):
            if isinstance(outcome, str):
                self.answers.delivered.add(target.subscription_id)
            elif outcome.code == "subscription_gone":
                self.answers.gone.add(target.subscription_id)
                failures.append(outcome)
            else:
                self.answers.failed.add(target.subscription_id)
                failures.append(outcome)
        delivered = [a for a in answers if isinstance(a, str)]
        if delivered:
            return delivered[0]  # one device took it; the others are counted above
        retry = [f for f in failures if f.retryable]
        if retry:
            raise retry[0]
        permanent = [f for f in failures if f.code != "subscription_gone"]
        raise permanent[0] if permanent else failures[0]

    def payload(self, message: Message) -> bytes:
        """The notification as the service worker reads it, shortened to fit one record."""
        url = self.public_url + (ACTION_PATH.format(action_id=message.action_id)
                                 if message.action_id is not None else "/")
        body = message.body
        while True:
            data = json.dumps({"title": message.subject or "Burgernet", "body": body,
                               "action_id": message.action_id, "url": url,
                               "lang": message.language, "priority": message.priority},
                              ensure_ascii=False, separators=(",", ":")).encode()
            excess = len(data) - MAX_PLAINTEXT
            if excess <= 0:
                return data
            body = body[:max(0, len(body) - excess - 1)].rstrip() + "…"

    async def _post(self, target: PushTarget, payload: bytes, ttl: int,
                    headers: dict[str, str]) -> str | ProviderError:
        info = {"endpoint": target.endpoint,
                "keys": {"p256dh": target.p256dh, "auth": target.auth}}
        try:
            self.egress.check_url(target.endpoint)
            body = WebPusher(info).encode(payload, "aes128gcm")["body"]
        except EgressRefused as exc:
            return ProviderError(False, "endpoint_refused", None, str(exc)[:200])
        except (WebPushException, ValueError, TypeError) as exc:
            return ProviderError(False, "bad_subscription", None, str(exc)[:200])
        headers = {**headers, "TTL": str(ttl), "Content-Encoding": "aes128gcm",
                   **self._authorization(target.endpoint)}
        try:
            async with self._http().post(target.endpoint, data=body, headers=headers,
                                         allow_redirects=False,
                                         timeout=self.timeout) as response:
                return await _answer(response)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            refused = safe_fetch.refused_address(exc)
            if refused is not None:
                return ProviderError(False, "endpoint_refused", None, str(refused)[:200])
            return ProviderError(True, "network", None, type(exc).__name__)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # inside the batch's event loop
            self._session = safe_fetch.session(self.egress, resolver=self.resolver,
                                               limit=MAX_CONNECTIONS)
        return self._session

    def _authorization(self, endpoint: str) -> dict[str, str]:
        """The VAPID header for the endpoint's push service, signed once per service."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is None or cached[1] - now < TOKEN_MARGIN:
            expires = int(now) + TOKEN_LIFETIME
            header = self.vapid.sign({"aud": audience, "exp": expires, "sub": self.subject})
            cached = self._tokens[audience] = (header["Authorization"], expires)
        return {"Authorization": cached[0]}

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # push services keep no record to ask; the Topic header limits a repeat

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        answers, self.answers = self.answers, _Answers()
        if self.report is not None and (answers.delivered or answers.failed or answers.gone):
            try:
                self.report(answers.delivered, answers.failed, answers.gone)
            except Exception:  # the deliveries' own outcomes matter more: record those
                log.exception("could not record the push services' answers")


async def _answer(response: aiohttp.ClientResponse) -> str | ProviderError:
    """The push service's answer: the message id, or an error saying whether to retry (a
    redirect is an error: push services do not redirect, and it is not followed)."""
    status = response.status
    if 200 <= status < 300:
        return _message_id(response.headers.get("Location"))
    detail = (await response.text(errors="replace"))[:200]
    if status in {404, 410}:
        return ProviderError(False, "subscription_gone", str(status), detail)
    return ProviderError(status == 429 or status >= 500, f"http_{status}", str(status), detail)


def _message_id(location: str | None) -> str:
    """The push message resource's last path segment (RFC 8030 Location), or our own id."""
    segment = urlsplit(location or "").path.rstrip("/").rpartition("/")[2]
    return segment if 0 < len(segment) <= 64 else f"WP{uuid.uuid4().hex}"


def database_report(sessions: sessionmaker[Session]) -> Report:
    """A Report that writes the answers to the subscriptions in one transaction."""

    def report(delivered: set[int], failed: set[int], gone: set[int]) -> None:
        with sessions() as session, session.begin():
            record_push_results(session, delivered=delivered, failed=failed, gone=gone,
                                now=datetime.now(UTC))

    return report


def generate_vapid_key(path: Path) -> str:
    """Write a new P-256 private key to PATH (PEM, mode 0600); returns the public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(pem)
    return application_server_key(key)


def application_server_key(key: Path | ec.EllipticCurvePrivateKey) -> str:
    """The public key as browsers want it in `PushManager.subscribe({applicationServerKey})`:
    the uncompressed point, base64url without padding."""
    private = load_vapid_key(key) if isinstance(key, Path) else key
    raw = private.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
    return b64urlencode(raw)

"""A local Web Push service: real HTTP on loopback, for tests and demos.

It plays a browser vendor's push service (RFC 8030) and the browser behind it: `subscribe()`
makes a subscription the way `PushManager.subscribe()` does (a P-256 key pair and a 16-byte
auth secret, kept here), and every push message is checked as a push service would (VAPID
per RFC 8292: ES256 signature with the key in `k`, `aud` the endpoint's origin, `exp` in the
future and at most 24 hours away; TTL, Urgency and Topic headers; 4096 bytes at most) and
then decrypted as the browser would (RFC 8291 aes128gcm), with our own code rather than the
library the sender uses. It can answer 410 for chosen subscriptions, and 429 or 500 at a
rate or for the next requests.

    python -m fakes.push --port 8710      # POST /_fake/subscribe for a subscription
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fakes.loopback import LoopbackServer

MAX_BODY = 4096
URGENCIES = {"very-low", "low", "normal", "high"}
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_EXP = 24 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Behaviour:
    """How the fake behaves; change it between requests in a test."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    #: Statuses to answer to the next requests, first one first (e.g. [429, 500]).
    fail_next: list[int] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Subscription:
    """The browser's side of one subscription: its private key and auth secret."""

    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str
    #: The applicationServerKey the browser subscribed with; other VAPID keys get a 403.
    server_key: str | None = None
    gone: bool = False

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def info(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives the web app."""
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(self.public_key), "auth": b64url(self.auth)}}


@dataclass
class Record:
    """A push message the service accepted, decrypted."""

    id: str
    subscription: str
    ttl: int
    urgency: str
    topic: str | None
    payload: bytes
    claims: dict[str, Any]
    vapid_key: str
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class FakePush:
    """The service's state: subscriptions, and the messages it accepted, in order."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    base_url: str = ""
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    #: (status, reason) of every refused request, in order.
    refused: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.behaviour.seed)

    def subscribe(self, server_key: str | None = None) -> Subscription:
        """A new subscription, as a browser makes one with `PushManager.subscribe()`."""
        if not self.base_url:
            raise RuntimeError("start the server first: the endpoint needs its address")
        sid = uuid.uuid4().hex
        subscription = Subscription(sid, ec.generate_private_key(ec.SECP256R1()),
                                    secrets.token_bytes(16), f"{self.base_url}/push/{sid}",
                                    server_key)
        self.subscriptions[sid] = subscription
        return subscription

    def received(self, subscription: Subscription | str) -> list[Record]:
        sid = subscription if isinstance(subscription, str) else subscription.id
        return [r for r in self.records if r.subscription == sid]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY * 4)
        app.router.add_post("/push/{id}", self.push)
        app.router.add_post("/_fake/subscribe", self.subscribe_request)
        app.router.add_get("/_fake/records", self.list_records)
        return app

    async def push(self, request: web.Request) -> web.Response:
        try:
            return await self._push(request)
        except Refused as refused:
            self.refused.append((refused.status, refused.reason))
            headers = {"Retry-After": "1"} if refused.status == 429 else None
            return web.json_response({"code": refused.status, "message": refused.reason},
                                     status=refused.status, headers=headers)

    async def _push(self, request: web.Request) -> web.Response:
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            raise Refused(404, "no such subscription")
        body = await request.read()
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)
        if self.behaviour.fail_next:
            status = self.behaviour.fail_next.pop(0)
            raise Refused(status, "told to fail")
        roll = self.random.random()
        if roll < self.behaviour.error_rate:
            raise Refused(500, "internal error")
        if roll < self.behaviour.error_rate + self.behaviour.throttle_rate:
            raise Refused(429, "too many requests")
        if subscription.gone:
            raise Refused(410, "subscription expired or unsubscribed")
        claims, key = self._vapid(request, subscription)
        ttl, urgency, topic = self._headers(request)
        if len(body) > MAX_BODY:
            raise Refused(413, f"payload of {len(body)} bytes exceeds {MAX_BODY}")
        if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            raise Refused(415, "Content-Encoding must be aes128gcm")
        try:
            payload = decrypt(body, subscription.private_key, subscription.auth)
        except ValueError as exc:
            raise Refused(400, f"cannot decrypt: {exc}") from None
        message_id = uuid.uuid4().hex
        self.records.append(Record(message_id, subscription.id, ttl, urgency, topic, payload,
                                   claims, key, time.time()))
        return web.Response(status=201, headers={
            "Location": f"{self.base_url}/message/{message_id}", "TTL": str(ttl)})

    def _vapid(self, request: web.Request,
               subscription: Subscription) -> tuple[dict[str, Any], str]:
        """RFC 8292: `vapid t=<JWT>, k=<public key>`; the JWT signed with that key."""
        header = request.headers.get("Authorization", "")
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise Refused(401, "Authorization must use the vapid scheme")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = fields.get("t", ""), fields.get("k", "")
        try:
            claims = verify_jwt(token, unb64url(key))
        except (ValueError, InvalidSignature) as exc:
            raise Refused(401, f"invalid VAPID token: {exc or type(exc).__name__}") from None
        origin = f"{request.scheme}://{request.host}"
        if claims.get("aud") != origin:
            raise Refused(401, f"VAPID aud {claims.get('aud')!r} is not {origin!r}")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not time.time() < exp <= time.time() + MAX_EXP:
            raise Refused(401, f"VAPID exp {exp!r} is not within the next 24 hours")
        sub = str(claims.get("sub", ""))
        if not (sub.startswith("mailto:") or sub.startswith("https:")):
            raise Refused(401, f"VAPID sub {sub!r} is not a mailto: or https: URI")
        if subscription.server_key is not None and key != subscription.server_key:
            raise Refused(403, "VAPID key differs from the subscription's applicationServerKey")
        return claims, key

    @staticmethod
    def _headers(request: web.Request) -> tuple[int, str, str | None]:
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            raise Refused(400, "the TTL header is required (seconds)")
        urgency = request.headers.get("Urgency", "normal")
        if urgency not in URGENCIES:
            raise Refused(400, f"Urgency {urgency!r} is not one of {sorted(URGENCIES)}")
        topic = request.headers.get("Topic")
        if topic is not None and not TOPIC.match(topic):
            raise Refused(400, "Topic must be at most 32 base64url characters")
        return int(ttl), urgency, topic

    async def subscribe_request(self, request: web.Request) -> web.Response:
        server_key = request.query.get("applicationServerKey")
        return web.json_response(self.subscribe(server_key).info())

    async def list_records(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "records": [{"id": r.id, "subscription": r.subscription, "ttl": r.ttl,
                         "urgency": r.urgency, "topic": r.topic,
                         "payload": r.payload.decode(errors="replace"), "claims": r.claims}
                        for r in self.records],
            "refused": self.refused})


def verify_jwt(token: str, public_key: bytes) -> dict[str, Any]:
    """The claims of an ES256 JWT, after checking its signature with PUBLIC_KEY (raw point)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three parts")
    header = json.loads(unb64url(parts[0]))
    if header.get("alg") != "ES256":
        raise ValueError(f"alg {header.get('alg')!r} is not ES256")
    signature = unb64url(parts[2])
    if len(signature) != 64:
        raise ValueError("an ES256 signature has 64 bytes")
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
    key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64url(parts[1]))
    if not isinstance(claims, dict):
        raise ValueError("the claims are not an object")
    return claims


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8291 with RFC 8188 aes128gcm: the browser's side, one record."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, (record_size,), id_length = body[:16], struct.unpack(">I", body[16:20]), body[20]
    sender_key, ciphertext = body[21:21 + id_length], body[21 + id_length:]
    if id_length != 65:
        raise ValueError("the key id must be the sender's 65-byte public key")
    if len(ciphertext) > record_size or len(ciphertext) < 17:
        raise ValueError("a push message is exactly one record")
    receiver_key = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    shared = private_key.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_key))
    key_info = b"WebPush: info\x00" + receiver_key + sender_key
    ikm = _hmac(_hmac(auth, shared), key_info + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    try:
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise ValueError("authentication failed (wrong keys?)") from None
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x02"):
        raise ValueError("the last record must end with delimiter 0x02")
    return stripped[:-1]


class FakePushServer(LoopbackServer):
    """Runs a FakePush on 127.0.0.1 in a background thread (for tests and demos)."""

    def __init__(self, fake: FakePush | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.fake = fake or FakePush()

    def app(self) -> web.Application:
        return self.fake.app()

    def start(self) -> FakePushServer:
        super().start()
        self.fake.base_url = self.url
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Web Push service")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakePush(Behaviour(args.latency_ms, args.error_rate, args.throttle_rate),
                    base_url=f"http://127.0.0.1:{args.port}")
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None)


if __name__ == "__main__":
    main()

"""Web Push subscriptions of participants' browsers and apps: stored, validated, disabled
when the push service says they are gone."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.egress import PUSH_SERVICE_HOSTS, Egress, EgressRefused
from core.models import Participant, PushSubscription
from core.participants import RegistrationError, actor_of

MAX_PUSH_SUBSCRIPTIONS = 10
MAX_ENDPOINT = 1024
DEFAULT_EGRESS = Egress(PUSH_SERVICE_HOSTS)


class PushTarget(NamedTuple):
    """One active subscription to send to: plain values, loaded once per batch."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


def add_push_subscription(session: Session, participant: Participant,
                          subscription: dict[str, Any], now: datetime, *,
                          label: str | None = None,
                          egress: Egress = DEFAULT_EGRESS) -> PushSubscription:
    """Store a browser's PushSubscription (its `toJSON()`: endpoint, keys.p256dh, keys.auth).

    Subscribing again with the same endpoint refreshes the keys and enables it again; an
    endpoint known for another participant moves to this one (the endpoint is a secret of
    the browser that made it, so whoever holds it uses that browser now). The endpoint must
    be an https URL on one of EGRESS's push services (a browser's endpoint always is); the
    addresses it resolves to are checked again at every send."""
    if not isinstance(subscription, dict):
        raise RegistrationError("a push subscription is an object with endpoint and keys")
    endpoint = _push_endpoint(subscription.get("endpoint"), egress)
    keys = subscription.get("keys")
    if not isinstance(keys, dict):
        raise RegistrationError("the push subscription has no keys (p256dh and auth)")
    p256dh = _push_key(keys.get("p256dh"), "p256dh", 65)
    auth = _push_key(keys.get("auth"), "auth", 16)
    _check_point(p256dh)
    label = (label or "").strip()[:160] or None
    existing = session.scalar(select(PushSubscription)
                              .where(PushSubscription.endpoint == endpoint))
    moved_from = None
    if existing is None or existing.participant_id != participant.id:
        active = session.scalar(select(func.count()).select_from(PushSubscription).where(
            PushSubscription.participant_id == participant.id,
            PushSubscription.disabled_at.is_(None)))
        if (active or 0) >= MAX_PUSH_SUBSCRIPTIONS:
            raise RegistrationError(f"at most {MAX_PUSH_SUBSCRIPTIONS} devices receive push "
                                    "messages; remove one first")
    if existing is None:
        existing = PushSubscription(participant_id=participant.id, endpoint=endpoint,
                                    created_at=now, failures=0)
        session.add(existing)
    elif existing.participant_id != participant.id:
        moved_from = existing.participant_id
    existing.participant_id, existing.p256dh, existing.auth = participant.id, p256dh, auth
    existing.label = label or existing.label
    existing.disabled_at, existing.failures = None, 0
    session.flush()
    moved: dict[str, Any] = {"moved_from": moved_from} if moved_from is not None else {}
    audit.record(session, "add_push_subscription", "participant", participant.id,
                 actor=actor_of(participant), subscription=existing.id,
                 service=urlsplit(endpoint).hostname, **moved)
    return existing


def remove_push_subscription(session: Session, participant: Participant,
                             endpoint: str) -> bool:
    """Forget the participant's subscription at ENDPOINT; False when there was none."""
    found = session.scalar(select(PushSubscription).where(
        PushSubscription.endpoint == (endpoint or "").strip(),
        PushSubscription.participant_id == participant.id))
    if found is None:
        return False
    audit.record(session, "remove_push_subscription", "participant", participant.id,
                 actor=actor_of(participant), subscription=found.id)
    session.delete(found)
    session.flush()
    return True


def active_push_targets(session: Session,
                        participant_ids: Iterable[int]) -> dict[int, list[PushTarget]]:
    """Per participant, the subscriptions not disabled: one query for a whole batch."""
    ids = sorted(set(participant_ids))
    targets: dict[int, list[PushTarget]] = {}
    if not ids:
        return targets
    rows = session.execute(
        select(PushSubscription.participant_id, PushSubscription.id, PushSubscription.endpoint,
               PushSubscription.p256dh, PushSubscription.auth)
        .where(PushSubscription.participant_id.in_(ids), PushSubscription.disabled_at.is_(None))
        .order_by(PushSubscription.id)).all()
    for participant_id, subscription_id, endpoint, p256dh, auth in rows:
        targets.setdefault(participant_id, []).append(
            PushTarget(subscription_id, endpoint, p256dh, auth))
    return targets


def record_push_results(session: Session, *, delivered: Iterable[int] = (),
                        failed: Iterable[int] = (), gone: Iterable[int] = (),
                        now: datetime) -> None:
    """What the push services answered for a batch, by subscription id: a success resets
    the failure count, a failure adds one, and gone (404/410: the browser unsubscribed or
    the subscription expired) disables the subscription for good."""
    delivered, failed, gone = set(delivered), set(failed), set(gone)
    if delivered:
        session.execute(update(PushSubscription).where(PushSubscription.id.in_(delivered))
                        .values(last_success_at=now, failures=0))
    if failed | gone:
        session.execute(update(PushSubscription)
                        .where(PushSubscription.id.in_((failed | gone) - delivered))
                        .values(failures=PushSubscription.failures + 1))
    if gone:
        rows = session.execute(
            update(PushSubscription)
            .where(PushSubscription.id.in_(gone), PushSubscription.disabled_at.is_(None))
            .values(disabled_at=now)
            .returning(PushSubscription.id, PushSubscription.participant_id)).all()
        for subscription_id, participant_id in rows:
            audit.record(session, "push_subscription_gone", "participant", participant_id,
                         subscription=subscription_id)


def _push_endpoint(value: object, egress: Egress) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RegistrationError("the push subscription has no endpoint")
    endpoint = value.strip()
    if len(endpoint) > MAX_ENDPOINT:
        raise RegistrationError(f"the push endpoint is longer than {MAX_ENDPOINT} characters")
    try:
        egress.check_url(endpoint)
    except EgressRefused as refused:
        raise RegistrationError(f"the push endpoint is refused: {refused}") from None
    return endpoint


def _push_key(value: object, name: str, size: int) -> str:
    """Base64url (padded or not, as browsers differ) of exactly SIZE bytes; stored unpadded."""
    if not isinstance(value, str) or not value.strip():
        raise RegistrationError(f"the push subscription has no {name} key")
    text = value.strip().rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise RegistrationError(f"the {name} key is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise RegistrationError(f"the {name} key is not base64url") from None
    if len(raw) != size:
        raise RegistrationError(f"the {name} key has {len(raw)} bytes, not {size}")
    return text


def _check_point(p256dh: str) -> None:
    raw = base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
    try:
        if raw[0] != 4:
            raise ValueError("compressed")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise RegistrationError("the p256dh key is not an uncompressed P-256 public key") \
            from None

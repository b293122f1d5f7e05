"""API tokens of the dispatch system: shown once when made, kept only as a SHA-256 hash.

A token is 256 random bits, so a plain SHA-256 (no salt, no slow hash) is enough: nobody can
guess one from its hash, and looking a token up by its hash on a unique index costs one query.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from core import audit
from core.db import changed_rows
from core.errors import BurgernetError
from core.models import ApiToken, Organisation, User
from core.permissions import ALLOWED_SCOPES, DEFAULT_SCOPES, SCOPES, parse_scopes, scope_text

#: Marks our tokens, so secret scanners and people recognise one in a log or a repository.
PREFIX = "bn_"
NAME_MAX = 120
#: Longest text that is even looked at: a real token is 46 characters.
PLAIN_MAX = 200
#: `last_used_at` is written at most this often per token, not on every request.
TOUCH_EVERY = timedelta(minutes=1)
SCOPE_UNKNOWN = "Kies alleen bevoegdheden uit de lijst."
SCOPE_NOT_ALLOWED = "Deze soort organisatie kan niet alle gekozen bevoegdheden krijgen."


class TokenInvalid(BurgernetError, ValueError):
    """A token that cannot be made as asked; ERRORS maps each field to one Dutch message."""

    error_id = "invalid_token_request"

    def __init__(self, errors: dict[str, str], details: dict[str, str] | None = None) -> None:
        self.errors = errors
        self.details = details or {}
        super().__init__("; ".join(f"{name}: {message}" + (f" ({self.details[name]})"
                                                           if name in self.details else "")
                                   for name, message in errors.items()))


class TokenNotFound(BurgernetError, LookupError):
    """No token with that id."""

    error_id = "token_not_found"


@dataclass(frozen=True)
class TokenIdentity:
    """Who a verified token acts for: enough for a request, detached from any session."""

    id: int
    name: str
    organisation_id: int
    last_used_at: datetime | None
    scopes: frozenset[str] = frozenset()

    @property
    def actor(self) -> str:
        """The name the audit trail gives this token's changes."""
        return f"api:{self.name}"[:160]


def hash_token(plain: str) -> str:
    """The hex SHA-256 of PLAIN, as stored in `ApiToken.token_hash`."""
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def create_token(session: Session, organisation: Organisation, name: str, *, now: datetime,
                 scopes: Iterable[str] | None = None, user: User | None = None,
                 actor: str | None = None, ip: str | None = None) -> tuple[ApiToken, str]:
    """A new token for ORGANISATION with SCOPES (none given: the defaults of its kind);
    returns the row and the plain token, which is not stored and cannot be shown again.
    Names are unique among an organisation's live tokens, since the audit trail tells tokens
    apart by name."""
    chosen = check_scopes(organisation, scopes)
    name = (name or "").strip()
    if not name:
        raise TokenInvalid({"name": "Vul een naam in."})
    if len(name) > NAME_MAX:
        raise TokenInvalid({"name": f"Te lang: hoogstens {NAME_MAX} tekens."})
    taken = session.scalar(select(ApiToken.id).where(
        ApiToken.organisation_id == organisation.id, ApiToken.name == name,
        ApiToken.revoked_at.is_(None)))
    if taken is not None:
        raise TokenInvalid({"name": "Deze organisatie heeft al een sleutel met deze naam."})
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=hash_token(plain), organisation_id=organisation.id,
                     scopes=scope_text(chosen), created_by_id=user.id if user else None,
                     created_at=now)
    session.add(token)
    session.flush()
    audit.record(session, "create", "api_token", token.id, user=user, actor=actor, ip=ip,
                 name=name, organisation=organisation.name, scopes=token.scopes)
    return token, plain


def check_scopes(organisation: Organisation, scopes: Iterable[str] | None) -> frozenset[str]:
    """SCOPES checked against what ORGANISATION's kind allows; none given: its defaults."""
    chosen = frozenset(scopes or ())
    if not chosen:
        return DEFAULT_SCOPES[organisation.kind]
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise TokenInvalid({"scopes": SCOPE_UNKNOWN},
                           {"scopes": f"unknown: {', '.join(unknown)}; known: "
                                      f"{', '.join(SCOPES)}"})
    allowed = ALLOWED_SCOPES[organisation.kind]
    if chosen - allowed:
        raise TokenInvalid({"scopes": SCOPE_NOT_ALLOWED}, {
            "scopes": f"a {organisation.kind.value} organisation cannot get "
                      f"{scope_text(chosen - allowed)}; it may get {scope_text(allowed)}"})
    return chosen


def set_scopes(session: Session, token_id: int, scopes: Iterable[str] | None, *,
               user: User | None = None, actor: str | None = None,
               ip: str | None = None) -> ApiToken:
    """Give a live token other SCOPES (none given: the defaults of its organisation's kind)."""
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        raise TokenNotFound(f"no live API token {token_id}")
    before, token.scopes = token.scopes, scope_text(check_scopes(token.organisation, scopes))
    audit.record(session, "change_scopes", "api_token", token_id, user=user, actor=actor,
                 ip=ip, name=token.name, before=before, after=token.scopes)
    return token


def verify_token(session: Session, plain: str) -> TokenIdentity | None:
    """The identity of a live token PLAIN, or None for an unknown, malformed or revoked one."""
    if not plain or len(plain) > PLAIN_MAX or not plain.isascii():
        return None
    digest = hash_token(plain)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None:
        return None
    return TokenIdentity(token.id, token.name, token.organisation_id, token.last_used_at,
                         parse_scopes(token.scopes))


def needs_touch(identity: TokenIdentity, now: datetime) -> bool:
    """True when `last_used_at` is older than TOUCH_EVERY (or was never set)."""
    return identity.last_used_at is None or now - identity.last_used_at >= TOUCH_EVERY


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Record that the token was used at NOW."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


def revoke_token(session: Session, token_id: int, *, now: datetime, user: User | None = None,
                 actor: str | None = None, ip: str | None = None) -> bool:
    """Revoke the token; False (and nothing written) when it was already revoked."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise TokenNotFound(f"no API token {token_id}")
    revoked = changed_rows(session,
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now))
    if revoked != 1:
        return False
    session.refresh(token)
    audit.record(session, "revoke", "api_token", token_id, user=user, actor=actor, ip=ip,
                 name=token.name)
    return True


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, live ones first, newest first; their organisations loaded."""
    return list(session.scalars(
        select(ApiToken).options(joinedload(ApiToken.organisation))
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(),
                  ApiToken.id.desc())))

"""Personal links in messages: signed, expiring tokens bound to one delivery and one purpose.

The token holds only the delivery id, signed with the application's secret and a salt of its
own, so a token made for one purpose (reacting to an inquiry) is worthless for any other and
nobody can make one for another delivery. It carries its signing time; the reader decides how
old it may be.
"""

from __future__ import annotations

from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core.errors import BurgernetError

REACTION_SALT = "burgernet.inquiry-reaction.v1"
REACTION_PATH = "/reactie/"


class LinkError(BurgernetError, ValueError):
    """A personal link that cannot be used."""

    error_id = "invalid_link"


class LinkExpired(LinkError):
    """A genuine link that is older than its lifetime."""

    error_id = "link_expired"


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=REACTION_SALT)


def reaction_token(secret: str, delivery_id: int) -> str:
    """The token of the reaction form of one inquiry e-mail."""
    return _serializer(secret).dumps(int(delivery_id))


def reaction_link(public_url: str, secret: str, delivery_id: int, language: str) -> str:
    """The full personal link for one inquiry e-mail, in the recipient's language."""
    suffix = "?lang=en" if language == "en" else ""
    return f"{public_url.rstrip('/')}{REACTION_PATH}{reaction_token(secret, delivery_id)}{suffix}"


def read_reaction_token(secret: str, token: str, lifetime: timedelta) -> int:
    """The delivery id in TOKEN; LinkExpired when it is older than LIFETIME, LinkError when it
    was not made by us for this purpose."""
    try:
        # ages are whole seconds, so the floor of LIFETIME expires a token at the same moment
        value = _serializer(secret).loads(token, max_age=int(lifetime.total_seconds()))
    except SignatureExpired:
        raise LinkExpired("the link has expired") from None
    except BadSignature:
        raise LinkError("the link is not valid") from None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LinkError("the link is not valid")
    return value

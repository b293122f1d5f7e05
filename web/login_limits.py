"""How many failed logins are allowed, and to whom: nobody can lock a user out from elsewhere.

Failures are counted in Redis (web.attempts) under three keys, so each limit pauses only the
party that earned it:

- one client on one account: 5 a minute. A guesser pauses themselves; the owner logging in
  from their own address is not affected.
- one client on any account: 20 a minute, against spraying one password over many accounts.
- one account from anywhere: 50 an hour, against guessing from many addresses. Past it the
  account is under attack: a client that failed on it within the hour is refused, one that
  did not (the owner, usually) still gets its password checked. An attacker then gets one
  guess per address per hour; the owner is paused only if they mistyped during the attack.

While a limit holds, the password is not even checked, so a pause tells nothing. A success
forgets that client's failures on the account. E-mail addresses are kept only as keyed
hashes; the client is the address TRUSTED_PROXIES reported (see create_app), an IPv6
client counted by its /64.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import request

from core.addresses import client_network
from web import attempts
from web.context import runtime

PAIR_FAILURES = 5
CLIENT_FAILURES = 20
ACCOUNT_FAILURES = 50
MINUTE = attempts.WINDOW_SECONDS
HOUR = 3600


@dataclass(frozen=True)
class _Keys:
    pair: str
    pair_hour: str
    client: str
    account: str


def _keys(email: str) -> _Keys:
    secret = runtime().settings.secret_key.encode()
    account = hmac.new(secret, email.strip().casefold().encode(),
                       hashlib.sha256).hexdigest()[:32]
    address = client_network(request.remote_addr)
    return _Keys(pair=f"login-fail:pair:{account}:{address}",
                 pair_hour=f"login-fail:pair-hour:{account}:{address}",
                 client=f"login-fail:ip:{address}",
                 account=f"login-fail:account:{account}")


def refusal(email: str) -> str | None:
    """Which limit stops a login to EMAIL from this client now ("account_from_client",
    "client" or "account"), or None when the password may be checked."""
    keys = _keys(email)
    counted = attempts.counts(runtime().redis,
                              [keys.pair, keys.client, keys.account, keys.pair_hour])
    if counted[keys.pair] >= PAIR_FAILURES:
        return "account_from_client"
    if counted[keys.client] >= CLIENT_FAILURES:
        return "client"
    if counted[keys.account] >= ACCOUNT_FAILURES and counted[keys.pair_hour] > 0:
        return "account"
    return None


def failed(email: str) -> None:
    """Count a failed login to EMAIL from this client."""
    keys = _keys(email)
    attempts.count_failures(runtime().redis, {keys.pair: MINUTE, keys.client: MINUTE,
                                              keys.pair_hour: HOUR, keys.account: HOUR})


def succeeded(email: str) -> None:
    """Forget this client's failures on EMAIL (not the account's: an attack goes on)."""
    keys = _keys(email)
    attempts.forget(runtime().redis, [keys.pair, keys.pair_hour])

"""Verification codes by SMS: one RQ job per code, sent within the SMS sender's shared rate.

The code and the number travel sealed (Fernet, keyed from SECRET_KEY) through Redis, so
neither the queue, RQ's job records and logs, nor ours hold them in clear; a job that runs
after the code has expired sends nothing. The same module keeps the portal's request limits
in Redis, per number and per client (both hashed; an IPv6 client is its /64), alike for known
and unknown numbers, so that the answers never tell whether a number is registered, and a
global budget per clock hour (CODE_SMS_PER_HOUR) that caps what SMS pumping from many numbers
and many addresses can cost: once it is spent, every request is refused until the hour ends,
and the first refusal of the hour is logged as an error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.addresses import client_network
from core.models import Channel, Language
from core.participants import CODE_TTL, MAX_ATTEMPTS, MAX_SENDS_PER_DAY, RESEND_AFTER, CodeToSend
from outbound import queues
from outbound.providers import Message, ProviderError
from outbound.runtime import Runtime

log = logging.getLogger("burgernet.codes")

#: Code requests per client address per hour (SMS pumping: many numbers from one place).
PER_CLIENT_PER_HOUR = 10
#: Code requests per clock hour in all, unless the settings say otherwise.
BUDGET_PER_HOUR = 300
HOUR = 3600

TEXT = {
    Language.NL: "Uw Burgernet-code is {code}. Hij is 10 minuten geldig; deel hem met niemand.",
    Language.EN: "Your Burgernet code is {code}. It is valid for 10 minutes; do not share it.",
}


class CodeNotSent(Exception):
    """The provider could not take the SMS now; RQ tries again (the text says only why)."""


def _fernet(secret: str) -> Fernet:
    key = HKDF(hashes.SHA256(), 32, salt=None,
               info=b"burgernet verification code by sms").derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, sent: CodeToSend, at: float | None = None) -> str:
    """The code, its number and language as one opaque token for the job's arguments."""
    payload = json.dumps({"to": sent.phone, "code": sent.code,
                          "lang": Language(sent.language).value}).encode()
    fernet = _fernet(secret)
    token = fernet.encrypt(payload) if at is None else fernet.encrypt_at_time(payload, int(at))
    return token.decode()


def unseal(secret: str, token: str, at: float | None = None) -> CodeToSend | None:
    """The sealed code, or None when it has expired (by AT) or was not sealed with SECRET."""
    ttl = int(CODE_TTL.total_seconds())
    try:
        fields = json.loads(_fernet(secret).decrypt_at_time(
            token.encode(), ttl, int(time.time() if at is None else at)))
    except InvalidToken:
        return None
    return CodeToSend(fields["to"], fields["code"], Language(fields["lang"]))


def code_text(code: str, language: Language, public_url: str = "") -> str:
    """The SMS; its last line lets a browser on that host fill in the code (WebOTP)."""
    text = TEXT[Language(language)].format(code=code)
    host = urlsplit(public_url).hostname
    return f"{text}\n\n@{host} #{code}" if host else text


def enqueue_code(connection: redis.Redis, secret: str, sent: CodeToSend) -> str:
    """Queue the SMS carrying SENT's code, sealed; returns the job id."""
    return queues.enqueue_code(connection, seal(secret, sent), CODE_TTL)


def send_code(runtime: Runtime, token: str) -> dict[str, int]:
    """The job: open the token and send the SMS at the sender's shared rate."""
    sent = unseal(runtime.settings.secret_key, token)
    if sent is None:
        log.warning("a verification code job could not be opened: it expired, or the worker's "
                    "SECRET_KEY differs from the web's")
        runtime.metrics.verification("expired")
        return {"sent": 0, "expired": 1}
    message = Message(0, Channel.SMS, sent.phone,
                      code_text(sent.code, sent.language, runtime.settings.public_url),
                      Language(sent.language).value, priority="urgent")
    try:
        runtime.run(_send(runtime, message))
    except ProviderError as error:
        if error.retryable:
            runtime.metrics.verification("retry")
            raise CodeNotSent(f"{error.code} ({error.provider_code or '-'})") from None
        log.warning("a verification code was refused by the provider: %s (%s)", error.code,
                    error.provider_code or "-")
        runtime.metrics.verification("failed")
        return {"sent": 0, "failed": 1}
    runtime.metrics.verification("sent")
    return {"sent": 1}


async def _send(runtime: Runtime, message: Message) -> str:
    """One SMS in the sender's next free slot, under its sliding-second cap."""
    sender, rate = runtime.sender_key(Channel.SMS), runtime.rate(Channel.SMS)
    before = time.monotonic()
    slot = runtime.throttle.reserve(sender, rate).start
    await asyncio.sleep(max(0.0, slot - time.time()))
    await runtime.send_window.wait(sender, rate, f"code:{time.time_ns()}")
    runtime.metrics.waited(Channel.SMS, time.monotonic() - before)
    provider = runtime.provider(Channel.SMS)
    start = time.monotonic()
    try:
        sid = await provider.send(message)
    except ProviderError as error:
        runtime.metrics.provider_request(provider.name, Channel.SMS, time.monotonic() - start,
                                         error)
        raise
    finally:
        await runtime.release(provider)
    runtime.metrics.provider_request(provider.name, Channel.SMS, time.monotonic() - start)
    return sid


# Checked and counted in one step. KEYS: recent (exists for RESEND_AFTER), per-number day
# count, per-client hour count, this hour's global count, this hour's alarm; ARGV: resend
# seconds, per-day limit, per-client limit, global budget. A refusal counts nothing.
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'wait' end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 'today' end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[3]) then return 'client' end
if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[4]) then
  if redis.call('SET', KEYS[5], '1', 'NX', 'EX', 7200) then return 'budget-first' end
  return 'budget'
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], 86400) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], 3600) end
if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], 7200) end
return 'ok'
"""


@dataclass
class CodeRequests:
    """The portal's limits on asking for codes and guessing them, kept in Redis under a
    keyed hash of the number: the same for numbers that are registered and that are not."""

    connection: redis.Redis
    secret: str
    prefix: str = "portal-code"
    budget: int = BUDGET_PER_HOUR

    def __post_init__(self) -> None:
        self._admit = self.connection.register_script(_ADMIT)

    def _key(self, kind: str, phone: str) -> str:
        digest = hmac.new(self.secret.encode(), phone.encode(), hashlib.sha256).hexdigest()
        return f"{self.prefix}:{kind}:{digest[:32]}"

    def admit(self, phone: str, client: str | None, at: float | None = None) -> str | None:
        """None when a code may be sent to PHONE now (and count it), else why not:
        'wait' (one a minute), 'today' (five a day), 'client' (too many from CLIENT's
        address, or its IPv6 /64), 'budget' (the hour's budget for all is spent) or
        'budget-first' (the same, said for the first time this hour: raise the alarm)."""
        hour = int((time.time() if at is None else at) // HOUR)
        answer = self._admit(keys=[self._key("recent", phone), self._key("day", phone),
                                   self._key("client", client_network(client)),
                                   f"{self.prefix}:budget:{hour}",
                                   f"{self.prefix}:budget-alarm:{hour}"],
                             args=[int(RESEND_AFTER.total_seconds()), MAX_SENDS_PER_DAY,
                                   PER_CLIENT_PER_HOUR, self.budget])
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        if answer == "budget-first":
            log.error("the budget of %d verification codes by SMS per hour is spent: every "
                      "code request is refused until %s UTC (SMS pumping?)", self.budget,
                      time.strftime("%H:00", time.gmtime((hour + 1) * HOUR)))
        return None if answer == "ok" else answer

    def spent(self, at: float | None = None) -> int:
        """Codes admitted so far in the clock hour of AT, against `budget`."""
        hour = int((time.time() if at is None else at) // HOUR)
        return int(self.connection.get(f"{self.prefix}:budget:{hour}") or 0)

    def issued(self, phone: str) -> None:
        """A new code went out: its guesses start from zero."""
        self.connection.delete(self._key("attempts", phone))

    def failed(self, phone: str) -> int:
        """Count a wrong guess; returns the guesses left for the current code."""
        key = self._key("attempts", phone)
        with self.connection.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, int(CODE_TTL.total_seconds()))
            count = int(pipe.execute()[0])
        return max(0, MAX_ATTEMPTS - count)

    def left(self, phone: str) -> int:
        """Guesses left for the current code of PHONE."""
        return max(0, MAX_ATTEMPTS - int(self.connection.get(self._key("attempts", phone)) or 0))

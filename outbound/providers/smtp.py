"""E-mail over SMTP with aiosmtplib: one connection per message, STARTTLS when configured.

What a failure means for the message: a server that cannot be reached, or refuses the
connection or the session (421), took nothing: that is "not sent", and the sender holds back
(`outbound.breaker`) without counting an attempt. A reply refusing the message (4xx, 5xx)
took nothing either. A connection that drops or times out in the middle of the session may
have dropped after the end of DATA, when the server had the message: SMTP keeps no record we
could ask (`find_sent`), so that send counts as a failed attempt and the message is sent
again: a possible second e-mail rather than a lost alert."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from outbound.providers import Message, ProviderError

#: Unicode categories that cannot stand in a header line: controls (CR, LF among them), line
#: and paragraph separators, lone surrogates.
BREAKING = frozenset({"Cc", "Zl", "Zp", "Cs"})


class SmtpProvider:
    """Sends a plain-text e-mail; the Message-ID is the provider id."""

    name = "smtp"
    keep_open = False

    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 timeout: float = 15.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username or None, password or None
        self.starttls, self.timeout = starttls, timeout

    async def send(self, message: Message) -> str:
        if not message.to:
            raise ProviderError(False, "no_address", detail="participant has no e-mail address")
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = one_line(message.subject or message.body[:78])
        email["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        email.set_content(message.body)
        email["Content-Language"] = message.language  # after set_content, which resets it
        try:
            await aiosmtplib.send(email, hostname=self.host, port=self.port,
                                  username=self.username, password=self.password,
                                  start_tls=self.starttls, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [str(r.code) for r in exc.recipients]
            raise ProviderError(not any(c.startswith("5") for c in codes), "refused",
                                ",".join(codes), str(exc)[:200]) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ProviderError(exc.code < 500, f"smtp_{exc.code}", str(exc.code),
                                exc.message[:200], unavailable=exc.code == 421) from None
        except aiosmtplib.SMTPConnectError as exc:  # nothing was said: nothing was taken
            raise ProviderError(True, "network", None, type(exc).__name__,
                                unavailable=True) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise ProviderError(True, "network", None, type(exc).__name__) from None
        return str(email["Message-ID"])

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # SMTP keeps no record to ask; a reclaimed or dropped e-mail may go twice

    async def close(self) -> None:
        return None


def one_line(text: str) -> str:
    """TEXT as a header value: every run of whitespace and control characters (a line break
    would make the header invalid, and Python refuses to write it) becomes one space."""
    return " ".join("".join(" " if unicodedata.category(char) in BREAKING else char
                            for char in text).split())

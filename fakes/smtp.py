"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts and refuses
the recipients it is told to, with the reply it is given. It can be stopped and started
again on the same port (a mail server that is down for a while), its inbox kept."""

from __future__ import annotations

from email import message_from_bytes
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from fakes.loopback import free_port


class Inbox:
    """An SMTP handler that keeps what it gets and refuses addresses on request."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, object]] = []
        #: Recipient address -> the SMTP reply that refuses it, e.g. "550 no such user".
        self.refuse: dict[str, str] = {}
        #: Keep the message, then drop the connection before the reply to DATA.
        self.drop_after_data = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((envelope, message_from_bytes(envelope.content)))
        if self.drop_after_data:
            server.transport.close()
        return "250 Message accepted for delivery"


class SmtpServer:
    """An Inbox served on a free (or given) port of 127.0.0.1 in a background thread until
    stopped; `start` after `stop` serves the same inbox on the same port again."""

    def __init__(self, inbox: Inbox | None = None, port: int = 0) -> None:
        self.inbox = inbox or Inbox()
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> Self:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

"""Providers behind one small interface: each sends one message and says whether to retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.models import Channel
from core.push import PushTarget


@dataclass(frozen=True)
class Message:
    """One message ready to go: who, what, and where status callbacks should go."""

    delivery_id: int
    channel: Channel
    to: str
    body: str
    language: str
    status_callback: str | None = None
    subject: str | None = None
    action_id: int | None = None
    #: The queue priority (urgent, normal or result): how soon the message is worth having.
    priority: str = "normal"
    #: Push only: the participant's active subscriptions (`to` holds the participant id).
    push: tuple[PushTarget, ...] = ()


class ProviderError(Exception):
    """A failed send, as data: whether to retry, our code, and the provider's own code.

    UNKNOWN: the request went out but no answer came back (a timeout, a connection reset),
    so the provider may have taken the message: it is looked up (`find_sent`) before any new
    attempt, never simply sent again.

    UNAVAILABLE: the provider refused service as a whole (503, 429, not reachable), which says
    nothing about this message and means it was not taken: it is tried again without counting
    an attempt (`outbound.breaker`)."""

    def __init__(self, retryable: bool, code: str, provider_code: str | None = None,
                 detail: str = "", *, unknown: bool = False, unavailable: bool = False) -> None:
        self.retryable = retryable
        self.code = code
        self.provider_code = provider_code
        self.unknown = unknown
        self.unavailable = unavailable
        super().__init__(f"{code}{f' ({provider_code})' if provider_code else ''}: {detail}")


class Provider(Protocol):
    """Sends a message; returns the provider's id for it, or raises ProviderError."""

    name: str
    #: True: one instance serves every batch of a worker process, its connections kept open
    #: between batches, and is closed when the process ends. False: each batch makes its own
    #: and closes it after (a push provider reports its answers when closed).
    keep_open: bool

    async def send(self, message: Message) -> str: ...

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        """The provider's id of MESSAGE if it already accepted it after SINCE: for a send
        whose answer never came, and for deliveries whose worker died between the provider's
        answer and our record. Raises ProviderError when the provider cannot be asked."""
        ...

    async def close(self) -> None: ...

"""What can go wrong on SIP, as the IVR runner needs to tell it apart (busy, no answer, other)."""

from __future__ import annotations

from core.errors import BurgernetError


class SipError(BurgernetError):
    """A SIP request failed; STATUS is the final response code when there was one."""

    error_id = "sip_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SipBusy(SipError):
    """The callee is busy or declined (486, 600, 603)."""

    error_id = "sip_busy"


class SipNoAnswer(SipError):
    """Nobody answered before the timeout, or the network said so (408, 480, 487)."""

    error_id = "sip_no_answer"


BUSY_STATUSES = frozenset({486, 600, 603})
NO_ANSWER_STATUSES = frozenset({408, 480, 487})


def error_for_status(status: int, reason: str, target: str) -> SipError:
    """The exception for a final non-2xx response to an INVITE to TARGET."""
    message = f"call to {target} failed: {status} {reason}".rstrip()
    if status in BUSY_STATUSES:
        return SipBusy(message, status=status)
    if status in NO_ANSWER_STATUSES:
        return SipNoAnswer(message, status=status)
    return SipError(message, status=status)

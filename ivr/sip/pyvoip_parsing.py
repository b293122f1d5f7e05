"""Fixes to pyVoIP 1.6.8's SIP message parsing (patches on `SIPMessage`: pyVoIP builds
messages in many places no subclass reaches)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol, cast

from ivr.sip.body import sdp_of
from ivr.sip.headers import CANONICAL, COMPACT
from ivr.sip.pyvoip import SIP, Fix, Patch

SIPMessage = SIP.SIPMessage
#: A request line's method: a token (RFC 3261 §25.1).
_METHOD = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")


class StatusLine(Protocol):
    """What `_parse_sip_response` keeps on every response `SIPMessage` (pyVoIP keeps neither)."""

    status_code: int
    reason: str


def status_line(response: SIP.SIPMessage) -> StatusLine:
    """RESPONSE's real status code and reason phrase (unknown-status-code, below)."""
    return cast(StatusLine, response)  # pyVoIP's class does not declare what the fix sets on it


def _parse_raw_header(headers_raw: list[bytes], handle: Callable[[str, str], None]) -> None:
    """Split on the first colon, skip empty values, expand compact and other spellings."""
    headers: dict[str, Any] = {"Via": []}
    for line in headers_raw:
        name, colon, value = str(line, "utf8").partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not value:
            continue
        name = COMPACT.get(name) or CANONICAL.get(name.lower(), name)
        if name == "Via":
            headers["Via"].append(value)
        elif name not in headers:
            headers[name] = value
    for key, val in headers.items():
        handle(key, val)


def _parse_raw_body(body: bytes, handle: Callable[[str, str], None]) -> None:
    """Split each SDP line on its first "=", skip lines without one."""
    for line in body.split(b"\r\n"):
        key, equals, value = str(line, "utf8").partition("=")
        if equals and key.strip():
            handle(key.strip(), value.rstrip())


def _parse_sdp_body(message: SIP.SIPMessage, body: bytes) -> None:
    """Parse the SDP of BODY, alone or a part of a multipart body, keeping the Content-Type."""
    content_type = message.headers.get("Content-Type", "")
    sdp = sdp_of(content_type, body)
    if sdp is None:
        return
    message.headers["Content-Type"] = "application/sdp"  # what parse_body keys on
    try:
        message.parse_raw_body(sdp, message.parse_body)
    finally:
        message.headers["Content-Type"] = content_type


def _parse(self: SIP.SIPMessage, data: bytes) -> None:
    """pyVoIP's `parse`, taking a request of any method: what the endpoint does not support
    is answered by the client (options-unanswered), not dropped here."""
    words = data.split(b"\r\n", 1)[0].split(b" ")
    if str(words[0], "utf8", "replace") in self.SIPCompatibleVersions:
        self.type = SIP.SIPMessageType.RESPONSE
        self.parse_sip_response(data)
    elif len(words) == 3 and _METHOD.fullmatch(words[0]):
        self.type = SIP.SIPMessageType.MESSAGE
        self.parse_sip_message(data)
    else:
        raise SIP.SIPParseError(f"Unable to decipher SIP request: {words[0]!r}")


def _parse_sip_message(self: SIP.SIPMessage, data: bytes) -> None:
    """pyVoIP's `parse_sip_message`, the body split off at the first blank line only."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers_raw = head.split(b"\r\n")
    self.heading = headers_raw.pop(0)
    words = self.heading.split(b" ")
    self.version = str(words[-1], "utf8")
    if self.version not in self.SIPCompatibleVersions:
        raise SIP.SIPParseError(f"SIP Version {self.version} not compatible.")
    self.method = str(words[0], "utf8")
    self.parse_raw_header(headers_raw, self.parse_header)
    _parse_sdp_body(self, body)


def _parse_sip_response(self: SIP.SIPMessage, data: bytes) -> None:
    """pyVoIP's `parse_sip_response`, keeping the real code and reason in `status_code` and
    `reason` (an unknown code maps to its class in `status`), and the body as in requests."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers_raw = head.split(b"\r\n")
    self.heading = headers_raw.pop(0)
    words = self.heading.split(b" ", 2)
    self.version = str(words[0], "utf8")
    if self.version not in self.SIPCompatibleVersions:
        raise SIP.SIPParseError(f"SIP Version {self.version} not compatible.")
    line = status_line(self)
    line.status_code = int(words[1])
    line.reason = str(words[2], "utf8") if len(words) > 2 else ""
    try:
        self.status = SIP.SIPStatus(line.status_code)
    except ValueError:
        self.status = SIP.SIPStatus(line.status_code // 100 * 100)
    self.parse_raw_header(headers_raw, self.parse_header)
    _parse_sdp_body(self, body)


FIXES = (
    Fix("header-lines", "parsing",
        "`SIPMessage.parse_raw_header` splits each line on \": \" and takes [1]: an empty header "
        "(baresip's `Supported:`) or one without a space after the colon raises IndexError and "
        "the whole message is dropped silently; compact names (`i:`, `f:`) and other spellings "
        "(`cseq:`) are not recognised, so Call-ID, From, CSeq are missing.",
        rfc="RFC 3261 §7.3.1 (names case-insensitive, any whitespace), §7.3.3 (compact forms)",
        patches=(Patch.on(SIPMessage, "parse_raw_header", staticmethod(_parse_raw_header)),)),
    Fix("sdp-lines", "parsing",
        "`SIPMessage.parse_raw_body` splits SDP lines on every \"=\", cutting values such as "
        "`a=fmtp:18 annexb=no` short, and raises IndexError on a line without one.",
        rfc="RFC 4566 §5 (<type>=<value>, the value may contain \"=\")",
        patches=(Patch.on(SIPMessage, "parse_raw_body", staticmethod(_parse_raw_body)),)),
    Fix("multipart-request-body", "parsing",
        "`SIPMessage.parse_sip_message` unpacks `data.split(b\"\\r\\n\\r\\n\")` into two names: a "
        "body with a blank line in it (every multipart body) raises ValueError and the INVITE "
        "is dropped; and it parses a body only when its Content-Type is exactly "
        "application/sdp, so an INVITE with SDP and PIDF-LO gets no media.",
        rfc="RFC 6442 §4.1 (location by value: multipart/mixed with SDP and PIDF-LO), RFC 5621",
        patches=(Patch.on(SIPMessage, "parse_sip_message", _parse_sip_message),)),
    Fix("unknown-status-code", "parsing",
        "`SIPMessage.parse_sip_response` raises ValueError on any status code missing from its "
        "`SIPStatus` enum (the response is dropped) and keeps no reason phrase; its body is split "
        "as in multipart-request-body.",
        rfc="RFC 3261 §8.1.3.2 (an unknown response code is treated as x00 of its class)",
        patches=(Patch.on(SIPMessage, "parse_sip_response", _parse_sip_response),)),
    Fix("unknown-method", "parsing",
        "`SIPMessage.parse` raises SIPParseError on a request of any method but INVITE, ACK, "
        "BYE and CANCEL: an OPTIONS (a proxy's keepalive probe), INFO or MESSAGE is dropped "
        "unanswered and its sender retransmits until its transaction times out.",
        rfc="RFC 3261 §7.1 (a request line's method is any token), §8.2.1 (a UAS answers a "
            "method it does not support)",
        patches=(Patch.on(SIPMessage, "parse", _parse),)),
)

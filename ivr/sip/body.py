"""Message bodies: the SDP inside a multipart body, and the parts of a multipart body.

An emergency-style INVITE carries its location by value: `Geolocation: <cid:...>` names a body
part with that Content-ID, next to the SDP, in a multipart/mixed body (RFC 6442). Parts laid out
as RFC 6442's examples print them (a blank line after the boundary) are read as routing reads
them (`routing.pidf.headed_part`).
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.parser import BytesParser

from routing.pidf import headed_part


@dataclass(frozen=True)
class BodyPart:
    content_type: str
    content_id: str | None
    data: bytes


def media_type(content_type: str) -> str:
    """"multipart/mixed; boundary=x" -> "multipart/mixed"."""
    return content_type.split(";", 1)[0].strip().lower()


def body_parts(content_type: str, body: bytes) -> list[BodyPart]:
    """The parts of BODY; a body that is not multipart is one part."""
    if not body:
        return []
    if not media_type(content_type).startswith("multipart/"):
        return [BodyPart(media_type(content_type), None, body)]
    envelope = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = BytesParser(policy=policy.compat32).parsebytes(envelope)
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        part, payload = headed_part(part)
        content_id = part.get("Content-ID")  # a Header, not a str, when it has a non-ASCII byte
        parts.append(BodyPart(part.get_content_type(),
                              str(content_id).strip() if content_id else None, payload))
    return parts


def sdp_of(content_type: str, body: bytes) -> bytes | None:
    """The SDP in BODY (itself, or its application/sdp part), with CRLF line ends."""
    for part in body_parts(content_type, body):
        if part.content_type == "application/sdp":
            return part.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return None


def part_for_cid(parts: list[BodyPart], cid_uri: str) -> BodyPart | None:
    """The part a `cid:` URI (RFC 2392) names, e.g. from a Geolocation header."""
    wanted = cid_uri.strip().strip("<>")
    if wanted.lower().startswith("cid:"):
        wanted = wanted[4:]
    for part in parts:
        if part.content_id and part.content_id.strip("<>") == wanted:
            return part
    return None

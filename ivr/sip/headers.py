"""Reading raw SIP messages where pyVoIP's parsed headers fall short (it keeps only the first
occurrence of each header and parses a few by name)."""

from __future__ import annotations

import re

# Compact forms (RFC 3261 §7.3.3) and the spelling pyVoIP looks headers up by.
COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
           "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
           "v": "Via"}
CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Content-Length",
    "Content-Encoding", "Allow", "Supported", "WWW-Authenticate", "Authorization",
    "Record-Route", "Route", "Expires", "Max-Forwards", "Geolocation", "User-Agent")}


def uri_of(value: str | None) -> str | None:
    """The URI in a Contact/From/To value: `"x" <sip:a@b>;p=1` -> `sip:a@b`."""
    if not value:
        return None
    match = re.search(r"<([^>]*)>", value)
    return match.group(1) if match else value.split(";", 1)[0].strip()


def header_values(raw: bytes, name: str) -> list[str]:
    """Every value of header NAME in a raw message, in order, comma-separated ones split (pyVoIP
    keeps only the first occurrence of each header)."""
    head = raw.partition(b"\r\n\r\n")[0].decode("utf8", "replace")
    values: list[str] = []
    for line in head.split("\r\n")[1:]:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name.lower():
            values.extend(v.strip() for v in re.findall(r"<[^>]*>[^,]*", value))
    return values


def raw_headers(raw: bytes) -> dict[str, str]:
    """The header section of a raw message as a dict (repeated headers joined with ", ")."""
    head = raw.partition(b"\r\n\r\n")[0].decode("utf8", "replace")
    headers: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        key, colon, value = line.partition(":")
        if not colon:
            continue
        key = COMPACT.get(key.strip()) or key.strip()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return headers


def raw_body(raw: bytes) -> bytes:
    """The body of a raw message (everything after the first blank line)."""
    return raw.partition(b"\r\n\r\n")[2]

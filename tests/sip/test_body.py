"""The parts of an INVITE body as the SIP side splits them (no SIP peer needed)."""

from ivr.sip.body import body_parts, part_for_cid, sdp_of
from tests.routing.conftest import DATA

CONTENT_TYPE = "multipart/mixed; boundary=boundary1"


def _rfc6442_body(name: str) -> bytes:
    return (DATA / "pidf" / name).read_bytes().split(b"\n\n", 1)[1]


def test_an_invite_body_laid_out_as_rfc_6442_prints_it_gives_its_sdp_and_pidf_parts() -> None:
    """A blank line after each boundary and none after the part headers (Section 5.2): the
    SDP still reaches pyVoIP and the Geolocation cid still names the PIDF-LO."""
    for name in ("rfc6442-5.2-invite.txt", "rfc6442-5.2-invite-fixed.txt"):
        parts = body_parts(CONTENT_TYPE, _rfc6442_body(name))
        assert [p.content_type for p in parts] == ["application/sdp", "application/pidf+xml"]
        assert sdp_of(CONTENT_TYPE, _rfc6442_body(name)) == b"...SDP goes here\r\n"
        part = part_for_cid(parts, "<cid:target123@atlanta.example.com>")
        assert part is not None and part.data.startswith(b'<?xml version="1.0"')
        assert part.data.rstrip().endswith(b"</presence>")


def test_a_non_ascii_byte_in_a_part_header_does_not_break_the_split() -> None:
    body = _rfc6442_body("rfc6442-5.2-invite-fixed.txt").replace(b"Content-ID: <",
                                                                 b"Content-ID:\xff <")
    parts = body_parts(CONTENT_TYPE, body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/pidf+xml"]
    assert part_for_cid(parts, "<cid:target123@atlanta.example.com>") is None
    assert sdp_of(CONTENT_TYPE, body) == b"...SDP goes here\r\n"

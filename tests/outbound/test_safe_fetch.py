"""Fetching outside URLs (`outbound.safe_fetch`) against a local media host: redirects
checked hop by hop, one deadline for the whole download, a size cap, https only and never an
address inside, checked where the socket connects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiohttp.abc import AbstractResolver

from core.addresses import client_network, is_public
from core.egress import Egress, EgressRefused, host_matches, parse_hosts
from core.errors import ConfigError
from fakes.dns import StaticResolver
from fakes.media import MediaServer
from outbound import safe_fetch
from outbound.safe_fetch import Fetched, FetchRefused

#: The media host runs on 127.0.0.1 over http: only the test-only allowance reaches it.
LOCAL = Egress(("media.example.net",), test_only_allow_loopback=True)
PRODUCTION = Egress(("media.example.net", "*.twiliocdn.com"))
JPEG = b"\xff\xd8\xff\xe0 a photo"


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        server.files["photo.jpg"] = (JPEG, "image/jpeg")
        yield server


def _get(url: str, egress: Egress = LOCAL, *, resolver: AbstractResolver | None = None,
         deadline: float = 5.0, max_bytes: int = 5 * 1024 * 1024, max_redirects: int = 3,
         authorization: str | None = None, auth_hosts: tuple[str, ...] = ()) -> Fetched:
    async def go() -> Fetched:
        async with safe_fetch.session(egress, resolver=resolver) as client:
            return await safe_fetch.fetch(client, url, egress, max_bytes=max_bytes,
                                          deadline=deadline, max_redirects=max_redirects,
                                          authorization=authorization, auth_hosts=auth_hosts)

    return asyncio.run(go())


def _refused(url: str, reason: str, **kwargs) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        _get(url, **kwargs)
    assert caught.value.reason == reason, caught.value
    return caught.value


def test_a_file_is_fetched_and_credentials_do_not_follow_a_redirect_elsewhere(media) -> None:
    fetched = _get(f"{media.url}/api/photo.jpg", authorization="Basic c2VjcmV0",
                   auth_hosts=("127.0.0.1",))
    assert fetched.content == JPEG and fetched.content_type == "image/jpeg"
    assert fetched.url == f"http://localhost:{media.port}/media/photo.jpg"
    assert media.requests == [("/api/photo.jpg", "Basic c2VjcmV0"),
                              ("/media/photo.jpg", None)]


def test_plain_http_is_refused_without_the_test_allowance(media) -> None:
    refused = _refused(f"{media.url}/media/photo.jpg", "url", egress=PRODUCTION)
    assert "https" in str(refused) and not media.requests
    _refused("http://media.example.net/photo.jpg", "url", egress=PRODUCTION)


def test_a_redirect_to_a_foreign_host_is_refused(media) -> None:
    refused = _refused(f"{media.url}/redirect?to=https://evil.example/x.jpg", "url")
    assert "evil.example is not a known host" in str(refused)
    assert [path for path, _ in media.requests] == ["/redirect?to=https://evil.example/x.jpg"]


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data", "https://169.254.169.254/latest/meta-data",
    "https://10.0.0.7/x.jpg", "https://[fd00::7]/x.jpg", "https://[::ffff:10.0.0.7]/x.jpg",
    "ftp://media.example.net/x.jpg", "https://user:pw@media.example.net/x.jpg"])
def test_a_redirect_inside_or_off_https_is_refused(media, target: str) -> None:
    _refused(f"{media.url}/redirect?to={target}", "url")
    assert len(media.requests) == 1


def test_too_many_redirects_are_refused(media) -> None:
    _refused(f"{media.url}/loop/0", "redirects", max_redirects=3)
    assert [path for path, _ in media.requests] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


def test_a_slow_drip_is_cut_off_by_the_deadline_for_the_whole_download(media) -> None:
    started = time.monotonic()
    refused = _refused(f"{media.url}/drip", "timeout", deadline=0.5)
    assert "within 0.5 s" in str(refused)
    assert time.monotonic() - started < 5  # never waits for a body that does not end


def test_a_body_over_the_limit_is_refused_without_a_content_length(media) -> None:
    _refused(f"{media.url}/big", "too_large", max_bytes=5 * 1024 * 1024)


@pytest.mark.parametrize("address", ["10.0.0.7", "192.168.0.1", "169.254.169.254", "127.0.0.1",
                                     "::1", "fe80::1", "fd12::1", "100.64.1.1", "0.0.0.0"])
def test_a_name_that_resolves_inside_is_refused_before_connecting(address: str) -> None:
    resolver = StaticResolver({"media.example.net": [address]})
    refused = _refused("https://media.example.net/x.jpg", "address", egress=PRODUCTION,
                       resolver=resolver)
    assert address in str(refused) and resolver.asked == ["media.example.net"]


def test_a_name_is_resolved_again_for_every_new_connection(media) -> None:
    """DNS rebinding: a name that pointed at this machine before is checked at connect."""
    resolver = StaticResolver({"media.example.net": ["127.0.0.1"]})
    egress = Egress(("media.example.net",))
    _refused("https://media.example.net/x.jpg", "address", egress=egress, resolver=resolver)
    _refused("https://media.example.net/y.jpg", "address", egress=egress, resolver=resolver)
    assert resolver.asked == ["media.example.net", "media.example.net"]


def test_the_socket_itself_refuses_an_address_inside(media) -> None:
    """Even a request that skipped every URL check cannot connect inside."""
    async def go() -> None:
        async with safe_fetch.session(PRODUCTION) as client:
            await client.get(f"{media.url}/media/photo.jpg")

    with pytest.raises(Exception) as caught:
        asyncio.run(go())
    assert isinstance(safe_fetch.refused_address(caught.value), safe_fetch.AddressRefused)
    assert not media.requests


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2a00:1450:4001::1", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.31.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("224.0.0.1", False), ("0.0.0.0", False), ("::", False),
    ("::1", False), ("fe80::1%eth0", False), ("fc00::1", False), ("fec0::1", False),
    ("::ffff:10.0.0.1", False), ("2002:a00:1::1", False), ("64:ff9b::7f00:1", False),
    ("64:ff9b::808:808", True), ("ff02::1", False), ("not an address", False)])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(("host", "allowed"), [
    ("fcm.googleapis.com", True), ("FCM.googleapis.com.", True),
    ("wns2-par02p.notify.windows.com", True), ("notify.windows.com", False),
    ("evilnotify.windows.com", False), ("fcm.googleapis.com.evil.example", False)])
def test_host_patterns(host: str, allowed: bool) -> None:
    assert host_matches(host, ("fcm.googleapis.com", "*.notify.windows.com")) is allowed


def test_host_lists_in_settings_are_checked() -> None:
    assert parse_hosts(" a.example , *.b.example,,127.0.0.1 ", "X") == (
        "a.example", "*.b.example", "127.0.0.1")
    for bad in ("*", "*.com.", "http://a.example", "a.example/path", "a b.example"):
        with pytest.raises(ConfigError, match="X"):
            parse_hosts(bad, "X")


def test_the_url_check_says_why() -> None:
    with pytest.raises(EgressRefused, match="not a URL"):
        PRODUCTION.check_url("https://media.example.net:notaport/")
    with pytest.raises(EgressRefused, match="empty"):
        PRODUCTION.check_url(None)


@pytest.mark.parametrize(("address", "client"), [
    ("192.0.2.7", "192.0.2.7"), ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"), (None, "-"), ("unix:socket", "unix:socket")])
def test_an_ipv6_client_is_its_64(address: str | None, client: str) -> None:
    assert client_network(address) == client

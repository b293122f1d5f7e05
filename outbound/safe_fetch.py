"""HTTP to URLs that came from outside (push endpoints, MMS media links) that cannot be turned
against the inside: the rules of `core.egress`, applied where the connection is made.

Every session made here checks three times. The URL (scheme, host list, an IP literal's
address) before each request and each redirect hop; the resolver's answer (every address of
the name must be public: a name that resolves inside is refused whole); and the address of
every socket right before it connects, which is the address actually dialled. The last check
is what defeats DNS rebinding: whatever a name resolves to later, the connection goes only to
an address that passed. Redirects are never followed by aiohttp; `fetch` follows them by
hand, checking each hop, and a deadline covers the whole download (connect, redirects and
body), so a server that drips one byte a second cannot hold a web worker.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from core.egress import LOCALHOST, Egress, EgressRefused, host_matches

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


class AddressRefused(OSError):
    """A connection to an address that is not public (raised inside the connector)."""


class FetchRefused(Exception):
    """The URL was not fetched; REASON is one of url, address, redirects, too_large, status,
    timeout or network, and the message says the rest."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str
    url: str


class CheckedResolver(AbstractResolver):
    """Resolves only names the egress rules allow, and only to addresses they allow."""

    def __init__(self, egress: Egress, inner: AbstractResolver | None = None) -> None:
        self.egress = egress
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        local = self.egress.test_only_allow_loopback and name in LOCALHOST
        if not local and not host_matches(name, self.egress.hosts):
            raise AddressRefused(f"{host} is not a known host for this URL")
        if self._inner is None:
            self._inner = DefaultResolver()
        answers = await self._inner.resolve(host, port, family)
        refused = [a["host"] for a in answers if not self.egress.allows_address(a["host"])]
        if refused or not answers:
            raise AddressRefused(f"{host} resolves to {refused[0] if refused else 'nothing'}, "
                                 "not a public address")
        return answers

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _guarded_socket(egress: Egress) -> aiohttp.SocketFactoryType:
    """A socket factory that refuses, just before connecting, any address EGRESS forbids."""
    def make(addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, kind, proto, _, address = addr_info
        if not egress.allows_address(address[0]):
            raise AddressRefused(f"{address[0]} is not a public address")
        return socket.socket(family=family, type=kind, proto=proto)
    return make


def session(egress: Egress, *, resolver: AbstractResolver | None = None, limit: int = 100,
            timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientSession:
    """An aiohttp session whose every connection obeys EGRESS (and no proxy from the
    environment). Make it inside the event loop that uses it."""
    connector = aiohttp.TCPConnector(limit=limit, resolver=CheckedResolver(egress, resolver),
                                     socket_factory=_guarded_socket(egress))
    return aiohttp.ClientSession(connector=connector, trust_env=False,
                                 timeout=timeout or aiohttp.ClientTimeout(total=60))


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def refused_address(error: BaseException) -> AddressRefused | None:
    """The AddressRefused behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError):
            seen = seen.os_error if seen.os_error is not seen else seen.__cause__
            continue
        seen = seen.__cause__
    return None


async def fetch(client: aiohttp.ClientSession, url: str, egress: Egress, *, max_bytes: int,
                deadline: float, max_redirects: int = 3, authorization: str | None = None,
                auth_hosts: Iterable[str] = ()) -> Fetched:
    """GET URL with CLIENT (a `session(EGRESS)`), following at most MAX_REDIRECTS redirects
    that EGRESS allows, within DEADLINE seconds in all, reading at most MAX_BYTES. The
    AUTHORIZATION header goes only to hosts in AUTH_HOSTS (patterns), so not along a redirect
    to anyone else. FetchRefused if not fetched."""
    try:
        async with asyncio.timeout(deadline):
            return await _follow(client, url, egress, max_bytes, max_redirects, authorization,
                                 tuple(auth_hosts))
    except TimeoutError:
        raise FetchRefused("timeout", f"not fetched within {deadline:g} s") from None


async def _follow(client: aiohttp.ClientSession, url: str, egress: Egress, max_bytes: int,
                  max_redirects: int, authorization: str | None,
                  auth_hosts: tuple[str, ...]) -> Fetched:
    for _hop in range(max_redirects + 1):
        try:
            host = egress.check_url(url).hostname or ""
        except EgressRefused as refused:
            raise FetchRefused("url", str(refused)) from None
        headers = ({"Authorization": authorization}
                   if authorization and host_matches(host, auth_hosts) else {})
        try:
            async with client.get(url, allow_redirects=False, headers=headers) as response:
                if response.status in REDIRECTS and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise FetchRefused("status", f"HTTP {response.status}")
                if (response.content_length or 0) > max_bytes:
                    raise FetchRefused("too_large", f"{response.content_length} bytes")
                content = await _read(response.content, max_bytes)
                return Fetched(content, response.headers.get("Content-Type", ""), url)
        except aiohttp.ClientError as error:
            address = refused_address(error)
            if address is not None:
                raise FetchRefused("address", str(address)) from None
            raise FetchRefused("network", type(error).__name__) from None
    raise FetchRefused("redirects", f"more than {max_redirects} redirects")


async def _read(stream: aiohttp.StreamReader, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := await stream.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FetchRefused("too_large", f"more than {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)

"""Where the server may connect for a URL that came from outside (a browser's push endpoint, a
provider's media link): https only, to hosts on a configured list, and only to public
addresses. The connection itself is guarded in `outbound.safe_fetch`, which checks the
addresses that are actually dialled; this module holds the rules and checks the URL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from core.addresses import is_loopback, is_public, parse
from core.errors import BurgernetError, ConfigError

#: The push services of the browsers people use: Chrome, Edge on Android, Opera, Samsung
#: and Brave (Google FCM), Firefox (Mozilla autopush), Edge on Windows (WNS) and Safari
#: (Apple, web.push.apple.com; Apple asks servers to allow *.push.apple.com).
PUSH_SERVICE_HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com",
                      "*.notify.windows.com", "*.push.apple.com")
#: Twilio's MMS media: the link in the webhook is on api.twilio.com, which redirects to a
#: short-lived URL on mms.twiliocdn.com (media with HTTP auth enforced) or, for older
#: unprotected media, to s3-external-1.amazonaws.com.
MMS_MEDIA_HOSTS = ("api.twilio.com", "*.twiliocdn.com", "s3-external-1.amazonaws.com")
LOCALHOST = frozenset({"localhost", "localhost.localdomain"})
_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}"
                   r"[a-z0-9])?$")


class EgressRefused(BurgernetError, ValueError):
    """A URL or address the server will not connect to; the message says why."""

    error_id = "egress_refused"


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """True when HOST is one of PATTERNS: a name (exactly), *.domain (any name under it) or an
    IP address."""
    name = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                return True
        elif name == pattern:
            return True
    return False


def parse_hosts(value: str, setting: str) -> tuple[str, ...]:
    """A comma-separated host list from a setting: names, *.domain or IP addresses."""
    hosts = tuple(h.strip().lower().rstrip(".") for h in value.split(",") if h.strip())
    for host in hosts:
        name = host.removeprefix("*.")
        if not (_NAME.match(host) and "." in name or parse(host) is not None):
            raise ConfigError(f"{setting}: {host!r} is not a host name, *.domain (a domain "
                              "with a dot, not a whole top-level domain) or IP address")
    return hosts


@dataclass(frozen=True)
class Egress:
    """The hosts a kind of outside URL may lead to.

    TEST_ONLY_ALLOW_LOOPBACK lets such a URL reach this machine (127.0.0.0/8, ::1,
    localhost), over plain http too: the local fake push service and media server of the
    tests. No setting read from the environment turns it on.
    """

    hosts: tuple[str, ...]
    test_only_allow_loopback: bool = False

    def allows_address(self, address: str) -> bool:
        """Whether a connection to ADDRESS (an IP address) may be made."""
        return is_public(address) or (self.test_only_allow_loopback and is_loopback(address))

    def check_url(self, url: object) -> SplitResult:
        """URL, split, if it may be fetched; EgressRefused saying why not."""
        if not isinstance(url, str) or not url.strip():
            raise EgressRefused("the URL is empty")
        try:
            parts = urlsplit(url.strip())
            host, _port = parts.hostname, parts.port
        except ValueError:
            raise EgressRefused(f"{url[:80]!r} is not a URL") from None
        if not host or parts.username is not None or parts.password is not None:
            raise EgressRefused("the URL must have a host and no login")
        local = self.test_only_allow_loopback and (host in LOCALHOST or is_loopback(host))
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise EgressRefused("the URL must be an https:// URL")
        address = parse(host)
        if address is not None and not self.allows_address(str(address)):
            raise EgressRefused(f"{host} is not a public address")
        if not local and not host_matches(host, self.hosts):
            raise EgressRefused(f"{host} is not a known host for this URL")
        return parts

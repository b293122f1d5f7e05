"""Settings, read from the environment by the entry points only."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.egress import MMS_MEDIA_HOSTS, PUSH_SERVICE_HOSTS, parse_hosts
from core.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = PACKAGE_DIR / "data"

#: The Dutch government's public base map (Kadaster's BRT-Achtergrondkaart served by PDOK) as
#: XYZ tiles in Web Mercator, zoom 0-19; the credit its publishers ask for. See docs/maps.md.
PDOK_TILES = ("https://service.pdok.nl/brt/achtergrondkaart/wmts/v2_0/standaard/EPSG:3857/"
              "{z}/{x}/{y}.png")
PDOK_ATTRIBUTION = "Kaartgegevens © Kadaster"
OSM_ATTRIBUTION = "© OpenStreetMap contributors"

#: Every variable the application reads, with its default and meaning.
#: The README's table is generated from this list, so the two cannot drift.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("BURGERNET_HOME", "current directory", "where `var/` (database, Redis, secrets) lives"),
    ("DATABASE_URL", "sqlite:///$BURGERNET_HOME/var/burgernet.sqlite3",
     "SQLAlchemy URL; PostgreSQL as postgresql+psycopg://user:pass@host/db"),
    ("REDIS_URL", "(none: `burgernet run` starts its own redis-server)",
     "Redis for queues and rate limits, e.g. redis://127.0.0.1:6379/0"),
    ("REDIS_SENTINELS", "(none)", "Redis through Redis Sentinel instead of REDIS_URL: the "
     "sentinels as host:port, comma-separated (IPv6 as [addr]:port), e.g. "
     "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379; every process then finds the primary "
     "through them and follows a failover"),
    ("REDIS_SENTINEL_MASTER", "burgernet", "the name under which the sentinels monitor the "
     "primary (`sentinel monitor NAME ...`)"),
    ("REDIS_PASSWORD", "(none)", "password of the Redis primary and replicas found through "
     "REDIS_SENTINELS (their requirepass; REDIS_URL carries its own)"),
    ("SECRET_KEY", "random, kept in var/secret_key", "Flask session and CSRF signing key"),
    ("WEB_HOST", "127.0.0.1", "address the web server binds to"),
    ("WEB_PORT", "8000", "port the web server listens on"),
    ("WEB_WORKERS", "2", "gunicorn worker processes"),
    ("PUBLIC_URL", "http://$WEB_HOST:$WEB_PORT", "the URL the outside world reaches us on"),
    ("MELDKAMER_CONFIG", "config/meldkamers.toml",
     "numbers and SIP URIs of the meldkamers (fictional examples shipped)"),
    ("REFERENCE_DATA_DIR", "core/data (shipped)", "folder with the Dutch reference data"),
    ("AUTO_MIGRATE", "1", "upgrade the database schema on start (0: refuse if not current)"),
    ("SESSION_COOKIE_SECURE", "1 when PUBLIC_URL is https://, else 0",
     "1: cookies only over TLS (and HSTS); an explicit value wins over the default"),
    ("TRUSTED_PROXIES", "0", "reverse proxies in front of the web server whose X-Forwarded-For, "
     "-Proto, -Host and -Port are believed, 0-5 (0: none; the client is the connecting peer)"),
    ("STAFF_IDLE_MINUTES", "30", "a staff session ends after this long without a request"),
    ("STAFF_SESSION_HOURS", "12", "a staff session ends this long after logging in, in any case"),
    ("PORTAL_IDLE_MINUTES", "30", "a participant's portal session ends after this long idle"),
    ("PORTAL_SESSION_HOURS", "2", "a participant's portal session ends this long after logging "
     "in"),
    ("MAP_TILES_URL", "(none: offline map)", "online map tiles under the console's municipality "
     "boundaries; recommended: PDOK's BRT-Achtergrondkaart, "
     f"{PDOK_TILES} (see docs/maps.md)"),
    ("MAP_TILES_ATTRIBUTION", "Kaartgegevens © Kadaster for PDOK tiles, else © OpenStreetMap "
     "contributors", "credit shown on the map for MAP_TILES_URL"),
    ("LOG_LEVEL", "INFO", "logging level"),
    ("LOG_FORMAT", "text", "text (a line for a person) or json (one JSON object a line, with "
     "time in UTC, level, logger, message and the request, job, action, delivery and call ids "
     "where they apply)"),
    ("SMS_PROVIDER", "console", "console (records, sends nothing) or twilio"),
    ("VOICE_PROVIDER", "console", "console, twilio, or sip (pyVoIP through SIP_PROXY)"),
    ("TWILIO_ACCOUNT_SID", "(none)", "account SID for the Twilio-compatible API"),
    ("TWILIO_AUTH_TOKEN", "(none)", "auth token; also verifies the status callbacks"),
    ("TWILIO_FROM", "(none)", "sender number (E.164) or alphanumeric sender"),
    ("TWILIO_BASE_URL", "https://api.twilio.com", "base URL of the Twilio-compatible API"),
    ("SMS_RATE", "1", "messages per second for the SMS sender (0: no limit)"),
    ("VOICE_RATE", "1", "calls per second for the voice sender (0: no limit)"),
    ("EMAIL_RATE", "20", "e-mails per second to the SMTP server (0: no limit)"),
    ("PUSH_RATE", "0", "push messages per second (0: no limit)"),
    ("FREE_NUMBER", "0800-0011", "the free number printed in messages (fictional default)"),
    ("VOICE_MAX_CONCURRENT", "0", "calls in progress at once on the voice trunk (0: no cap)"),
    ("EMAIL_PROVIDER", "console", "console or smtp"),
    ("SMTP_HOST", "127.0.0.1", "SMTP server"),
    ("SMTP_PORT", "25", "SMTP port"),
    ("SMTP_FROM", "burgernet@example.org", "sender address of e-mails"),
    ("SMTP_USERNAME", "(none)", "SMTP login, if the server wants one"),
    ("SMTP_PASSWORD", "(none)", "SMTP password"),
    ("SMTP_STARTTLS", "0", "1: upgrade the connection with STARTTLS"),
    ("INQUIRY_LINK_DAYS", "14", "days the personal reaction link in an inquiry e-mail works"),
    ("PUSH_PROVIDER", "console", "app push: console or webpush (Web Push with VAPID)"),
    ("VAPID_PRIVATE_KEY", "$BURGERNET_HOME/var/vapid_private.pem",
     "PEM file with the VAPID P-256 private key (`burgernet push keygen` writes one)"),
    ("VAPID_SUBJECT", "(none)", "contact for push services: mailto:address or https:// URL "
     "(required for webpush)"),
    ("SIP_PROXY", "(none)", "registrar/proxy host:port for SIP (e.g. Kamailio at 127.0.0.1:5060)"),
    ("SIP_USERNAME", "burgernet", "user the free number registers as (`burgernet sip`)"),
    ("SIP_OUT_USERNAME", "burgernet-out", "user the SIP voice provider registers as"),
    ("SIP_PASSWORD", "(none)", "SIP digest password, if the registrar asks"),
    ("SIP_LOCAL_IP", "127.0.0.1", "our address in SIP and SDP"),
    ("SIP_PORT", "0", "UDP port `burgernet sip` takes SIP on (0: any free port; behind "
     "Kamailio's dispatcher each node needs the fixed port of its dispatcher.list line)"),
    ("SIP_RTP_PORTS", "10000-20000", "UDP port range for audio"),
    ("DIAL_TIMEOUT", "20", "seconds a meldkamer or participant may ring"),
    ("TTS", "gtts", "prompts: gtts (Google, else espeak-ng), espeak (never Google) or off "
     "(Twilio reads the text with <Say>)"),
    ("CAP_SENDER", "burgernet@example.org",
     "sender of the CAP 1.2 alerts in /cap/feed.atom (no spaces, commas, < or &)"),
    ("CAP_STATUS", "Actual", "CAP status of every alert: Actual, Exercise, System or Test"),
    ("CAP_KEEP_HOURS", "24",
     "hours an ended alert's Update or Cancel stays in the CAP feed (more than 0, at most 720)"),
    ("LOST_CREDENTIALS", "(none: /lost is open)",
     "user:password that LoST clients must send to /lost with HTTP Basic authentication"),
    ("CODE_SMS_PER_HOUR", "300", "verification codes by SMS (sign-up and log-in) the portal "
     "sends per hour in all; past it every code request is refused for the rest of the hour, "
     "and an error is logged and audited once"),
    ("PUSH_SERVICE_HOSTS", ", ".join(PUSH_SERVICE_HOSTS), "push services a participant's push "
     "endpoint may point at (names or *.domain, comma-separated); https and public addresses "
     "only"),
    ("MMS_MEDIA_HOSTS", ", ".join(MMS_MEDIA_HOSTS), "hosts MMS photos are downloaded from and "
     "redirected to (names or *.domain, comma-separated), besides TWILIO_BASE_URL's host; "
     "https and public addresses only"),
    ("METRICS_PORT", "(none: no metrics port)", "port on which `burgernet worker` and "
     "`burgernet sip` serve /metrics, one port per process (`burgernet worker --metrics-port` "
     "overrides it); the web app serves /metrics on WEB_PORT"),
    ("METRICS_HOST", "127.0.0.1", "address the metrics ports of workers and SIP nodes bind to"),
    ("METRICS_DIR", "$BURGERNET_HOME/var/metrics", "where the web server's processes keep their "
     "metric values for /metrics (one directory per host, emptied when `burgernet web` "
     "starts)"),
    ("METRICS_NETWORKS", "127.0.0.0/8, ::1", "networks that may read /metrics without the "
     "token, on direct connections only (comma-separated; empty: none)"),
    ("METRICS_TOKEN", "(none)", "bearer token with which Prometheus may read /metrics from "
     "anywhere, also through a proxy (at least 16 characters)"),
)


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={value!r} is not a yes/no value (use 1 or 0)")


def _port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={value!r} is outside 1-65535")
    return port


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved to concrete values."""

    home: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    #: (host, port) of each sentinel; empty: Redis is REDIS_URL (or none).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "burgernet"
    redis_password: str = field(default="", repr=False)
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    web_workers: int = 2
    public_url: str = ""
    meldkamer_config: Path = field(default_factory=lambda: Path("config/meldkamers.toml"))
    reference_data_dir: Path = DEFAULT_DATA_DIR
    auto_migrate: bool = True
    session_cookie_secure: bool = False
    trusted_proxies: int = 0
    staff_idle_minutes: int = 30
    staff_session_hours: int = 12
    portal_idle_minutes: int = 30
    portal_session_hours: int = 2
    map_tiles_url: str = ""
    map_tiles_attribution: str = OSM_ATTRIBUTION
    log_level: str = "INFO"
    log_format: str = "text"
    sms_provider: str = "console"
    voice_provider: str = "console"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_base_url: str = "https://api.twilio.com"
    sms_rate: float = 1.0
    voice_rate: float = 1.0
    email_rate: float = 20.0
    push_rate: float = 0.0
    free_number: str = "0800-0011"
    voice_max_concurrent: int = 0
    email_provider: str = "console"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "burgernet@example.org"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    inquiry_link_days: int = 14
    push_provider: str = "console"
    vapid_private_key: Path | None = None
    vapid_subject: str = ""
    tts: str = "gtts"
    sip_proxy: tuple[str, int] | None = None
    sip_username: str = "burgernet"
    sip_out_username: str = "burgernet-out"
    sip_password: str = ""
    sip_local_ip: str = "127.0.0.1"
    sip_port: int = 0
    sip_rtp_ports: tuple[int, int] = (10000, 20000)
    dial_timeout: int = 20
    cap_sender: str = "burgernet@example.org"
    cap_status: str = "Actual"
    cap_keep_hours: float = 24.0
    lost_credentials: str = field(default="", repr=False)
    code_sms_per_hour: int = 300
    push_service_hosts: tuple[str, ...] = PUSH_SERVICE_HOSTS
    mms_media_hosts: tuple[str, ...] = MMS_MEDIA_HOSTS
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    metrics_dir: Path | None = None
    metrics_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_token: str = field(default="", repr=False)
    #: Lets push endpoints and media links reach this machine, over http too: for tests
    #: against local fakes only. Deliberately read from no environment variable.
    test_only_allow_loopback: bool = False

    @property
    def var_dir(self) -> Path:
        return self.home / "var"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables, filling in the embedded defaults."""
        env = os.environ if environ is None else environ
        home = Path(env.get("BURGERNET_HOME") or Path.cwd()).resolve()
        var = home / "var"
        database_url = env.get("DATABASE_URL") or f"sqlite:///{var / 'burgernet.sqlite3'}"
        host = env.get("WEB_HOST", "127.0.0.1")
        port = _port(env.get("WEB_PORT", "8000"), "WEB_PORT")
        log_level = env.get("LOG_LEVEL", "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"LOG_LEVEL={log_level!r} is not DEBUG, INFO, WARNING or ERROR")
        workers = env.get("WEB_WORKERS", "2")
        if not workers.isdigit() or int(workers) < 1:
            raise ConfigError(f"WEB_WORKERS={workers!r} must be a whole number of at least 1")
        public_url = (env.get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
        return cls(
            home=home,
            database_url=database_url,
            **_redis(env),
            secret_key=env.get("SECRET_KEY") or _stored_secret(var),
            web_host=host,
            web_port=port,
            web_workers=int(workers),
            public_url=public_url,
            meldkamer_config=_resolve(home, env.get("MELDKAMER_CONFIG", "config/meldkamers.toml")),
            reference_data_dir=_resolve(home,
                                        env.get("REFERENCE_DATA_DIR") or str(DEFAULT_DATA_DIR)),
            auto_migrate=_flag(env.get("AUTO_MIGRATE", "1"), "AUTO_MIGRATE"),
            **_sessions(env, public_url),
            **_map_tiles(env),
            log_level=log_level,
            log_format=_choice(env.get("LOG_FORMAT", "text"), "LOG_FORMAT", ("text", "json")),
            tts=_choice(env.get("TTS", "gtts"), "TTS", ("gtts", "espeak", "off")),
            **_outbound(env),
            **_push(env, home),
            **_sip(env),
            **_cap(env),
            lost_credentials=_credentials(env.get("LOST_CREDENTIALS", "")),
            **_abuse(env),
            **_metrics(env, var),
        )


def _redis(env: Mapping[str, str]) -> dict[str, Any]:
    """REDIS_URL, or the sentinels that know the primary: one or the other."""
    url = env.get("REDIS_URL", "").strip() or None
    sentinels = sentinel_addresses(env.get("REDIS_SENTINELS", ""))
    if url and sentinels:
        raise ConfigError("REDIS_URL and REDIS_SENTINELS are both set: set REDIS_SENTINELS "
                          "alone to find the primary through Sentinel, or REDIS_URL alone")
    master = env.get("REDIS_SENTINEL_MASTER", "burgernet").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", master):
        raise ConfigError(f"REDIS_SENTINEL_MASTER={master!r} must be the name the sentinels "
                          "monitor (letters, digits, '.', '_' or '-')")
    return {"redis_url": url, "redis_sentinels": sentinels, "redis_sentinel_master": master,
            "redis_password": env.get("REDIS_PASSWORD", "")}


def sentinel_addresses(value: str) -> tuple[tuple[str, int], ...]:
    """REDIS_SENTINELS as (host, port) pairs: "host:port, [v6addr]:port, ..."."""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        address = _host_port(item)
        if address is None:
            raise ConfigError(f"REDIS_SENTINELS: {item!r} is not host:port (an IPv6 address "
                              "in brackets: [::1]:26379); give the sentinels comma-separated")
        if address in found:
            raise ConfigError(f"REDIS_SENTINELS names {item!r} twice")
        found.append(address)
    if value.strip() and not found:
        raise ConfigError(f"REDIS_SENTINELS={value!r} names no sentinel (host:port, ...)")
    return tuple(found)


def _host_port(item: str) -> tuple[str, int] | None:
    """"name:port", "ipv4:port" or "[ipv6]:port"; None when it is none of these."""
    v6 = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})", item)
    plain = re.fullmatch(r"([A-Za-z0-9_.-]+):(\d{1,5})", item)
    match = v6 or plain
    if match is None or not 0 < int(match.group(2)) < 65536:
        return None
    if v6 is not None:
        try:
            ipaddress.IPv6Address(v6.group(1))
        except ValueError:
            return None
    return match.group(1), int(match.group(2))


def _sessions(env: Mapping[str, str], public_url: str) -> dict[str, Any]:
    """Cookies only over TLS when the public URL is https (unless told otherwise), the trusted
    proxy hops, and how long staff and portal sessions last."""
    https = public_url.lower().startswith("https://")
    secure = env.get("SESSION_COOKIE_SECURE", "").strip()
    return {
        "session_cookie_secure": _flag(secure, "SESSION_COOKIE_SECURE") if secure else https,
        "trusted_proxies": _whole(env.get("TRUSTED_PROXIES", "0"), "TRUSTED_PROXIES", 0, 5,
                                  "proxies"),
        "staff_idle_minutes": _whole(env.get("STAFF_IDLE_MINUTES", "30"), "STAFF_IDLE_MINUTES",
                                     1, 24 * 60, "minutes"),
        "staff_session_hours": _whole(env.get("STAFF_SESSION_HOURS", "12"),
                                      "STAFF_SESSION_HOURS", 1, 7 * 24, "hours"),
        "portal_idle_minutes": _whole(env.get("PORTAL_IDLE_MINUTES", "30"),
                                      "PORTAL_IDLE_MINUTES", 1, 24 * 60, "minutes"),
        "portal_session_hours": _whole(env.get("PORTAL_SESSION_HOURS", "2"),
                                       "PORTAL_SESSION_HOURS", 1, 24, "hours"),
    }


def _whole(value: str, name: str, low: int, high: int, unit: str) -> int:
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"{name}={value!r} must be a whole number of {unit}, {low}-{high}")
    return int(value)


def _map_tiles(env: Mapping[str, str]) -> dict[str, Any]:
    """An http(s) tile URL template with {z}, {x} and {y}, or nothing (the map stays offline)."""
    url = env.get("MAP_TILES_URL", "").strip()
    if url and not (re.match(r"^https?://[^\s/]+/\S*$", url)
                    and all(part in url for part in ("{z}", "{x}", "{y}"))):
        raise ConfigError(f"MAP_TILES_URL={url!r} must be an http(s) URL with {{z}}, {{x}} and "
                          f"{{y}}, e.g. {PDOK_TILES}")
    pdok = url.startswith("https://service.pdok.nl/")
    attribution = (env.get("MAP_TILES_ATTRIBUTION", "").strip()
                   or (PDOK_ATTRIBUTION if pdok else OSM_ATTRIBUTION))
    return {"map_tiles_url": url, "map_tiles_attribution": attribution}


def _rate(value: str, name: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number of messages per second") from None
    if rate < 0 or rate != rate:
        raise ConfigError(f"{name}={value!r} must be 0 (no limit) or more")
    return rate


def _outbound(env: Mapping[str, str]) -> dict[str, Any]:
    providers = {}
    for name in ("SMS_PROVIDER", "VOICE_PROVIDER"):
        value = env.get(name, "console").lower()
        allowed = ("console", "twilio", "sip") if name == "VOICE_PROVIDER" else ("console",
                                                                                  "twilio")
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not {' or '.join(allowed)}")
        providers[name.lower()] = value
    twilio = {key: env.get(key.upper(), "") for key in
              ("twilio_account_sid", "twilio_auth_token", "twilio_from")}
    if "twilio" in providers.values() and not all(twilio.values()):
        missing = [k.upper() for k, v in twilio.items() if not v]
        raise ConfigError(f"the twilio provider needs {', '.join(missing)}")
    return {**providers, **twilio,
            "twilio_base_url": env.get("TWILIO_BASE_URL", "https://api.twilio.com").rstrip("/"),
            "sms_rate": _rate(env.get("SMS_RATE", "1"), "SMS_RATE"),
            "voice_rate": _rate(env.get("VOICE_RATE", "1"), "VOICE_RATE"),
            "email_rate": _rate(env.get("EMAIL_RATE", "20"), "EMAIL_RATE"),
            "push_rate": _rate(env.get("PUSH_RATE", "0"), "PUSH_RATE"),
            "free_number": env.get("FREE_NUMBER", "0800-0011"),
            "voice_max_concurrent": _count(env.get("VOICE_MAX_CONCURRENT", "0"),
                                           "VOICE_MAX_CONCURRENT"),
            **_email(env)}


def _email(env: Mapping[str, str]) -> dict[str, Any]:
    provider = env.get("EMAIL_PROVIDER", "console").lower()
    if provider not in {"console", "smtp"}:
        raise ConfigError(f"EMAIL_PROVIDER={provider!r} is not console or smtp")
    return {"email_provider": provider,
            "smtp_host": env.get("SMTP_HOST", "127.0.0.1"),
            "smtp_port": _port(env.get("SMTP_PORT", "25"), "SMTP_PORT"),
            "smtp_from": env.get("SMTP_FROM", "burgernet@example.org"),
            "smtp_username": env.get("SMTP_USERNAME", ""),
            "smtp_password": env.get("SMTP_PASSWORD", ""),
            "smtp_starttls": _flag(env.get("SMTP_STARTTLS", "0"), "SMTP_STARTTLS"),
            "inquiry_link_days": _link_days(env.get("INQUIRY_LINK_DAYS", "14"))}


def _link_days(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 365:
        raise ConfigError(f"INQUIRY_LINK_DAYS={value!r} must be a whole number of days, 1-365")
    return int(value)


VAPID_SUBJECT = re.compile(r"^(mailto:[^@\s/]+@[^@\s/]+|https://[^\s/]+(/\S*)?)$")


def _push(env: Mapping[str, str], home: Path) -> dict[str, Any]:
    """PUSH_PROVIDER=webpush needs a readable P-256 key and a subject: checked here, at start,
    rather than at the first alert."""
    provider = _choice(env.get("PUSH_PROVIDER", "console"), "PUSH_PROVIDER",
                       ("console", "webpush"))
    key = vapid_key_path(env, home)
    subject = env.get("VAPID_SUBJECT", "").strip()
    if provider == "webpush":
        load_vapid_key(key)
        if not VAPID_SUBJECT.match(subject):
            raise ConfigError(f"VAPID_SUBJECT={subject!r} must be mailto:address or an "
                              "https:// URL (push services use it to contact you)")
    return {"push_provider": provider, "vapid_private_key": key, "vapid_subject": subject}


def vapid_key_path(env: Mapping[str, str], home: Path | None = None) -> Path:
    """Where the VAPID key is (or goes): VAPID_PRIVATE_KEY, relative to BURGERNET_HOME."""
    home = home or Path(env.get("BURGERNET_HOME") or Path.cwd()).resolve()
    key = Path(env.get("VAPID_PRIVATE_KEY") or home / "var" / "vapid_private.pem")
    return key if key.is_absolute() else home / key


def load_vapid_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key in PATH (PEM, P-256); ConfigError says what is wrong with it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"VAPID_PRIVATE_KEY={str(path)!r} does not exist; create a key "
                          "pair with `burgernet push keygen`") from None
    except OSError as exc:
        raise ConfigError(f"VAPID_PRIVATE_KEY={str(path)!r} cannot be read: "
                          f"{exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"VAPID_PRIVATE_KEY={str(path)!r} is not an unencrypted PEM "
                          f"private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"VAPID_PRIVATE_KEY={str(path)!r} is not a P-256 (prime256v1) "
                          "EC key")
    return key


def _choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return lowered


def _sip(env: Mapping[str, str]) -> dict[str, Any]:
    proxy_text = env.get("SIP_PROXY", "").strip()
    proxy = None
    if proxy_text:
        host, _, port = proxy_text.rpartition(":")
        if not host:
            raise ConfigError(f"SIP_PROXY={proxy_text!r} must be host:port")
        proxy = (host, _port(port, "SIP_PROXY"))
    elif env.get("VOICE_PROVIDER", "console").lower() == "sip":
        raise ConfigError("VOICE_PROVIDER=sip needs SIP_PROXY (host:port of the registrar)")
    ports = env.get("SIP_RTP_PORTS", "10000-20000")
    low, _, high = ports.partition("-")
    if not (low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) < 65536):
        raise ConfigError(f"SIP_RTP_PORTS={ports!r} must be a range like 10000-20000")
    sip_port = env.get("SIP_PORT", "0").strip() or "0"
    timeout = env.get("DIAL_TIMEOUT", "20")
    if not timeout.isdigit() or not 5 <= int(timeout) <= 120:
        raise ConfigError(f"DIAL_TIMEOUT={timeout!r} must be 5 to 120 seconds")
    return {"sip_proxy": proxy, "sip_username": env.get("SIP_USERNAME", "burgernet"),
            "sip_out_username": env.get("SIP_OUT_USERNAME", "burgernet-out"),
            "sip_password": env.get("SIP_PASSWORD", ""),
            "sip_local_ip": env.get("SIP_LOCAL_IP", "127.0.0.1"),
            "sip_port": 0 if sip_port == "0" else _port(sip_port, "SIP_PORT"),
            "sip_rtp_ports": (int(low), int(high)), "dial_timeout": int(timeout)}


CAP_STATUSES = ("Actual", "Exercise", "System", "Test")


def _cap(env: Mapping[str, str]) -> dict[str, Any]:
    """The CAP feed's sender, status and how long an ended alert stays (CAP 1.2, 3.2.1)."""
    sender = env.get("CAP_SENDER", "burgernet@example.org").strip()
    if not sender or re.search(r"[\s,<&]", sender):
        raise ConfigError(f"CAP_SENDER={sender!r} must be a non-empty identifier without "
                          "spaces, commas, < or &, e.g. burgernet@example.org")
    status = env.get("CAP_STATUS", "Actual").strip().capitalize()
    if status not in CAP_STATUSES:
        raise ConfigError(f"CAP_STATUS={status!r} is not one of {', '.join(CAP_STATUSES)}")
    keep = env.get("CAP_KEEP_HOURS", "24")
    try:
        hours = float(keep)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= 720:
        raise ConfigError(f"CAP_KEEP_HOURS={keep!r} must be a number of hours above 0 and at "
                          "most 720")
    return {"cap_sender": sender, "cap_status": status, "cap_keep_hours": hours}


def _credentials(value: str) -> str:
    """LOST_CREDENTIALS: empty, or user:password as HTTP Basic carries them (RFC 7617)."""
    value = value.strip()
    user, colon, password = value.partition(":")
    if value and not (colon and user and password and value.isprintable()):
        raise ConfigError("LOST_CREDENTIALS must be user:password (a user without a colon and "
                          "a password), or empty to leave /lost open")
    return value


def _abuse(env: Mapping[str, str]) -> dict[str, Any]:
    """The global budget of code SMS and the hosts outside URLs may lead to."""
    budget = env.get("CODE_SMS_PER_HOUR", "300").strip()
    if not budget.isdigit() or int(budget) < 1:
        raise ConfigError(f"CODE_SMS_PER_HOUR={budget!r} must be a whole number of at least 1")
    hosts = {}
    for name, default in (("PUSH_SERVICE_HOSTS", PUSH_SERVICE_HOSTS),
                          ("MMS_MEDIA_HOSTS", MMS_MEDIA_HOSTS)):
        value = env.get(name)
        hosts[name.lower()] = default if value is None else parse_hosts(value, name)
    return {"code_sms_per_hour": int(budget), **hosts}


def _metrics(env: Mapping[str, str], var: Path) -> dict[str, Any]:
    """The metrics ports, the web's metrics directory and who may read /metrics."""
    port = env.get("METRICS_PORT", "").strip()
    networks = []
    for item in env.get("METRICS_NETWORKS", "127.0.0.0/8, ::1").split(","):
        if item.strip():
            try:
                networks.append(str(ipaddress.ip_network(item.strip())))
            except ValueError:
                raise ConfigError(f"METRICS_NETWORKS: {item.strip()!r} is not a network such "
                                  "as 10.0.0.0/8 or ::1") from None
    token = env.get("METRICS_TOKEN", "")
    if token and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ConfigError("METRICS_TOKEN must be at least 16 printable characters without "
                          "spaces (or empty: /metrics only for METRICS_NETWORKS)")
    return {"metrics_port": _port(port, "METRICS_PORT") if port and port != "0" else 0,
            "metrics_host": env.get("METRICS_HOST", "127.0.0.1").strip() or "127.0.0.1",
            "metrics_dir": var.parent / (env.get("METRICS_DIR") or var / "metrics"),
            "metrics_networks": tuple(networks), "metrics_token": token}


def _count(value: str, name: str) -> int:
    if not value.isdigit():
        raise ConfigError(f"{name}={value!r} must be a whole number (0: no cap)")
    return int(value)


def _resolve(home: Path, value: str) -> Path:
    path = Path(value)
    if path.is_absolute():
        return path
    shipped = PACKAGE_DIR.parent / path
    local = home / path
    return local if local.exists() or not shipped.exists() else shipped


def _stored_secret(var: Path) -> str:
    """A random key kept in var/ so sessions survive a restart of the demo."""
    path = var / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        var.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key

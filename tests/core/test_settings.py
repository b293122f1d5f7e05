from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import PDOK_ATTRIBUTION, PDOK_TILES, VARIABLES, Settings


def test_defaults_put_sqlite_and_secrets_under_var(tmp_path: Path) -> None:
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'burgernet.sqlite3'}"
    assert settings.redis_url is None
    assert settings.public_url == "http://127.0.0.1:8000"
    assert (tmp_path / "var" / "secret_key").read_text() == settings.secret_key
    assert Settings.from_env({"BURGERNET_HOME": str(tmp_path)}).secret_key == settings.secret_key


@pytest.mark.parametrize(("name", "value", "message"), [
    ("WEB_PORT", "eighty", "not a port number"),
    ("WEB_PORT", "70000", "outside 1-65535"),
    ("AUTO_MIGRATE", "perhaps", "not a yes/no value"),
    ("SIP_PROXY", "kamailio", "must be host:port"),
    ("SIP_PROXY", "kamailio:sip", "not a port number"),
    ("SIP_RTP_PORTS", "20000-10000", "must be a range"),
    ("DIAL_TIMEOUT", "2", "5 to 120 seconds"),
    ("VOICE_PROVIDER", "carrier-pigeon", "not console or twilio or sip"),
    ("TTS", "festival", "not one of gtts, espeak, off"),
    ("EMAIL_RATE", "-1", "0 .no limit. or more"),
    ("WEB_WORKERS", "0", "at least 1"),
    ("LOST_CREDENTIALS", "s3cret", "must be user:password"),
    ("LOST_CREDENTIALS", ":s3cret", "must be user:password"),
    ("LOST_CREDENTIALS", "esrp:", "must be user:password"),
    ("CODE_SMS_PER_HOUR", "0", "at least 1"),
    ("CODE_SMS_PER_HOUR", "lots", "at least 1"),
    ("PUSH_SERVICE_HOSTS", "fcm.googleapis.com, https://evil.example", "not a host name"),
    ("MMS_MEDIA_HOSTS", "*.com", "not a host name"),
    ("SESSION_COOKIE_SECURE", "sometimes", "not a yes/no value"),
    ("TRUSTED_PROXIES", "-1", "whole number of proxies, 0-5"),
    ("TRUSTED_PROXIES", "all", "whole number of proxies, 0-5"),
    ("STAFF_IDLE_MINUTES", "0", "whole number of minutes, 1-1440"),
    ("REDIS_SENTINELS", "10.0.0.1", ": '10.0.0.1' is not host:port"),
    ("REDIS_SENTINELS", "a:26379;b:26379", ": 'a:26379;b:26379' is not host:port"),
    ("REDIS_SENTINELS", "a:26379, b:0", ": 'b:0' is not host:port"),
    ("REDIS_SENTINELS", "::1:26379", "an IPv6 address in brackets"),
    ("REDIS_SENTINELS", "[10.0.0.1]:26379", ": '.10.0.0.1.:26379' is not host:port"),
    ("REDIS_SENTINELS", "a:26379,a:26379", " names 'a:26379' twice"),
    ("REDIS_SENTINELS", " , ", "=' , ' names no sentinel"),
    ("REDIS_SENTINEL_MASTER", "my master", "='my master' must be the name the sentinels"),
    ("STAFF_SESSION_HOURS", "200", "whole number of hours, 1-168"),
    ("PORTAL_IDLE_MINUTES", "half an hour", "whole number of minutes"),
    ("PORTAL_SESSION_HOURS", "25", "whole number of hours, 1-24"),
])
def test_bad_values_are_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{message}"):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), name: value})


def test_lost_credentials_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path),
                                  "LOST_CREDENTIALS": "esrp:s3cret"})
    assert settings.lost_credentials == "esrp:s3cret" and "s3cret" not in repr(settings)


def test_outside_urls_reach_only_the_known_services_unless_configured(tmp_path: Path) -> None:
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path)})
    assert "fcm.googleapis.com" in settings.push_service_hosts
    assert "api.twilio.com" in settings.mms_media_hosts and settings.code_sms_per_hour == 300
    assert settings.test_only_allow_loopback is False
    tuned = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "CODE_SMS_PER_HOUR": "50",
                               "PUSH_SERVICE_HOSTS": "fcm.googleapis.com",
                               "MMS_MEDIA_HOSTS": "media.example.net, *.cdn.example.net",
                               "TEST_ONLY_ALLOW_LOOPBACK": "1"})
    assert tuned.code_sms_per_hour == 50 and tuned.push_service_hosts == ("fcm.googleapis.com",)
    assert tuned.mms_media_hosts == ("media.example.net", "*.cdn.example.net")
    assert tuned.test_only_allow_loopback is False  # no variable turns the test allowance on


def test_readme_lists_every_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, _default, _meaning in VARIABLES:
        assert f"`{name}`" in readme, name


def test_sip_voice_needs_a_proxy_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VOICE_PROVIDER=sip needs SIP_PROXY"):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), "VOICE_PROVIDER": "sip"})
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "VOICE_PROVIDER": "sip",
                                  "SIP_PROXY": "127.0.0.1:5060"})
    assert settings.sip_proxy == ("127.0.0.1", 5060) and settings.sip_rtp_ports == (10000, 20000)


def test_a_sip_node_takes_any_free_port_unless_given_one(tmp_path: Path) -> None:
    base = {"BURGERNET_HOME": str(tmp_path)}
    assert Settings.from_env(base).sip_port == 0
    assert Settings.from_env({**base, "SIP_PORT": "5070"}).sip_port == 5070
    for wrong in ("sip", "-1", "70000"):
        with pytest.raises(ConfigError, match="SIP_PORT="):
            Settings.from_env({**base, "SIP_PORT": wrong})


def test_pdok_tiles_are_credited_to_the_kadaster_unless_told_otherwise(tmp_path: Path) -> None:
    base = {"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "x"}
    pdok = Settings.from_env({**base, "MAP_TILES_URL": PDOK_TILES})
    assert pdok.map_tiles_url.startswith("https://service.pdok.nl/brt/achtergrondkaart/wmts/")
    assert pdok.map_tiles_attribution == PDOK_ATTRIBUTION == "Kaartgegevens © Kadaster"
    osm = Settings.from_env({**base,
                             "MAP_TILES_URL": "https://tile.openstreetmap.org/{z}/{x}/{y}.png"})
    assert osm.map_tiles_attribution == "© OpenStreetMap contributors"
    own = Settings.from_env({**base, "MAP_TILES_URL": PDOK_TILES,
                             "MAP_TILES_ATTRIBUTION": "Kaart: Kadaster / PDOK"})
    assert own.map_tiles_attribution == "Kaart: Kadaster / PDOK"
    with pytest.raises(ConfigError, match=r"MAP_TILES_URL=.*\{z\}, \{x\} and \{y\}"):
        Settings.from_env({**base,
                           "MAP_TILES_URL": "https://service.pdok.nl/brt/achtergrondkaart"})


@pytest.mark.parametrize(("public_url", "explicit", "secure"), [
    ("https://burgernet.example.nl", None, True),
    ("HTTPS://burgernet.example.nl", None, True),
    ("http://127.0.0.1:8000", None, False),
    (None, None, False),
    ("https://burgernet.example.nl", "0", False),
    ("http://10.0.0.5:8000", "1", True),
])
def test_cookies_are_secure_by_default_behind_an_https_public_url(
        tmp_path: Path, public_url: str | None, explicit: str | None, secure: bool) -> None:
    env = {"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "x"}
    if public_url is not None:
        env["PUBLIC_URL"] = public_url
    if explicit is not None:
        env["SESSION_COOKIE_SECURE"] = explicit
    assert Settings.from_env(env).session_cookie_secure is secure


def test_session_and_proxy_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "x"})
    assert settings.trusted_proxies == 0
    assert (settings.staff_idle_minutes, settings.staff_session_hours) == (30, 12)
    assert (settings.portal_idle_minutes, settings.portal_session_hours) == (30, 2)


def test_sentinels_are_read_as_addresses_with_ipv6_in_brackets(tmp_path: Path) -> None:
    settings = Settings.from_env({"BURGERNET_HOME": str(tmp_path), "REDIS_PASSWORD": "pw",
                                  "REDIS_SENTINELS": "10.0.0.1:26379, [fd00::2]:26380,s3:1"})
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("fd00::2", 26380), ("s3", 1))
    assert (settings.redis_url, settings.redis_sentinel_master) == (None, "burgernet")
    assert "pw" not in repr(settings)


def test_redis_url_and_sentinels_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL and REDIS_SENTINELS are both set"):
        Settings.from_env({"BURGERNET_HOME": str(tmp_path), "REDIS_URL": "redis://127.0.0.1/0",
                           "REDIS_SENTINELS": "127.0.0.1:26379"})

from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import Context
from core.settings import Settings
from routing.cli import route_command
from tests.routing.conftest import DATA


@pytest.fixture
def route(settings: Settings):
    def invoke(*args: str):
        return CliRunner().invoke(route_command, list(args), obj=Context(settings),
                                  catch_exceptions=False)

    return invoke


def test_a_postcode_is_routed_on_the_command_line(route) -> None:
    result = route("--postcode", "3441")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "meldkamer  MN (Meldkamer Midden-Nederland)",
        "phone      +31690000103",
        "SIP URI    sip:+31690000103@127.0.0.1:5060",
        "fallback   ON",
        "action     -",
        "reason     postcode",
        "detail     keyed postcode 3441 lies in Woerden (region Utrecht); no caller number",
    ]


def test_coordinates_and_a_pidf_file_are_routed(route) -> None:
    assert "reason     coordinates" in route("--lat", "50.735", "--lon", "5.695").output
    result = route("--pidf", str(DATA / "multipart.txt"), "--caller", "anonymous")
    assert "meldkamer  RT (Meldkamer Rotterdam)" in result.output
    assert "caller number withheld" in result.output


def test_nothing_usable_gives_the_national_fallback(route) -> None:
    result = route("--caller", "Restricted", "--postcode", "abc")
    assert "meldkamer  MN" in result.output and "reason     national_fallback" in result.output


def test_a_configuration_without_national_fallback_is_one_clear_error(
        settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "meldkamers.toml"
    config.write_text(settings.meldkamer_config.read_text().replace(
        'national_fallback = "MN"', ""))
    broken = Settings.from_env({"BURGERNET_HOME": str(tmp_path),
                                "DATABASE_URL": settings.database_url,
                                "SECRET_KEY": "x", "MELDKAMER_CONFIG": str(config)})
    result = CliRunner().invoke(route_command, ["--postcode", "3441"], obj=Context(broken))
    assert result.exit_code == 1
    assert "no national_fallback" in str(result.exception)

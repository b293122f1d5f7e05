"""docker-compose.yml runs the commands the README documents (no Docker engine runs here);
the wheel and the image hold the product and nothing of its tests, benchmarks or fakes."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from core.cli import main
from core.settings import Settings
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_component() -> None:
    assert {"postgres", "redis", "web", "worker", "ivr-a", "ivr-b", "sip"} \
        <= set(_compose()["services"])


def test_compose_runs_existing_burgernet_commands() -> None:
    services = _compose()["services"]
    readme = (ROOT / "README.md").read_text()
    for name in ("web", "worker", "ivr-a", "ivr-b"):
        command = services[name]["command"]
        assert command[0] == "burgernet"
        assert f"`{' '.join(command)}" in readme
        result = CliRunner().invoke(main, [*command[1:], "--help"])
        assert result.exit_code == 0, result.output


def test_compose_uses_postgis_and_the_psycopg_driver() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"].startswith("postgis/postgis:")
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_the_sip_edge_uses_the_shipped_kamailio_config() -> None:
    config = (ROOT / "docker" / "kamailio.cfg").read_text()
    assert config.startswith("#!KAMAILIO") and "save(\"location\")" in config


def test_every_install_takes_the_tested_versions() -> None:
    """setup.sh and the image install with constraints.txt, which pins every package that
    pyproject.toml asks for (a release nobody tested must not reach a fresh clone)."""
    assert "-c constraints.txt" in (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    names = {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0].lower().replace("_", "-")
             for spec in wanted}
    assert sorted(names - pinned) == []


def _compose_environment(service: str, shell: dict[str, str]) -> dict[str, str]:
    """The service's environment as `docker compose` fills it in from SHELL: ${VAR:-default}
    takes the default when VAR is unset or empty, ${VAR:?message} insists on VAR."""
    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if kind == ":?":
            assert shell.get(name), rest
            return shell[name]
        return shell.get(name) or rest
    environment = _compose()["services"][service]["environment"]
    return {key: re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", value, str(raw))
            for key, raw in environment.items()}


def test_compose_makes_cookies_secure_behind_an_https_public_url(tmp_path: Path) -> None:
    shell = {"SECRET_KEY": "s" * 40, "SIP_LOCAL_IP": "192.0.2.1", "REDIS_PASSWORD": "r" * 32}
    for service in ("web", "worker"):
        env = {**_compose_environment(service, {**shell,
                                                "PUBLIC_URL": "https://burgernet.example.nl"}),
               "BURGERNET_HOME": str(tmp_path)}
        settings = Settings.from_env(env)
        assert settings.session_cookie_secure and settings.trusted_proxies == 0, service
    plain = Settings.from_env({**_compose_environment("web", shell),
                               "BURGERNET_HOME": str(tmp_path)})
    assert plain.public_url == "http://localhost:8000" and not plain.session_cookie_secure
    told = Settings.from_env({**_compose_environment("web", {
        **shell, "PUBLIC_URL": "https://burgernet.example.nl", "SESSION_COOKIE_SECURE": "0",
        "TRUSTED_PROXIES": "1"}), "BURGERNET_HOME": str(tmp_path)})
    assert not told.session_cookie_secure and told.trusted_proxies == 1


PRODUCT = {"core", "routing", "ivr", "outbound", "web"}


@pytest.mark.slow
def test_the_wheel_holds_the_product_and_no_fakes_tests_or_benchmarks(tmp_path: Path) -> None:
    """Built from a copy of the checkout (fakes/, tests/ and bench/ included, so the build
    could pick them up), with the setuptools of the dev extra and no network."""
    source, out = tmp_path / "source", tmp_path / "dist"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis"))
    assert {"fakes", "tests", "bench"} <= {path.name for path in source.iterdir()}
    built = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "build_meta.build_wheel(sys.argv[1])", str(out)],
        cwd=source, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = out.glob("burgernet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == PRODUCT
    assert {"outbound/providers/twilio_rest.py", "web/templates/base.html"} <= set(names)
    assert [name for name in names if "fake" in name or "loopback" in name] == []


def test_the_image_copies_the_product_and_no_fakes_tests_or_benchmarks() -> None:
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ")}
    assert PRODUCT <= copied and not copied & {"fakes", "tests", "bench"}


def _imported(path: Path) -> set[str]:
    """The top-level packages PATH imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_benchmarks_take_their_peers_from_fakes_not_from_the_tests() -> None:
    benchmarks = sorted((ROOT / "bench").glob("*.py"))
    assert len(benchmarks) >= 4
    assert [path.name for path in benchmarks if "tests" in _imported(path)] == []
    assert "fakes" in _imported(ROOT / "bench" / "sip.py")


def test_the_demos_fake_carrier_is_the_fake_with_its_own_account() -> None:
    """`DEMO_CARRIER=fake scripts/demo.sh` (README) points the Twilio settings at fakes.twilio."""
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert '-m fakes.twilio --port "$port"' in demo
    assert 'TWILIO_BASE_URL="http://127.0.0.1:$port"' in demo
    assert f"TWILIO_ACCOUNT_SID={ACCOUNT_SID} TWILIO_AUTH_TOKEN={AUTH_TOKEN} " in demo

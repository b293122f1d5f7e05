"""docker-compose.yml's IVR nodes and SIP edge are what tests/faults/test_ivr_node_killed.py
runs: the same `burgernet sip` command and SIP settings (only each host's own values differ),
the same Kamailio config, and a dispatcher list naming the nodes where compose puts them."""

import re
import subprocess
from pathlib import Path

from core.settings import Settings
from fakes.sip import binary
from tests.faults.ivr_pair import (
    DISPATCHER_LIST,
    FREE_NUMBER,
    HOST_SETTINGS,
    KAMAILIO_CONFIG,
    KAMAILIO_DEFINES,
    NODES,
    ROOT,
    compose_address,
    compose_dispatcher_nodes,
    compose_services,
    dispatcher_list,
    dispatcher_nodes,
    node_command,
    node_sip_settings,
)


def test_both_nodes_run_the_tested_command_and_differ_only_in_host_values() -> None:
    services = compose_services()
    a, b = (services[name] for name in NODES)
    assert a["command"] == b["command"] == ["burgernet", "sip"]
    assert node_command("ivr-a")[-1:] == ["sip"]
    assert a["environment"].keys() == b["environment"].keys()
    differing = {key for key in a["environment"] if a["environment"][key] != b["environment"][key]}
    assert differing <= set(HOST_SETTINGS) and differing == {"SIP_LOCAL_IP", "SIP_RTP_PORTS"}
    host = {"SIP_PROXY": "127.0.0.1:5080", "SIP_LOCAL_IP": "127.0.0.2", "SIP_PORT": "5090",
            "SIP_RTP_PORTS": "42000-42400"}
    assert node_sip_settings("ivr-a", host) == {
        **{k: str(v) for k, v in a["environment"].items() if k.startswith("SIP_")}, **host}


def test_each_node_is_where_the_dispatcher_list_and_its_settings_say(tmp_path: Path) -> None:
    services = compose_services()
    proxy = f"{compose_address(services, 'sip')}:5060"
    expected = []
    for name in NODES:
        environment = {key: str(value) for key, value in services[name]["environment"].items()}
        assert environment["SIP_LOCAL_IP"] == compose_address(services, name)
        assert environment["SIP_PROXY"] == proxy
        expected.append(f"sip:{environment['SIP_LOCAL_IP']}:{environment['SIP_PORT']}")
        sip = {key: value for key, value in environment.items() if key.startswith("SIP_")}
        settings = Settings.from_env({**sip, "BURGERNET_HOME": str(tmp_path)})
        assert (settings.sip_local_ip, settings.sip_port) == (environment["SIP_LOCAL_IP"], 5070)
    assert compose_dispatcher_nodes() == expected
    here = {name: (address, 40000 + i) for i, (name, address) in enumerate(NODES.items())}
    assert dispatcher_nodes(dispatcher_list(here)) == ["sip:127.0.0.2:40000", "sip:127.0.0.3:40001"]


def test_the_sip_edge_runs_the_tested_config_with_the_compose_list() -> None:
    sip = compose_services()["sip"]
    assert sip["command"] == ["kamailio", "-f", "/etc/kamailio/kamailio.cfg", "-DD", "-E"]
    assert "5060:5060/udp" in sip["ports"]
    dockerfile = (ROOT / sip["build"]["dockerfile"]).read_text()
    config = KAMAILIO_CONFIG.read_text()
    defaults = dict(re.findall(r"^#!define (\w+) (.+)$", config, re.M))
    assert f"COPY {KAMAILIO_CONFIG.relative_to(ROOT)} /etc/kamailio/kamailio.cfg" in dockerfile
    assert f"COPY {DISPATCHER_LIST.relative_to(ROOT)} {defaults['DISPATCHER_LIST'][1:-1]}" \
        in dockerfile
    assert defaults["LISTEN"] == "udp:0.0.0.0:5060"
    # the test gives only site values, each a define the config has a default for
    declared = re.findall(r"^#!ifndef (\w+)$", config, re.M)
    assert set(KAMAILIO_DEFINES) <= set(declared) == set(defaults)


def test_the_free_number_reaches_the_dispatcher_as_dialled_and_in_e164() -> None:
    config = KAMAILIO_CONFIG.read_text()
    pattern = re.search(r'^#!define FREE_NUMBER "(.+)"$', config, re.M)
    assert pattern is not None
    default = Settings.__dataclass_fields__["free_number"].default
    digits = re.sub(r"\D", "", str(default))
    for dialled in (FREE_NUMBER, digits, "+31" + digits[1:]):
        assert re.fullmatch(pattern.group(1), dialled), dialled
    assert not re.fullmatch(pattern.group(1), "+31690000103")


def test_kamailio_accepts_the_config_with_the_compose_defaults() -> None:
    checked = subprocess.run([binary("kamailio", "kamailio"), "-c", "-f", str(KAMAILIO_CONFIG)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr

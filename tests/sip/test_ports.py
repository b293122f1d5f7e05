"""Free UDP ports for the SIP peers are handed out once across the test processes that run
side by side (the test command runs the SQLite and PostgreSQL passes at the same time)."""

from __future__ import annotations

import subprocess
import sys

from fakes import sip


def test_a_port_another_process_holds_is_not_handed_out() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from fakes import sip; "
         "print(sip.free_udp_port(span=2), flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline())
        assert not sip._claim(held) and not sip._claim(held + 1)
    finally:
        holder.communicate("")
    assert sip._claim(held)


def test_a_port_is_never_handed_out_twice_in_one_process() -> None:
    port = sip.free_udp_port()
    assert not sip._claim(port)

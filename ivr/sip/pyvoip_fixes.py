"""Every workaround for a pyVoIP 1.6.8 defect, and the one function that installs them.

Nothing changes pyVoIP on import; `SipEndpoint` calls `apply_fixes()` before it builds its phone.
The overrides (`pyvoip_client`, `pyvoip_phone`) are in force wherever our subclasses are used.
"""

from __future__ import annotations

import threading

from ivr.sip import pyvoip_client, pyvoip_parsing, pyvoip_phone, pyvoip_rtp
from ivr.sip.pyvoip import Fix

FIXES: tuple[Fix, ...] = (*pyvoip_parsing.FIXES, *pyvoip_rtp.FIXES, *pyvoip_client.FIXES,
                          *pyvoip_phone.FIXES)
_lock = threading.Lock()


def apply_fixes() -> None:
    """Install the patches on pyVoIP's classes (parsing, RTP) for this process; idempotent and
    safe from any thread."""
    with _lock:
        for fix in FIXES:
            if not fix.applied:
                fix.apply()


def fix_named(name: str) -> Fix:
    """The fix called NAME (KeyError if there is none)."""
    for fix in FIXES:
        if fix.name == name:
            return fix
    raise KeyError(name)

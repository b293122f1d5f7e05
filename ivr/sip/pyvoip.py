"""pyVoIP 1.6.8 as the SIP adapter uses it: the version guard, its names, and what a fix is.

Everything that knows pyVoIP's internals is in `ivr/sip/pyvoip*.py`, one module per subject:
`pyvoip_parsing` (SIP messages), `pyvoip_rtp` (media), `pyvoip_client` (transactions and
dialogs through a proxy), `pyvoip_phone` (calls). Each workaround is a `Fix` naming the defect
it works around; `pyvoip_fixes.FIXES` lists them all. Two kinds:

- patches: pyVoIP builds `SIPMessage`s and RTP buffers in places no subclass reaches, so these
  replace members of pyVoIP's own classes, for the whole process. Nothing is replaced on
  import: `pyvoip_fixes.apply_fixes()` installs them when a `SipEndpoint` is built.
- overrides: members of our subclasses `SipClient` and `Phone`, which the endpoint uses instead
  of pyVoIP's `SIPClient` and `VoIPPhone`; pyVoIP itself is left as it is.

Known and left as is: pyVoIP sends every request and response to the configured
registrar/proxy (fine behind Kamailio; our answers to OPTIONS, 200, and to methods we do not
know, 501, go where their Via says); it has no REFER, no 407 proxy authentication, no
PRACK/100rel, no re-INVITE of its own; PCMU/PCMA and RFC 4733 telephone-events only; INVITEs
without SDP (late offer) are refused with 488.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyVoIP
import pyVoIP.VoIP  # noqa: F401  (first: pyVoIP.SIP cannot be imported before it)
from pyVoIP import RTP, SIP
from pyVoIP.VoIP import VoIP as voip
from pyVoIP.VoIP.status import PhoneStatus

PINNED_VERSION = "1.6.8"

if pyVoIP.__version__ != PINNED_VERSION:
    raise ImportError(f"ivr.sip works around pyVoIP {PINNED_VERSION} internals; found pyVoIP "
                      f"{pyVoIP.__version__}. Re-check every fix in ivr/sip/pyvoip_*.py (and its "
                      "test in tests/sip/test_pyvoip_fixes.py) before changing the pin.")

__all__ = ["ALLOWED_METHODS", "RESPONSE", "RTP", "SIP", "VERSION", "CallState", "Fix",
           "InvalidStateError", "NoPortsAvailableError", "Patch", "PhoneStatus", "VoIPCall",
           "VoIPPhone", "voip"]

CallState = voip.CallState
VoIPCall = voip.VoIPCall
VoIPPhone = voip.VoIPPhone
InvalidStateError = voip.InvalidStateError
NoPortsAvailableError = voip.NoPortsAvailableError
RESPONSE = SIP.SIPMessageType.RESPONSE
VERSION: str = pyVoIP.__version__
ALLOWED_METHODS: list[str] = pyVoIP.SIPCompatibleMethods


@dataclass(frozen=True)
class Patch:
    """One member of a pyVoIP class replaced; ORIGINAL is pyVoIP's own, read when declared."""

    owner: type
    name: str
    replacement: object
    original: object = field(repr=False)

    @classmethod
    def on(cls, owner: type, name: str, replacement: object) -> Patch:
        if not owner.__module__.startswith("pyVoIP."):
            raise TypeError(f"a Patch replaces a member of pyVoIP's classes, not of {owner!r}")
        return cls(owner, name, replacement, vars(owner)[name])

    @property
    def applied(self) -> bool:
        return vars(self.owner).get(self.name) is self.replacement


@dataclass(frozen=True)
class Fix:
    """A workaround for one pyVoIP 1.6.8 defect.

    DEFECT says what pyVoIP does wrong, RFC the section it breaks (if any). A fix is carried
    either by PATCHES on pyVoIP's classes (installed by `apply`, removed by `undo`) or by
    MEMBERS of our subclasses (always in force where the subclass is used: pyVoIP's own member
    of the same name, or the one named in DEFECT, is the behaviour without the fix).
    """

    name: str
    subject: str
    defect: str
    rfc: str = ""
    patches: tuple[Patch, ...] = ()
    members: tuple[Callable[..., Any], ...] = ()

    @property
    def applied(self) -> bool:
        return all(patch.applied for patch in self.patches)

    def apply(self) -> None:
        for patch in self.patches:
            setattr(patch.owner, patch.name, patch.replacement)

    def undo(self) -> None:
        """Put pyVoIP's own members back (tests show the defect this way)."""
        for patch in self.patches:
            setattr(patch.owner, patch.name, patch.original)

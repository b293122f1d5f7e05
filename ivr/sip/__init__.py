"""SIP transport for the IVR: a pyVoIP 1.6.8 endpoint behind a registrar/proxy (Kamailio).

Transport primitives only (answer, play, collect DTMF, dial, bridge, hang up); the flows that
drive them are transport-free and live elsewhere in `ivr`. Everything that knows pyVoIP's
internals is in `pyvoip*.py` (see `pyvoip`); importing this package changes nothing in pyVoIP.
"""

from __future__ import annotations

from ivr.sip.body import BodyPart
from ivr.sip.bridge import bridge
from ivr.sip.call import SAMPLE_RATE, SipCall, SipCallState
from ivr.sip.errors import SipBusy, SipError, SipNoAnswer
from ivr.sip.phone import SipEndpoint

__all__ = ["SAMPLE_RATE", "BodyPart", "SipBusy", "SipCall", "SipCallState", "SipEndpoint",
           "SipError", "SipNoAnswer", "bridge"]

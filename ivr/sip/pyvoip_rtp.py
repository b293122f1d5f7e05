"""Fixes to pyVoIP 1.6.8's RTP (patches on `RTPClient` and `RTPPacketManager`, which every
call creates inside pyVoIP), and helpers on its audio buffers."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

from ivr.sip.pyvoip import RTP, Fix, Patch

log = logging.getLogger(__name__)

# A forward jump of the RTP timestamp beyond this many samples resets the receive buffer.
MAX_RTP_GAP = 8000 * 60


def _encode_packet(self: RTP.RTPClient, payload: bytes) -> bytes:
    if self.preference == RTP.PayloadType.PCMA:
        return self.encode_pcma(payload)
    return self.encode_pcmu(payload)


_pyvoip_write = RTP.RTPPacketManager.write


def _packet_manager_write(self: RTP.RTPPacketManager, offset: int, data: bytes) -> None:
    """Restart the buffer at a timestamp far ahead instead of zero-filling up to it."""
    if offset >= self.offset:
        with self.bufferLock, self.buffer.getbuffer() as view:
            gap = offset - self.offset - view.nbytes
        if gap > MAX_RTP_GAP:
            self.offset = offset
            self.rebuild(True, offset, data)
            return
    _pyvoip_write(self, offset, data)


def _rtp_recv(self: RTP.RTPClient) -> None:
    """Sleep in poll() until a packet comes (poll, not select: RTP sockets of a busy endpoint
    have descriptors above select's limit of 1024); look at NSD at least every 200 ms."""
    poller = select.poll()
    poller.register(self.sin, select.POLLIN)
    while self.NSD:
        try:
            if not poller.poll(200):
                continue
            packet = self.sin.recv(8192)
        except BlockingIOError:
            continue
        except OSError:  # closed by stop(), or its descriptor already reused
            if self.NSD:
                time.sleep(0.01)
            continue
        try:
            self.parse_packet(packet)
        except RTP.RTPParseError as exc:
            log.debug("%s", exc)


class Transmitter:
    """One thread that sends the next 20 ms of audio of every started RTPClient, on a fixed
    schedule: the same packets (sequence numbers, timestamps and SSRC per client) as pyVoIP's
    thread per client sends."""

    PERIOD = 0.02  # 160 samples at 8 kHz: PCMU and PCMA, the only codecs pyVoIP sends
    NAME = "RTP transmitter"

    def __init__(self) -> None:
        self._clients: set[RTP.RTPClient] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, client: RTP.RTPClient) -> None:
        with self._lock:
            self._clients.add(client)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.NAME, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            with self._lock:
                clients = list(self._clients)
            for client in clients:
                if client.NSD:
                    self._send(client)
                else:
                    with self._lock:
                        self._clients.discard(client)
            next_tick += self.PERIOD
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.2:  # far behind (machine overloaded): go on, do not burst
                next_tick = time.monotonic()

    @staticmethod
    def _send(client: RTP.RTPClient) -> None:
        """What pyVoIP's `RTPClient.trans` does once per period."""
        payload = client.encode_packet(client.pmout.read())
        header = (bytes((0x80, int(client.preference) & 0x7F))
                  + client.outSequence.to_bytes(2, "big")
                  + client.outTimestamp.to_bytes(4, "big")
                  + client.outSSRC.to_bytes(4, "big"))
        try:
            client.sout.sendto(header + payload, (client.outIP, client.outPort))
        except OSError:
            pass  # stopped meanwhile, or the peer's address is unusable: as pyVoIP, go on
        client.outSequence = (client.outSequence + 1) & 0xFFFF
        client.outTimestamp = (client.outTimestamp + len(payload)) & 0xFFFFFFFF


TRANSMITTER = Transmitter()


def _rtp_start(self: RTP.RTPClient) -> None:
    """pyVoIP's `RTPClient.start`, with the shared `TRANSMITTER` instead of a thread."""
    self.sin = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    self.sout = self.sin
    self.sin.bind((self.inIP, self.inPort))
    self.sin.setblocking(False)
    receiver = threading.Timer(0, self.recv)
    receiver.name = "RTP Receiver"
    receiver.start()
    TRANSMITTER.add(self)


FIXES = (
    Fix("pcma-encoded-as-pcmu", "rtp",
        "`RTPClient.encode_packet` encodes PCMA with the PCMU (u-law) encoder: a peer that "
        "chose PCMA hears noise.",
        rfc="RFC 3551 §4.5.14 (PCMA is A-law)",
        patches=(Patch.on(RTP.RTPClient, "encode_packet", _encode_packet),)),
    Fix("rtp-timestamp-jump", "rtp",
        "`RTPPacketManager.write` writes each payload at its timestamp into one BytesIO: a forward "
        "jump of the timestamp (a new SSRC, a peer switching sources) zero-fills the gap, up to "
        "4 GiB.",
        rfc="RFC 3550 §5.1 (the initial timestamp is random; a new SSRC starts anywhere)",
        patches=(Patch.on(RTP.RTPPacketManager, "write", _packet_manager_write),)),
    Fix("rtp-receive-busy-poll", "rtp",
        "`RTPClient.recv` polls its non-blocking socket every 10 ms: each call leg wakes up 100 "
        "times a second even when nothing arrives (most legs: we send audio, the peer sends "
        "little), and with hundreds of legs the wake-ups alone take a core.",
        patches=(Patch.on(RTP.RTPClient, "recv", _rtp_recv),)),
    Fix("rtp-thread-per-client", "rtp",
        "`RTPClient.start` gives each client a transmitter thread of its own that wakes up 50 "
        "times a second; with a few hundred legs the threads spend more time handing the GIL "
        "around than sending, until the SIP thread cannot answer INVITEs in time.",
        patches=(Patch.on(RTP.RTPClient, "start", _rtp_start),)),
)


# --- helpers on pyVoIP's audio buffers ---------------------------------------------------------

def pending_out(client: RTP.RTPClient) -> int:
    """Bytes written to CLIENT that its transmitter has not sent yet."""
    manager = client.pmout
    with manager.bufferLock:
        position = manager.buffer.tell()
        end = manager.buffer.seek(0, 2)
        manager.buffer.seek(position)
    return end - position


def flush_out(client: RTP.RTPClient) -> None:
    """Drop the audio still queued for sending (barge-in)."""
    manager = client.pmout
    with manager.bufferLock:
        manager.buffer.seek(0, 2)


def take_received(client: RTP.RTPClient) -> bytes:
    """All audio received on CLIENT since the last call, without waiting."""
    manager = client.pmin
    while manager.rebuilding:
        time.sleep(0.001)
    with manager.bufferLock:
        return manager.buffer.read()

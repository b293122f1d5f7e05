"""Test audio in pyVoIP's format: 8-bit unsigned, 8 kHz mono."""

from __future__ import annotations

import math


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    """A sine tone as pyVoIP audio: 8-bit unsigned, 8 kHz mono."""
    return bytes(int(128 + 90 * math.sin(2 * math.pi * frequency * i / 8000))
                 for i in range(int(seconds * 8000)))


def loudness(audio: bytes) -> float:
    """RMS of 8-bit unsigned audio around its midpoint (silence is ~0, `tone()` ~63)."""
    if not audio:
        return 0.0
    return math.sqrt(sum((sample - 128) ** 2 for sample in audio) / len(audio))

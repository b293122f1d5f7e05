"""Text-to-speech with a cache: each distinct text is synthesised once per language, ever.

A text is spoken by gTTS when Google is reachable and by espeak-ng otherwise, then converted by
sox to the two formats the transports play: 8 kHz mono u-law WAV (Twilio `<Play>`) and 8 kHz
mono 8-bit unsigned WAV (pyVoIP). Both files are named by a content hash of the normalised
text, the language and `FORMAT_VERSION`, never by the engine, so an action's text sent to
10,000 people is rendered once, and a cached file stays valid whichever engine made it.

Workers share the cache directory: a per-key `flock` makes one of them render while the others
wait and then find the files, and every file appears by an atomic `os.replace`, so nobody ever
reads half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unicodedata
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import requests

if TYPE_CHECKING:
    from ivr.prompts import Catalogue
from gtts import gTTS, gTTSError

from core.errors import BurgernetError
from core.metrics import Metrics
from core.settings import Settings

log = logging.getLogger("burgernet.tts")

#: Part of every cache key: raise it when the rendered formats change, and all is re-rendered.
FORMAT_VERSION = 1

Kind = Literal["ulaw", "u8"]
KINDS: tuple[Kind, ...] = ("ulaw", "u8")
_SUFFIX: dict[str, str] = {"ulaw": ".ulaw.wav", "u8": ".u8.wav"}
_SOX_ENCODING: dict[str, list[str]] = {
    "ulaw": ["-e", "u-law", "-b", "8"],
    "u8": ["-e", "unsigned-integer", "-b", "8"],
}
SAMPLE_RATE = 8000

#: espeak-ng voice and gTTS (language, Google top-level domain) per prompt language.
ESPEAK_VOICES: dict[str, str] = {"nl": "nl", "en": "en-gb"}
GTTS_LANGUAGES: dict[str, tuple[str, str]] = {"nl": ("nl", "com"), "en": ("en", "co.uk")}

GTTS = "gtts"
ESPEAK = "espeak-ng"
_DEBIAN_PACKAGE = {"espeak-ng": "espeak-ng", "sox": "sox"}
_KEY = re.compile(r"[0-9a-f]{64}")

#: Numbers the engines misread, as they must be said, per language; applied to every text.
SPOKEN_NUMBERS: dict[str, dict[str, str]] = {
    "nl": {"112": "één één twee"},
    "en": {"112": "one one two"},
}


class TTSError(BurgernetError):
    """A prompt could not be rendered: a program is missing, failed or took too long."""

    error_id = "tts_error"


def sounds_dir(settings: Settings) -> Path:
    """The cache of rendered prompts: `$BURGERNET_HOME/var/sounds`."""
    return settings.var_dir / "sounds"


def normalise(text: str) -> str:
    """The text as it is hashed and spoken: Unicode NFC, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def spoken(text: str, language: str) -> str:
    """The text as the engine gets it: "112" said digit by digit, not as a hundred and twelve.

    Applies to action texts too, so a centralist's "bel 112" is heard right. Changing these
    rules changes the audio: raise `FORMAT_VERSION` with them.
    """
    for number, words in SPOKEN_NUMBERS.get(str(language).lower(), {}).items():
        text = re.sub(rf"(?<!\d)(?<!\d[.,]){number}(?!\d)(?![.,]\d)", words, text)
    return text


def key_for(text: str, language: str) -> str:
    """The public name of a rendered text: a SHA-256 over format version, language and text."""
    material = f"{FORMAT_VERSION}\n{str(language).lower()}\n{normalise(text)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """The two files of one rendered text; `engine` is None when both came from the cache."""

    key: str
    ulaw: Path
    u8: Path
    engine: str | None

    @property
    def cached(self) -> bool:
        return self.engine is None

    def path(self, kind: Kind) -> Path:
        return self.ulaw if kind == "ulaw" else self.u8


class PromptRenderer:
    """Renders texts into the cache directory, each (text, language) once.

    `use_gtts=False` never contacts Google (tests, offline sites). After gTTS fails it is left
    alone for `gtts_retry_after` seconds, so an offline site does not pay its timeout per text.
    `on_synthesis(engine, text, language)` is called after every real synthesis, before the
    files are published; `syntheses` counts them by engine.
    """

    def __init__(self, cache_dir: Path | str, *, use_gtts: bool = True, timeout: float = 30.0,
                 gtts_timeout: float = 10.0, gtts_retry_after: float = 300.0,
                 espeak: str = "espeak-ng", sox: str = "sox", espeak_speed: int = 150,
                 on_synthesis: Callable[[str, str, str], None] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.use_gtts = use_gtts
        self.timeout = timeout
        self.gtts_timeout = gtts_timeout
        self.gtts_retry_after = gtts_retry_after
        self.espeak = espeak
        self.sox = sox
        self.espeak_speed = espeak_speed
        self.on_synthesis = on_synthesis
        self.metrics = metrics
        self.syntheses: Counter[str] = Counter()
        self._gtts_down_until = 0.0
        self._count_lock = threading.Lock()

    key_for = staticmethod(key_for)

    def path_for(self, key: str, kind: Kind) -> Path:
        """Where the file of `kind` for `key` lives; ValueError for anything but a cache key.

        Safe on keys taken from a URL: only 64 lowercase hex digits pass.
        """
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a sound key")
        if kind not in _SUFFIX:
            raise ValueError(f"{kind!r} is not a sound kind ({', '.join(KINDS)})")
        return self.cache_dir / f"{key}{_SUFFIX[kind]}"

    def is_cached(self, text: str, language: str) -> bool:
        return self._complete(key_for(text, self._language(language)))

    def render_fixed(self, catalogue: Catalogue,
                     progress: Callable[[int], None] | None = None) -> Counter[str]:
        """Render every prompt without placeholders, in each of its languages (what
        `burgernet sounds render` does); counts by engine, "cached" for those already there."""
        counts: Counter[str] = Counter()
        for prompt in catalogue:
            if prompt.is_template:
                continue
            for language, text in prompt.texts.items():
                counts[self.render(text, language).engine or "cached"] += 1
                if progress is not None:
                    progress(1)
        return counts

    def render(self, text: str, language: str) -> Rendered:
        """Both files for `text` in `language`, synthesising only when the cache lacks them."""
        language = self._language(language)
        text = normalise(text)
        if not text:
            raise TTSError("there is no text to speak")
        key = key_for(text, language)
        if self._complete(key):
            return self._hit(key)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(key):
            if self._complete(key):
                return self._hit(key)
            with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".render-") as tmp:
                work = Path(tmp)
                engine = self._synthesise(spoken(text, language), language, work)
                if self.on_synthesis is not None:
                    self.on_synthesis(engine, text, language)
                # u8 first: a key counts as cached once its u-law file exists too.
                for kind in ("u8", "ulaw"):
                    os.replace(work / f"out{_SUFFIX[kind]}", self.path_for(key, kind))
        with self._count_lock:
            self.syntheses[engine] += 1
        if self.metrics is not None:
            self.metrics.prompt(hit=False)
        log.debug("rendered %s (%s) with %s: %r", key, language, engine, text)
        return self._rendered(key, engine)

    def speak_once(self, text: str, language: str) -> bytes:
        """TEXT as raw 8-bit frames for pyVoIP, synthesised in a directory of its own that is
        gone when this returns: for a text that names a person, which the cache (and so
        /sounds/) must never hold. Spoken by espeak-ng here, not sent to Google; neither the
        text nor its key is logged."""
        language = self._language(language)
        text = normalise(text)
        if not text:
            raise TTSError("there is no text to speak")
        with tempfile.TemporaryDirectory(prefix="burgernet-private-") as tmp:
            work = Path(tmp)
            engine = self._synthesise(spoken(text, language), language, work, local=True)
            frames = raw_frames(work / f"out{_SUFFIX['u8']}")
        with self._count_lock:
            self.syntheses[engine] += 1
        return frames

    def _hit(self, key: str) -> Rendered:
        if self.metrics is not None:
            self.metrics.prompt(hit=True)
        return self._rendered(key, None)

    def _rendered(self, key: str, engine: str | None) -> Rendered:
        return Rendered(key, self.path_for(key, "ulaw"), self.path_for(key, "u8"), engine)

    def _complete(self, key: str) -> bool:
        return all(self.path_for(key, kind).is_file() for kind in ("ulaw", "u8"))

    @staticmethod
    def _language(language: str) -> str:
        code = str(language).lower()
        if code not in ESPEAK_VOICES:
            raise TTSError(f"no voice for language {language!r}; there are "
                           f"{', '.join(ESPEAK_VOICES)}")
        return code

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """Hold the key's lock file; another worker rendering the same key makes us wait."""
        locks = self.cache_dir / ".locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            patience = self.gtts_timeout + 4 * self.timeout
            deadline = time.monotonic() + patience
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TTSError(f"another worker has been rendering sound {key} for "
                                       f"over {patience:.0f} s") from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    def _synthesise(self, text: str, language: str, work: Path, local: bool = False) -> str:
        """Speak `text` into work/out.*.wav; returns the engine that did it. LOCAL keeps the
        text on this machine (espeak-ng, never Google)."""
        if self.use_gtts and not local and time.monotonic() >= self._gtts_down_until:
            try:
                source = work / "gtts.mp3"
                self._gtts(text, language, source)
                self._convert(source, work)
                return GTTS
            except (gTTSError, requests.RequestException, TTSError) as exc:
                self._gtts_down_until = time.monotonic() + self.gtts_retry_after
                log.warning("gTTS is unavailable (%s); using espeak-ng for the next %.0f s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            self.gtts_retry_after)
        source = work / "espeak.wav"
        self._run([self.espeak, "-v", ESPEAK_VOICES[language], "-s", str(self.espeak_speed),
                   "-b", "1", "-w", str(source), "--stdin"], text.encode("utf-8"))
        self._convert(source, work)
        return ESPEAK

    def _gtts(self, text: str, language: str, target: Path) -> None:
        lang, tld = GTTS_LANGUAGES[language]
        gTTS(text, lang=lang, tld=tld, lang_check=False, timeout=self.gtts_timeout).save(target)
        if not target.is_file() or target.stat().st_size == 0:
            raise TTSError("gTTS returned no audio")

    def _convert(self, source: Path, work: Path) -> None:
        for kind in ("ulaw", "u8"):
            self._run([self.sox, "-V1", str(source), "-r", str(SAMPLE_RATE), "-c", "1",
                       *_SOX_ENCODING[kind], str(work / f"out{_SUFFIX[kind]}")])

    def _run(self, command: list[str], stdin: bytes | None = None) -> None:
        """Run a program without a shell: the text goes in as bytes on stdin, never as code."""
        name = Path(command[0]).name
        program = shutil.which(command[0])
        if program is None:
            package = _DEBIAN_PACKAGE.get(name, name)
            raise TTSError(f"{command[0]} is not installed; it renders voice prompts "
                           f"(Debian/Ubuntu: apt install {package})")
        try:
            result = subprocess.run([program, *command[1:]], input=stdin, capture_output=True,
                                    timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TTSError(f"{name} took longer than {self.timeout:g} s") from None
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TTSError(f"{name} failed with exit status {result.returncode}"
                           + (f": {detail[-1]}" if detail else ""))


def raw_frames(path: Path | str) -> bytes:
    """The audio of an 8 kHz mono 8-bit unsigned WAV as raw frames, for pyVoIP's `write_audio`."""
    try:
        with wave.open(str(path), "rb") as audio:
            shape = (audio.getframerate(), audio.getnchannels(), audio.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 1):
                raise TTSError(f"{path}: {shape[0]} Hz, {shape[1]} channel(s), "
                               f"{8 * shape[2]}-bit; pyVoIP needs 8000 Hz mono 8-bit")
            return audio.readframes(audio.getnframes())
    except (wave.Error, EOFError) as exc:
        raise TTSError(f"{path}: not a PCM WAV file ({exc})") from None

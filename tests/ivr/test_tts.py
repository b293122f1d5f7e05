"""Rendering prompts with the real espeak-ng and sox, gTTS mocked at its HTTP boundary."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from click.testing import CliRunner

from core.cli import Context
from core.metrics import Metrics
from core.settings import Settings
from ivr.cli import sounds_command
from ivr.prompts import LANGUAGES, load_catalogue
from ivr.tts import PromptRenderer, TTSError, key_for, raw_frames, spoken

GOOGLE = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="needs espeak-ng and sox (apt install espeak-ng sox)")


def wav_format(path: Path) -> tuple[int, int, int, int, float]:
    """(format tag, channels, rate, bits per sample, seconds) from a WAV file's own chunks.

    The stdlib `wave` module opens only PCM, so the u-law file is read by hand.
    """
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    offset, fmt, size = 12, None, None
    while offset + 8 <= len(data):
        chunk, length = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", data[offset + 8:offset + 24])
        elif chunk == b"data":
            size = length
        offset += 8 + length + (length & 1)
    assert fmt is not None and size is not None
    tag, channels, rate, _byte_rate, block_align, bits = fmt
    return tag, channels, rate, bits, size / (rate * block_align)


@pytest.fixture
def renderer(tmp_path: Path) -> PromptRenderer:
    return PromptRenderer(tmp_path / "sounds", use_gtts=False)


def test_a_prompt_renders_to_8khz_ulaw_and_8bit_unsigned(renderer: PromptRenderer) -> None:
    result = renderer.render("Welkom bij het gratis nummer van Burgernet.", "nl")
    assert result.engine == "espeak-ng"
    tag, channels, rate, bits, seconds = wav_format(result.ulaw)
    assert (tag, channels, rate, bits) == (7, 1, 8000, 8)
    assert 0.3 < seconds < 10
    import wave

    with wave.open(str(result.u8)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 1)
        frames = audio.getnframes()
    assert frames / 8000 > 0.3
    raw = raw_frames(result.u8)
    assert len(raw) == frames
    assert len(set(raw)) > 20  # speech, not silence
    assert result.ulaw.name == f"{result.key}.ulaw.wav"
    assert result.u8 == renderer.path_for(result.key, "u8")


def test_the_same_text_is_synthesised_once(renderer: PromptRenderer) -> None:
    first = renderer.render("Toets de vier cijfers van uw postcode.", "nl")
    mtime = first.ulaw.stat().st_mtime_ns
    again = renderer.render("  Toets de vier cijfers\nvan uw postcode. ", "nl")
    assert again.cached and again.key == first.key
    assert renderer.syntheses == {"espeak-ng": 1}
    assert first.ulaw.stat().st_mtime_ns == mtime
    assert renderer.is_cached("Toets de vier cijfers van uw postcode.", "nl")
    english = renderer.render("Toets de vier cijfers van uw postcode.", "en")
    assert english.key != first.key and english.engine == "espeak-ng"


def test_cache_hits_and_misses_are_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    renderer = PromptRenderer(tmp_path / "sounds", use_gtts=False, metrics=metrics)
    for _ in range(3):
        renderer.render("Welkom bij Burgernet.", "nl")
    renderer.speak_once("Beller 0612345678", "nl")  # private: never in the cache
    lookups = {result: metrics.registry.get_sample_value(
        "burgernet_prompt_cache_lookups_total", {"result": result}) for result in ("hit", "miss")}
    assert lookups == {"hit": 2, "miss": 1}


def test_keys_depend_on_text_and_language_only() -> None:
    assert key_for("Hallo  wereld", "nl") == key_for(" Hallo wereld\n", "NL")
    assert key_for("Hallo wereld", "nl") != key_for("Hallo wereld", "en")
    assert key_for("Hallo wereld", "nl") != key_for("Hallo wereld!", "nl")
    assert len(key_for("x", "nl")) == 64


@pytest.mark.parametrize(("text", "language", "said"), [
    ("Bel in een noodgeval altijd 112.", "nl", "Bel in een noodgeval altijd één één twee."),
    ("Always call 112, day or night", "en", "Always call one one two, day or night"),
    ("Huisnummer 1123, postcode 0112, 112.5 km", "nl", "Huisnummer 1123, postcode 0112, 112.5 km"),
])
def test_the_emergency_number_is_said_digit_by_digit(text: str, language: str, said: str) -> None:
    assert spoken(text, language) == said


def test_the_engine_hears_the_spoken_form_and_the_key_stays_on_the_text(tmp_path: Path) -> None:
    fake = tmp_path / "fake-espeak"
    heard = tmp_path / "heard"
    fake.write_text(f"#!/bin/sh\ncat > {heard}\nexec espeak-ng \"$@\" < {heard}\n")
    fake.chmod(0o755)
    renderer = PromptRenderer(tmp_path / "sounds", use_gtts=False, espeak=str(fake))
    result = renderer.render("Bel 112.", "nl")
    assert heard.read_text(encoding="utf-8") == "Bel één één twee."
    assert result.key == key_for("Bel 112.", "nl")


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "0" * 63, "", "0" * 64 + "/"])
def test_only_real_keys_name_a_file(renderer: PromptRenderer, key: str) -> None:
    with pytest.raises(ValueError, match="not a sound key"):
        renderer.path_for(key, "ulaw")


def test_text_goes_to_espeak_as_data_not_as_options_or_shell(renderer: PromptRenderer,
                                                             tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    result = renderer.render(f'--help -v en "; touch {canary}; $(touch {canary})', "en")
    assert result.engine == "espeak-ng"
    assert wav_format(result.ulaw)[4] > 1.0
    assert not canary.exists()


def test_two_workers_rendering_the_same_text_synthesise_it_once(tmp_path: Path) -> None:
    def slow(engine: str, text: str, language: str) -> None:
        time.sleep(0.3)  # the other worker arrives while this one is still synthesising

    workers = [PromptRenderer(tmp_path / "sounds", use_gtts=False, on_synthesis=slow)
               for _ in range(2)]
    barrier = threading.Barrier(2)
    results = []

    def work(renderer: PromptRenderer) -> None:
        barrier.wait()
        results.append(renderer.render("Een ogenblik geduld alstublieft.", "nl"))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.engine or "cache" for r in results) == ["cache", "espeak-ng"]
    assert sum(sum(w.syntheses.values()) for w in workers) == 1
    assert sorted(p.name for p in (tmp_path / "sounds").iterdir() if not p.name.startswith(".")) \
        == sorted([f"{results[0].key}.u8.wav", f"{results[0].key}.ulaw.wav"])


def test_two_processes_rendering_the_same_text_synthesise_it_once(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from ivr.tts import PromptRenderer\n"
        "r = PromptRenderer(sys.argv[1], use_gtts=False,\n"
        "                   on_synthesis=lambda *a: time.sleep(0.5))\n"
        "print(r.render('U wordt doorverbonden.', 'nl').engine)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "sounds")],
                              cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert outputs == ["None", "espeak-ng"]


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    for option, name in (("espeak", "espeak-ng-not-here"), ("sox", "sox-not-here")):
        renderer = PromptRenderer(tmp_path, use_gtts=False, **{option: name})
        with pytest.raises(TTSError, match=f"{name} is not installed"):
            renderer.render("Tot ziens.", "nl")
    assert not any(p.suffix == ".wav" for p in tmp_path.iterdir())


def test_a_hanging_program_times_out(tmp_path: Path) -> None:
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nsleep 10\n")
    hang.chmod(0o755)
    renderer = PromptRenderer(tmp_path / "sounds", use_gtts=False, espeak=str(hang), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TTSError, match="hang took longer than 0.3 s"):
        renderer.render("Tot ziens.", "nl")
    assert time.monotonic() - started < 5


def test_a_failing_program_says_why(tmp_path: Path) -> None:
    fail = tmp_path / "fail"
    fail.write_text("#!/bin/sh\necho 'no voice here' >&2\nexit 3\n")
    fail.chmod(0o755)
    renderer = PromptRenderer(tmp_path / "sounds", use_gtts=False, espeak=str(fail))
    with pytest.raises(TTSError, match="fail failed with exit status 3: no voice here"):
        renderer.render("Tot ziens.", "nl")


def test_an_unknown_language_or_empty_text_is_refused(renderer: PromptRenderer) -> None:
    with pytest.raises(TTSError, match="no voice for language 'de'"):
        renderer.render("Hallo", "de")
    with pytest.raises(TTSError, match="no text"):
        renderer.render("  \n", "nl")


def test_raw_frames_refuses_what_pyvoip_cannot_play(renderer: PromptRenderer) -> None:
    result = renderer.render("Tot ziens.", "nl")
    with pytest.raises(TTSError, match="not a PCM WAV"):
        raw_frames(result.ulaw)


# --- gTTS, with Google replaced at the HTTP boundary ---------------------------------------

def google_reply(mp3: bytes) -> str:
    """A batchexecute answer as Google sends it: an XSSI guard, then the audio as base64."""
    payload = json.dumps([base64.b64encode(mp3).decode("ascii")])
    line = json.dumps([["wrb.fr", "jQ1olc", payload, None, None, None, "generic"]],
                      separators=(",", ":"))
    return f")]}}'\n\n{len(line)}\n{line}\n"


@pytest.fixture
def google() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def tone_mp3(tmp_path: Path) -> bytes:
    """A real MP3: 1.5 s of 440 Hz, which espeak-ng would never produce from a sentence."""
    path = tmp_path / "tone.mp3"
    made = subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", str(path), "synth", "1.5",
                           "sine", "440"], capture_output=True, check=False)
    if made.returncode != 0 or not path.is_file():
        pytest.skip("sox cannot write MP3 here (install libsox-fmt-mp3): "
                    + made.stderr.decode(errors="replace").strip())
    return path.read_bytes()


def test_gtts_output_is_used_when_google_answers(tmp_path: Path, google, tone_mp3: bytes) -> None:
    google.post(GOOGLE, body=google_reply(tone_mp3))
    renderer = PromptRenderer(tmp_path / "sounds")
    result = renderer.render("Dit is een Burgernetbericht van de politie.", "nl")
    assert result.engine == "gtts"
    assert len(google.calls) == 1
    assert "Burgernetbericht" in requests.utils.unquote(google.calls[0].request.body)
    tag, channels, rate, bits, seconds = wav_format(result.ulaw)
    assert (tag, channels, rate, bits) == (7, 1, 8000, 8)
    assert seconds == pytest.approx(1.5, abs=0.15)
    assert len(raw_frames(result.u8)) / 8000 == pytest.approx(1.5, abs=0.15)
    assert renderer.render("Dit is een Burgernetbericht van de politie.", "nl").cached
    assert len(google.calls) == 1


@pytest.mark.parametrize("failure", [
    {"status": 500, "body": "server error"},
    {"status": 200, "body": ")]}'\n\n[]\n"},
    {"body": requests.ConnectionError("no route to Google")},
    {"status": 200, "body": google_reply(b"not an mp3 at all")},
], ids=["http-500", "no-audio", "unreachable", "garbage-audio"])
def test_when_gtts_fails_espeak_ng_speaks(tmp_path: Path, google, failure: dict) -> None:
    google.post(GOOGLE, **failure)
    renderer = PromptRenderer(tmp_path / "sounds", gtts_retry_after=60)
    result = renderer.render("Dit is een Burgernetbericht van de politie.", "nl")
    assert result.engine == "espeak-ng"
    assert len(google.calls) == 1
    assert wav_format(result.ulaw)[:4] == (7, 1, 8000, 8)
    assert renderer.render("Tot ziens.", "nl").engine == "espeak-ng"
    assert len(google.calls) == 1  # Google is left alone for a while after it failed


def test_no_gtts_never_asks_google(tmp_path: Path, google) -> None:
    renderer = PromptRenderer(tmp_path / "sounds", use_gtts=False)
    assert renderer.render("Tot ziens.", "nl").engine == "espeak-ng"
    assert len(google.calls) == 0


def test_a_private_text_is_spoken_without_a_file_and_without_google(tmp_path: Path,
                                                                   google) -> None:
    """The whisper names the caller's number: the cache (served at /sounds/) never holds it,
    and it stays on this machine even where gTTS is on."""
    google.post(GOOGLE, status=500)
    renderer = PromptRenderer(tmp_path / "sounds")
    text = "Burgernetgesprek zonder lopende actie. Beller 3 1 6 1 2 3 4 5 6 7 8."
    frames = renderer.speak_once(text, "nl")
    assert len(frames) / 8000 > 2  # 8 kHz, a byte a frame: seconds of speech
    assert len(google.calls) == 0
    assert not (tmp_path / "sounds").exists() or not any((tmp_path / "sounds").rglob("*"))
    assert not renderer.is_cached(text, "nl")


# --- burgernet sounds ------------------------------------------------------------------------

@pytest.fixture
def context(tmp_path: Path) -> Context:
    """Settings of a fresh home; the sound commands need no database or Redis."""
    return Context(Settings.from_env({"BURGERNET_HOME": str(tmp_path), "SECRET_KEY": "test"}))


def test_render_renders_every_fixed_prompt_once(context: Context, tmp_path: Path) -> None:
    catalogue = load_catalogue()
    fixed = [p for p in catalogue if not p.is_template]
    expected = len(fixed) * len(LANGUAGES)
    runner = CliRunner()
    first = runner.invoke(sounds_command, ["render", "--no-gtts"], obj=context,
                          catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert f"{expected} rendered (espeak-ng {expected}), 0 already cached" in first.output
    assert "placeholders left for calls to render: action_known, whisper, whisper_no_action" \
        in first.output
    cache = tmp_path / "var" / "sounds"
    assert len(list(cache.glob("*.ulaw.wav"))) == expected
    for prompt in fixed:
        for language in LANGUAGES:
            assert (cache / f"{key_for(prompt.texts[language], language)}.ulaw.wav").is_file()
    second = runner.invoke(sounds_command, ["render", "--no-gtts"], obj=context)
    assert f"0 rendered, {expected} already cached" in second.output
    listing = runner.invoke(sounds_command, ["list"], obj=context)
    assert listing.exit_code == 0
    assert "greeting               nl rendered en rendered" in listing.output
    assert "whisper                rendered per call: {action} {caller} {reason}" in listing.output


def test_render_with_a_missing_program_fails_with_its_name(context: Context,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    result = CliRunner().invoke(sounds_command, ["render", "--no-gtts"], obj=context)
    assert result.exit_code != 0
    assert isinstance(result.exception, TTSError)
    assert "espeak-ng is not installed" in str(result.exception)

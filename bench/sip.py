"""Benchmark: the free number over SIP under load, against a bare pyVoIP endpoint in the same run.

    .venv/bin/python bench/sip.py [--rate 10] [--seconds 60] [--hold 15] [--skip-baseline]

Issue 5: "SIP: 200 concurrent inbound calls through Kamailio with no failures, and 10 new
calls/s sustained for a minute". One load does both: SIPp callers place RATE new calls per
second for SECONDS through Kamailio; each call lasts ~20 s, so ~200 are up at once for most
of the minute. Every call is a whole free-number call: greeting, the caller keys the postcode
3441# while it plays, "connecting", a second leg to the meldkamer (a SIPp UAS behind the same
Kamailio, ringback meanwhile), the whisper (rendered per call: each caller has a number of
their own, unknown to the database), the bridge until the meldkamer hangs up after HOLD
seconds, and the CallRecord.

The app side runs in a process of its own, wired as `burgernet sip` wires it (the Runtime's
free-number `SipFlowRunner`, built from settings) on a fresh SQLite database with the
reference data, its fixed prompts rendered beforehand (as `burgernet sounds render` does at
install), registered as "burgernet". The baseline, in the
same run: the same SIPp load against a bare `SipEndpoint` in the same kind of process that only
answers, sends silence (pyVoIP's RTP) and hangs up after as long as our calls lasted on
average: what pyVoIP and the peers cost without our flow, routing, database, TTS and second
leg. Prints SIPp's successful and failed calls, peak concurrent calls, achieved call rate,
answer-time percentiles (INVITE to 200 OK, from SIPp's -trace_rtt), CPU seconds per call of
the app process (children such as espeak-ng and sox included), its peak threads and memory,
the CallRecords and their outcomes, and the ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import csv  # noqa: E402
import faulthandler  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from sqlalchemy import select  # noqa: E402

from core.db import make_engine, session_factory  # noqa: E402
from core.models import CallRecord  # noqa: E402
from core.reference import load_reference  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR, Settings  # noqa: E402
from fakes import sip as peers  # noqa: E402
from fakes.sip import HOST, PeerError, free_udp_port, stop_process  # noqa: E402
from ivr.prompts import load_catalogue  # noqa: E402
from ivr.tts import PromptRenderer  # noqa: E402

DATA = Path(__file__).resolve().parent / "sip"
CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"
SERVICE = "burgernet"
TICK = os.sysconf("SC_CLK_TCK")


# --- the app side: a process of its own, as `burgernet sip` runs ------------------------------

def serve(args: argparse.Namespace) -> None:
    """The app process: the free number (MODE flow) or the bare baseline endpoint (MODE bare),
    registered at the proxy; prints "ready" and runs until SIGTERM."""
    from ivr.sip import SipCall, SipEndpoint
    from outbound.runtime import build_runtime

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where threads are
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    if args.mode == "flow":  # wired as `burgernet sip` wires it, from settings
        runtime = build_runtime(Settings.from_env({
            "BURGERNET_HOME": str(args.home), "DATABASE_URL": args.database_url,
            "SECRET_KEY": "bench", "MELDKAMER_CONFIG": str(CONFIG), "TTS": "espeak",
            "SIP_PROXY": f"{HOST}:{args.proxy_port}", "SIP_USERNAME": SERVICE,
            "SIP_LOCAL_IP": HOST, "SIP_RTP_PORTS": args.rtp_ports}))
        endpoint = runtime.sip_runner(SERVICE, free_number=True).endpoint
        assert endpoint is not None
    else:
        hold = args.bare_hold

        def on_call(call: SipCall) -> None:
            call.answer()
            call.wait_ended(hold)

        low, high = (int(port) for port in args.rtp_ports.split("-"))
        endpoint = SipEndpoint(proxy_host=HOST, proxy_port=args.proxy_port, username=SERVICE,
                               rtp_ports=(low, high), on_call=on_call)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    endpoint.start()
    print("ready", flush=True)
    try:
        stop.wait()
    finally:
        endpoint.stop()


# --- peers on loopback ------------------------------------------------------------------------

@contextmanager
def kamailio(workdir: Path, *, trunk_port: int, children: int,
             memory_mb: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Kamailio on a free port: registrar, and numbers starting with 0 or + to TRUNK_PORT."""
    port = free_udp_port()
    config = ((DATA / "kamailio.cfg").read_text()
              .replace("@CHILDREN@", str(children)).replace("@PORT@", str(port))
              .replace("@TRUNK_PORT@", str(trunk_port)))
    with peers.kamailio(config, workdir, port, memory_mb=memory_mb, private_mb=8) as process:
        yield port, process


def sipp(workdir: Path, scenario: str, *, port: int, arguments: list[str],
         proxy_port: int | None = None) -> subprocess.Popen[bytes]:
    """SIPp with SCENARIO from bench/sip on PORT, its files in WORKDIR; a UAC when PROXY_PORT."""
    workdir.mkdir()
    return peers.sipp(DATA / scenario, workdir, port=port, media_port=free_udp_port(span=4),
                      arguments=["-buff_size", str(4 * 1024 * 1024), "-fd", "1", *arguments],
                      proxy_port=proxy_port)


# --- measuring ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU of PID and of its waited-for children (espeak-ng, sox)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICK


@dataclass
class Sampler:
    """Samples threads and resident memory of a process every half second."""

    pid: int
    threads: int = 0
    rss_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            self.threads = max(self.threads, int(values["Threads"]))
            self.rss_mb = max(self.rss_mb, int(values["VmRSS"].split()[0]) / 1024)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


#: SIPp times a response to the millisecond: a shorter one reads 0.
TIMER_RESOLUTION_MS = 1.0


def ratio(ours: float, bare: float, resolution: float = 0.0) -> str:
    """OURS ÷ BARE for the report, whatever BARE is: a BARE below RESOLUTION (the timer's
    step) counts as RESOLUTION and makes the ratio a lower bound ("≥"); a BARE of 0 or NaN says
    so instead of failing."""
    if bare != bare or ours != ours:  # NaN: nothing measured
        return "n/a"
    if bare < resolution:
        return f"≥{ours / resolution:.2f} (bare below the {resolution:g} ms timer step)"
    if bare <= 0:
        return "n/a (bare took no time)"
    return f"{ours / bare:.2f}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def sipp_stats(workdir: Path) -> dict[str, float]:
    """Totals from SIPp's last statistics line and the peak of its concurrent calls."""
    with (workdir / "stats.csv").open(newline="") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    last = rows[-1]
    return {"successful": int(last["SuccessfulCall(C)"]), "failed": int(last["FailedCall(C)"]),
            "created": int(last["OutgoingCall(C)"]),
            "peak": max(int(row["CurrentCall"]) for row in rows)}


def answer_times(workdir: Path) -> list[tuple[float, float]]:
    """(when, answer time in ms) of every call, from SIPp's -trace_rtt file."""
    times = []
    for path in workdir.glob("*_rtt.csv"):
        with path.open() as file:
            for line in file:
                parts = line.strip().split(";")
                if len(parts) >= 2 and parts[0].replace(".", "").isdigit():
                    times.append((float(parts[0]) / 1000, float(parts[1])))
    return sorted(times)


@dataclass
class Result:
    name: str
    successful: int
    failed: int
    created: int
    peak: int
    rate: float
    answer_ms: list[float]
    cpu: float
    threads: int
    rss_mb: float
    wall: float
    exit_code: int

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / max(1, self.successful + self.failed)


def load(name: str, work: Path, *, mode: str, proxy_port: int, meldkamer_port: int,
         args: argparse.Namespace, database_url: str, home: Path, bare_hold: float) -> Result:
    """One run of the SIPp load against the app process in MODE."""
    calls = round(args.rate * args.seconds)
    workdir = work / name
    workdir.mkdir()
    with (workdir / "app.log").open("wb") as log:
        app = subprocess.Popen(
            [sys.executable, __file__, "serve", "--mode", mode, "--proxy-port", str(proxy_port),
             "--database-url", database_url, "--home", str(home), "--rtp-ports",
             args.rtp_ports, "--bare-hold", f"{bare_hold:.3f}"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
    meldkamer = caller = None
    try:
        assert app.stdout is not None
        if app.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the app process did not start:\n{(workdir / 'app.log').read_text()}")
        meldkamer = sipp(workdir / "meldkamer", "meldkamer.xml", port=meldkamer_port,
                         arguments=["-d", str(int(args.hold * 1000)), "-l", "5000"])
        numbers = workdir / "callers.csv"
        numbers.write_text("SEQUENTIAL\n" + "".join(f"06{20000000 + n};\n" for n in range(calls)))
        sampler = Sampler(app.pid)
        cpu_before, start = cpu_seconds(app.pid), time.monotonic()
        caller = sipp(workdir / "caller", "caller.xml", port=free_udp_port(), proxy_port=proxy_port,
                      arguments=["-s", SERVICE, "-inf", str(numbers), "-r", f"{args.rate:g}",
                                 "-m", str(calls), "-l", "5000", "-trace_rtt", "-rtt_freq", "1",
                                 "-timeout", f"{args.seconds + 300:g}s", "-timeout_error"])
        exit_code = caller.wait()
        wall = time.monotonic() - start
        time.sleep(1.0)  # the last CallRecords and hang-ups
        cpu = cpu_seconds(app.pid) - cpu_before
        sampler.stop()
    finally:
        for process in (caller, meldkamer):
            if process is not None:
                stop_process(process)
        stop_process(app)
    stats = sipp_stats(workdir / "caller")
    answers = answer_times(workdir / "caller")
    rate = (len(answers) - 1) / (answers[-1][0] - answers[0][0]) if len(answers) > 1 else 0.0
    return Result(name, stats["successful"], stats["failed"], stats["created"], stats["peak"],
                  rate, [ms for _, ms in answers], cpu, sampler.threads, sampler.rss_mb, wall,
                  exit_code)


def call_records(database_url: str) -> tuple[Counter[str], Counter[str], list[float],
                                              list[float]]:
    """Outcomes and routing reasons (up to the first ";") of the CallRecords, and seconds from
    start to connected and to end."""
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        records = list(session.scalars(select(CallRecord)))
    engine.dispose()
    outcomes = Counter(record.outcome or "(none)" for record in records)
    reasons = Counter((record.routing_reason or "(none)").split(";")[0] for record in records)
    connect = [(r.connected_at - r.started_at).total_seconds() for r in records
               if r.connected_at is not None]
    length = [(r.ended_at - r.started_at).total_seconds() for r in records
              if r.ended_at is not None]
    return outcomes, reasons, connect, length


def prepare(home: Path) -> str:
    """A fresh SQLite database with the reference data, and the fixed prompts rendered into
    the sound cache of BURGERNET_HOME=HOME."""
    url = f"sqlite:///{home / 'bench.sqlite3'}"
    engine = make_engine(url)
    ensure_schema(engine)
    with session_factory(engine, writer=True)() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, CONFIG)
    engine.dispose()
    renderer = PromptRenderer(home / "var" / "sounds", use_gtts=False)
    renderer.render_fixed(load_catalogue())
    return url


def report(result: Result) -> None:
    ms = result.answer_ms
    print(f"  {result.name:9s} calls {result.successful:4d} ok / {result.failed} failed "
          f"(SIPp exit {result.exit_code}), peak {result.peak} concurrent, "
          f"{result.rate:.2f} answered calls/s, answer p50 {percentile(ms, 0.5):.1f} ms "
          f"p90 {percentile(ms, 0.9):.1f} p99 {percentile(ms, 0.99):.1f} "
          f"max {max(ms, default=float('nan')):.1f}; CPU {result.cpu:.1f} s "
          f"({result.cpu_per_call * 1000:.1f} ms/call, {result.cpu / result.wall:.2f} cores), "
          f"peak {result.threads} threads, {result.rss_mb:.0f} MB; {result.wall:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    app = commands.add_parser("serve", help="(internal) the app process of one run")
    app.add_argument("--mode", choices=("flow", "bare"), required=True)
    app.add_argument("--proxy-port", type=int, required=True)
    app.add_argument("--database-url", required=True)
    app.add_argument("--home", type=Path, required=True)
    app.add_argument("--rtp-ports", required=True)
    app.add_argument("--bare-hold", type=float, required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long new calls come")
    parser.add_argument("--hold", type=float, default=15.0,
                        help="seconds each meldkamer stays on the line after answering")
    parser.add_argument("--rtp-ports", default="20000-30000", help="the app's RTP port range")
    parser.add_argument("--kamailio-children", type=int, default=4)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-free", action="store_true",
                        help="only the baseline (its calls then last --bare-hold seconds)")
    parser.add_argument("--bare-hold", type=float, default=22.0)
    parser.add_argument("--keep", type=Path, help="keep the logs and SIPp files in this folder")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
        return

    load_before = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    try:
        url = prepare(home)
        meldkamer_port = free_udp_port()
        with kamailio(home, trunk_port=meldkamer_port, children=args.kamailio_children,
                      memory_mb=256) as (proxy_port, _):
            ours = None
            if not args.skip_free:
                ours = load("free", home, mode="flow", proxy_port=proxy_port,
                            meldkamer_port=meldkamer_port, args=args, database_url=url,
                            home=home, bare_hold=0.0)
            outcomes, reasons, connect, length = call_records(url)
            baseline = None
            if not args.skip_baseline:
                hold = statistics.fmean(length) if length else args.bare_hold
                baseline = load("bare", home, mode="bare", proxy_port=proxy_port,
                                meldkamer_port=meldkamer_port, args=args, database_url=url,
                                home=home, bare_hold=hold)
    finally:
        if args.keep is not None:
            shutil.copytree(home, args.keep, dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)

    print(f"SIP free number, {args.rate:g} new calls/s for {args.seconds:g} s "
          f"({round(args.rate * args.seconds)} calls), meldkamer on the line {args.hold:g} s; "
          f"Kamailio {args.kamailio_children} children; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    if ours is None:
        if baseline is not None:
            report(baseline)
        return
    report(ours)
    print(f"  CallRecords {sum(outcomes.values())}: "
          + ", ".join(f"{outcome} {n}" for outcome, n in outcomes.most_common())
          + f"; start to connected p50 {percentile(connect, 0.5):.2f} s "
            f"p99 {percentile(connect, 0.99):.2f} s; call length mean "
            f"{statistics.fmean(length) if length else float('nan'):.1f} s")
    print("  routed by: " + ", ".join(f"{reason} {n}" for reason, n in reasons.most_common()))
    if baseline is not None:
        report(baseline)
        ours_ms, bare_ms = ours.answer_ms, baseline.answer_ms
        ratios = [
            "answer p50 " + ratio(percentile(ours_ms, 0.5), percentile(bare_ms, 0.5),
                                  TIMER_RESOLUTION_MS),
            "p99 " + ratio(percentile(ours_ms, 0.99), percentile(bare_ms, 0.99),
                           TIMER_RESOLUTION_MS),
            f"CPU per call {ratio(ours.cpu_per_call, baseline.cpu_per_call)}",
            f"rate {ratio(ours.rate, baseline.rate)}"]
        print("  ratio free/bare: " + ", ".join(ratios))
    met_concurrent = ours.failed == 0 and ours.exit_code == 0 and ours.peak >= 200
    met_rate = (ours.failed == 0 and ours.successful == round(args.rate * args.seconds)
                and ours.rate >= 0.98 * args.rate)
    print(f"  goal 200 concurrent calls, no failures: {'met' if met_concurrent else 'not met'}; "
          f"goal {args.rate:g} calls/s for {args.seconds:g} s, all succeed: "
          f"{'met' if met_rate else 'not met'}")


if __name__ == "__main__":
    try:
        main()
    except PeerError as error:
        raise SystemExit(str(error)) from None

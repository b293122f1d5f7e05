"""Benchmark: SMS through the whole outbound path against a bare aiohttp sender, same run.

    .venv/bin/python bench/dispatch.py [--messages 50000] [--workers 2]

Both sides post the same Messages.json requests to the same local Twilio-compatible fake
(a separate process, no status callbacks, no latency) with the same number of processes and
no rate limit. Ours: `burgernet worker --burst` processes draining the outbox of an action
whose area holds MESSAGES SMS recipients (claim, render, throttle, send with the official
twilio client on aiohttp, record). Baseline: processes that only post. Also measured: the
time to write the outbox and queue it, and how soon the first batches are queued.
Goal: ours >= 0.5 of the baseline's rate and >= 2,000 msg/s on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from sqlalchemy import func, select, update  # noqa: E402

from core.db import make_engine, session_factory  # noqa: E402
from core.models import (  # noqa: E402
    Action,
    ActionKind,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    Participant,
    Urgency,
)
from core.redis_server import EmbeddedRedis, free_port  # noqa: E402
from core.reference import load_reference  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.seed import seed_demo  # noqa: E402
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR, Settings  # noqa: E402
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN  # noqa: E402
from outbound.fanout import start_action  # noqa: E402
from outbound.queues import enqueue  # noqa: E402
from outbound.runtime import build_runtime  # noqa: E402

CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"


def prepare(url: str, messages: int, channel_bit: int = 2) -> int:
    """Reference data, a verified population on one channel (SMS: 2, voice: 1), and a
    national action."""
    engine = make_engine(url)
    ensure_schema(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, CONFIG)
    seed_demo(sessions, size=messages, seed=1)
    with sessions() as session, session.begin():
        session.execute(update(Participant).values(channels=channel_bit, status="verified"))
        action = Action(kind=ActionKind.AMBER, urgency=Urgency.URGENT, title_nl="Vermist kind",
                        description_nl="Meisje van 8, roze jas.", center_lat=52.2,
                        center_lon=5.3, radius_m=300_000,
                        meldkamer=session.scalar(select(Meldkamer).limit(1)),
                        organisation=session.scalar(select(Organisation).limit(1)))
        session.add(action)
        session.flush()
        action_id = action.id
    engine.dispose()
    return action_id


def _bare_sender(url: str, count: int, result: multiprocessing.Queue) -> None:
    """The baseline: aiohttp posting the same form to the same fake, 200 in flight."""
    from aiohttp import ClientSession

    async def run() -> float:
        auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        endpoint = f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        gate = asyncio.Semaphore(200)
        async with ClientSession(headers={"Authorization": f"Basic {auth}"}) as session:

            async def post(i: int) -> None:
                async with gate, session.post(endpoint, data={
                        "To": f"+3169{i:07d}", "From": "+31690000999",
                        "Body": "Burgernet: Vermist kind. Meisje van 8, roze jas."}) as reply:
                    await reply.read()

            started = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(count)))
            return time.perf_counter() - started

    result.put(asyncio.run(run()))


def bare_rate(url: str, messages: int, workers: int) -> float:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    share = messages // workers
    processes = [context.Process(target=_bare_sender, args=(url, share, results))
                 for _ in range(workers)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    return share * workers / elapsed


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watch_memory(workers: list[subprocess.Popen[bytes]]) -> list[list[float]]:
    """Sample each worker's resident memory every second until all have exited."""
    samples: list[list[float]] = [[] for _ in workers]
    while any(w.poll() is None for w in workers):
        for index, worker in enumerate(workers):
            value = rss_mb(worker.pid)
            if value is not None:
                samples[index].append(value)
        time.sleep(1)
    return samples


class WindowWatch(threading.Thread):
    """Collects every send the shared sliding-second window admitted, with Redis's time of
    admission: the moment each request left for the provider, as our limiter saw it."""

    def __init__(self, connection, key: str) -> None:
        super().__init__(daemon=True)
        self.connection, self.key = connection, key
        self.seen: dict[bytes, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):  # entries stay a full second: nothing slips past
            for member, score in self.connection.zrange(self.key, 0, -1, withscores=True):
                self.seen[member] = score / 1_000_000


def fetch_records(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/_fake/records", timeout=60) as reply:
        return list(json.load(reply)["records"])


def records(url: str) -> int:
    return len(fetch_records(url))


def rate_report(arrivals: list[float], rate: float) -> str:
    """Achieved rate over the run and the busiest one-second window of arrivals."""
    arrivals = sorted(arrivals)
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    busiest, start = 0, 0
    for end, moment in enumerate(arrivals):
        while moment - arrivals[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    by_second = Counter(int(moment) for moment in arrivals[1:-1])  # whole seconds only
    by_second.pop(int(arrivals[0]), None)
    by_second.pop(int(arrivals[-1]), None)
    return (f"configured {rate:.0f} msg/s; achieved {achieved:.2f} msg/s "
            f"({(achieved / rate - 1) * 100:+.2f} %); busiest sliding second: {busiest} "
            f"messages; busiest clock second: {max(by_second.values(), default=0)}")


def first_message(runtime, action_id: int, env: dict[str, str], fake_url: str) -> str:
    """Start the action with one worker already waiting; wait for the provider's first hit."""
    waiting = subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # the worker is up and listening
        arrived: list[float] = []

        def watch() -> None:
            while not records(fake_url):
                time.sleep(0.005)
            arrived.append(time.perf_counter())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        result = start_action(runtime.writer, action_id, now=datetime.now(UTC),
                              dispatch=lambda batches: enqueue(runtime.redis, batches))
        written = time.perf_counter() - started
        watcher.join(60)
        first = arrived[0] - started
    finally:
        waiting.terminate()
        waiting.wait()
    return (f"{result.deliveries} recipients: first message at the provider "
            f"{first * 1000:.0f} ms after the start (goal < 1 s); "
            f"whole outbox written and queued in {written:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="configured SMS rate (0: none); with it, report rate accuracy")
    parser.add_argument("--channel", choices=["sms", "voice"], default="sms")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="the fake's answer time (a real API takes ~100 ms)")
    parser.add_argument("--first-message", action="store_true",
                        help="with a worker already waiting: time from the start of the "
                             "action to the first message at the provider")
    parser.add_argument("--memory", action="store_true",
                        help="sample the workers' resident memory every second")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="run the first worker under cProfile (output in the log folder)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    url = f"sqlite:///{home / 'bench.sqlite3'}"
    action_id = prepare(url, args.messages, 1 if args.channel == "voice" else 2)
    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "fakes.twilio", "--port", str(port),
                             "--no-callbacks", "--latency-ms", str(args.latency_ms)],
                            stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    fake_url = f"http://127.0.0.1:{port}"
    try:
        time.sleep(1.5)
        with EmbeddedRedis(home / "redis") as redis_server:
            env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_server.url,
                   "BURGERNET_HOME": str(home), "SMS_PROVIDER": "twilio",
                   "VOICE_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                   "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM": "+31690000999",
                   "TWILIO_BASE_URL": fake_url,
                   "SMS_RATE": str(args.rate if args.channel == "sms" else 0),
                   "VOICE_RATE": str(args.rate if args.channel == "voice" else 0),
                   "LOG_LEVEL": "WARNING"}
            runtime = build_runtime(Settings.from_env(env))
            if args.first_message:
                print(first_message(runtime, action_id, env, fake_url))
                return
            started = time.perf_counter()
            first: list[float] = []

            def dispatch(batches: list) -> None:
                enqueue(runtime.redis, batches)
                first.append(first[0] if first else time.perf_counter() - started)

            outbox = start_action(runtime.writer, action_id, now=datetime.now(UTC),
                                  dispatch=dispatch)
            start_seconds = time.perf_counter() - started
            workers_started = time.perf_counter()
            profile = ["-m", "cProfile", "-o", str(home / "worker0.prof")]
            workers = [subprocess.Popen([sys.executable,
                                         *(profile if args.profile and n == 0 else []),
                                         "-m", "core.cli", "worker", "--burst"],
                                        env=env, stdout=subprocess.DEVNULL,
                                        stderr=open(home / f"worker{n}.log", "w"))
                       for n in range(args.workers)]
            watch = None
            if args.rate:
                watch = WindowWatch(runtime.redis,
                                    f"window:{runtime.sender_key(Channel(args.channel))}")
                watch.start()
            peaks = watch_memory(workers) if args.memory else []
            for worker in workers:
                worker.wait()
            if watch is not None:
                watch.stop.set()
                watch.join()
            ours_seconds = time.perf_counter() - workers_started
            if peaks:
                print("worker memory (RSS, MB) first / peak / last sample: " + "; ".join(
                    f"{p[0]:.0f} / {max(p):.0f} / {p[-1]:.0f}" for p in peaks))
            with runtime.sessions() as session:
                sent = session.scalar(select(func.count(Delivery.id)).where(
                    Delivery.status == DeliveryStatus.SENT)) or 0
            arrivals = [r["at"] for r in fetch_records(fake_url)]
            arrived = len(arrivals)
        if args.rate:
            print(f"{sent} sent by {args.workers} workers in {ours_seconds:.1f} s")
            print("  at the fake provider (arrival): " + rate_report(arrivals, args.rate))
            if watch is not None and watch.seen:
                print("  leaving our workers (Redis time of admission): "
                      + rate_report(list(watch.seen.values()), args.rate))
            return
        baseline = (0.0 if args.skip_baseline
                    else bare_rate(fake_url, outbox.deliveries, args.workers))
    finally:
        fake.terminate()
        fake.wait()
    ours = sent / ours_seconds
    print(f"logs in {home}")
    print(f"messages: {outbox.deliveries} SMS in {len(outbox.batches)} batches; "
          f"{args.workers} worker processes; 2 cores")
    print(f"outbox written and queued in {start_seconds:.2f} s; "
          f"first batches queued after {first[0] * 1000:.0f} ms")
    print(f"whole path: {sent} sent ({arrived} arrived at the fake) in {ours_seconds:.2f} s "
          f"= {ours:,.0f} msg/s")
    if baseline:
        print(f"bare aiohttp, same fake, same processes: {baseline:,.0f} msg/s")
        print(f"ratio: {ours / baseline:.2f} (goal >= 0.5); absolute goal >= 2,000 msg/s: "
              f"{'met' if ours >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()

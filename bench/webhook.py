"""Benchmark: the free number's routing webhook under concurrent calls, against a trivial
endpoint of the same app in the same run.

    .venv/bin/python bench/webhook.py [--concurrency 200] [--seconds 15] [--web-workers 2]

The app runs as `burgernet web` (gunicorn, as deployed) on a fresh database with the reference
data and 2,000 demo participants, its fixed prompts rendered beforehand (as `burgernet sounds
render` does at install). A separate load process keeps CONCURRENCY requests in flight:
first `GET /livez` (no database, no Redis: the app's own floor), then signed
`POST /webhooks/twilio/voice/inbound` as Twilio sends them, from a mix of callers (registered
participants, unknown and withheld numbers): each routes the caller, writes a CallRecord and
answers with TwiML. Prints throughput and latency percentiles of both, and the ratios.
Goal (issue 5): routing p99 under 25 ms at 200 concurrent requests.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from sqlalchemy import func, select  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from core.db import make_engine, session_factory  # noqa: E402
from core.models import CallRecord, Participant  # noqa: E402
from core.redis_server import free_port  # noqa: E402
from core.reference import load_reference  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.seed import seed_demo  # noqa: E402
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR  # noqa: E402
from ivr.prompts import load_catalogue  # noqa: E402
from ivr.tts import PromptRenderer  # noqa: E402

CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"
TOKEN = "bench-auth-token"
INBOUND = "/webhooks/twilio/voice/inbound"


def prepare(url: str, home: Path) -> list[str]:
    """Schema, reference data, participants and rendered prompts; returns caller numbers."""
    engine = make_engine(url)
    ensure_schema(engine)
    sessions = session_factory(engine, writer=True)
    with sessions() as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, CONFIG)
    seed_demo(sessions, size=2000)
    with sessions() as session:
        phones = list(session.scalars(select(Participant.phone).limit(1500)))
    engine.dispose()
    renderer = PromptRenderer(home / "var" / "sounds", use_gtts=False)
    renderer.render_fixed(load_catalogue())
    callers = phones + ["anonymous", "+32470123456", "+31690999999", "+4915112345678"] * 100
    return callers


def _load(base: str, path: str, callers: list[str] | None, concurrency: int, seconds: float,
          out: multiprocessing.Queue) -> None:
    import aiohttp

    validator = RequestValidator(TOKEN)

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as client:
            async def one(n: int) -> None:
                nonlocal errors
                rng = random.Random(n)
                count = 0
                while time.perf_counter() < deadline:
                    count += 1
                    begin = time.perf_counter()
                    try:
                        if callers is None:
                            async with client.get(base + path) as answer:
                                await answer.read()
                                ok = answer.status == 200
                        else:
                            form = {"CallSid": f"CA{n:08d}{count:024d}",
                                    "From": rng.choice(callers), "To": "+31800001100",
                                    "AccountSid": "AC" + "0" * 32}
                            signature = validator.compute_signature(base + path, form)
                            async with client.post(base + path, data=form, headers={
                                    "X-Twilio-Signature": signature}) as answer:
                                body = await answer.read()
                                ok = answer.status == 200 and b"<Gather" in body
                    except aiohttp.ClientError:
                        ok = False
                    latencies.append(time.perf_counter() - begin)
                    errors += not ok

            await asyncio.gather(*(one(n) for n in range(concurrency)))
        return latencies, errors

    latencies, errors = asyncio.run(run())
    out.put((latencies, errors))


def measure(base: str, path: str, callers: list[str] | None, concurrency: int,
            seconds: float) -> dict[str, float]:
    out: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_load, args=(base, path, callers, concurrency,
                                                          seconds, out))
    process.start()
    latencies, errors = out.get()
    process.join()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"requests": len(latencies), "errors": errors, "rate": len(latencies) / seconds,
            "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": latencies[-1] * 1000}


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the web app did not answer on {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    # BENCH_LOG=FILE keeps the web app's log (errors of failed requests) for a look afterwards.
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        home = Path(tmp)
        url = args.database_url or f"sqlite:///{home / 'bench.sqlite3'}"
        callers = prepare(url, home)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BURGERNET_HOME": tmp, "DATABASE_URL": url, "WEB_PORT": str(port),
               "WEB_WORKERS": str(args.web_workers), "PUBLIC_URL": base, "TTS": "espeak",
               "TWILIO_AUTH_TOKEN": TOKEN, "MELDKAMER_CONFIG": str(CONFIG),
               "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        log = open(os.environ.get("BENCH_LOG", os.devnull), "w")  # noqa: SIM115
        web = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for(base + "/livez")
            measure(base, "/livez", None, 20, 1.0)  # warm up the workers
            measure(base, INBOUND, callers, 20, 1.0)
            trivial = measure(base, "/livez", None, args.concurrency, args.seconds)
            routing = measure(base, INBOUND, callers, args.concurrency, args.seconds)
        finally:
            web.terminate()
            web.wait(timeout=30)
            log.close()
        engine = make_engine(url)
        with engine.connect() as connection:
            records = connection.scalar(select(func.count(CallRecord.id)))
        engine.dispose()

    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"routing webhook, {backend}, gunicorn {args.web_workers} workers x 4 threads, "
          f"{args.concurrency} concurrent, {args.seconds:g} s each")
    for name, result in (("trivial GET /livez", trivial), ("routing POST inbound", routing)):
        print(f"  {name:22s} {result['rate']:8.0f} req/s  p50 {result['p50']:7.1f} ms  "
              f"p90 {result['p90']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
              f"max {result['max']:7.1f} ms  errors {result['errors']}")
    print(f"  ratio routing/trivial: throughput {routing['rate'] / trivial['rate']:.2f}, "
          f"p99 {routing['p99'] / trivial['p99']:.2f}; call records written: {records}")


if __name__ == "__main__":
    main()

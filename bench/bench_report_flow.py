"""Report-flow benchmark: whole reports per second and the server's CPU per report, on Redis
sessions and PostgreSQL orders, at 1 and 4 worker processes.

    .venv/bin/python bench/bench_report_flow.py [--duration 15] [--users 48] [--workers 1,4]
                                                [--model-latency 0.5]

A report is what a field worker does: upload a photo (``multipart/form-data``, a 1600x1200
JPEG), get the model's answer (a local fake vision model that answers after a fixed latency),
send the location (a place of its own each time), confirm; the confirmation looks for a
duplicate (one indexed query) and, finding none, files the order, written to PostgreSQL. The server
is ``snapreport serve --workers N`` as shipped (sessions, deduplication and rate limits in
Redis, photos on the local disk, INFO logs to /dev/null); redis-server, PostgreSQL and the fake
model are started here (PostgreSQL and the model by the test harness) and stopped at the end.

The load comes from a separate process: ``--users`` simulated workers, each on its own
keep-alive connection, each starting its next report when the previous one is filed. Every
message has a fresh ``message_id``. Reports/s counts the reports filed inside the measured
window; the server's CPU per report is the user + system time of the server's processes (the
supervisor and its workers) over warm-up and window, divided by the reports filed in that time.
The results go to stdout and to ``docs/benchmarks-report-flow.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test harness starts PostgreSQL and the fake model

from _redis_bench_util import LocalRedis  # noqa: E402

DOC = ROOT / "docs" / "benchmarks-report-flow.md"
WARMUP_SECONDS = 3.0
LOCATION = "3号楼东侧楼梯间"


# -- the photo ------------------------------------------------------------------------------------


def photo() -> bytes:
    """A 1600x1200 JPEG with the texture of a photo (gradients and grain), about 0.3 MB."""
    from PIL import Image, ImageFilter

    size = (1600, 1200)
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.effect_noise(size, 40).filter(ImageFilter.GaussianBlur(1)),
        ),
    )
    buffer = io.BytesIO()
    base.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


# -- the load generator (runs in its own process) -------------------------------------------------


async def _reporter(
    url: str, index: int, image: bytes, stop_at: float, record_from: float
) -> tuple[list[list[float]], int, int]:
    """One field worker filing reports back to back: ([seconds of each step, of the report]
    for the reports in the window, reports filed in total, errors)."""
    import httpx

    user = f"bench-{index:03d}-{os.getpid()}"
    seconds: list[list[float]] = []
    filed = errors = 0
    n = 0

    def mid() -> str:
        nonlocal n
        n += 1
        return f"{user}-{time.time_ns()}-{n}"

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                first = await client.post(
                    "/api/v1/messages",
                    data={"user_id": user, "message_id": mid()},
                    files={"image": ("photo.jpg", image, "image/jpeg")},
                )
                photo_done = time.perf_counter()
                second = await client.post(
                    "/api/v1/messages",
                    # each report at a place of its own: reports of one type at one place
                    # would be offered as duplicates instead of being filed
                    json={"user_id": user, "message_id": mid(), "text": f"{LOCATION} {mid()}"},
                )
                location_done = time.perf_counter()
                third = await client.post(
                    "/api/v1/messages",
                    json={"user_id": user, "message_id": mid(), "text": "确认"},
                )
            except httpx.HTTPError:
                errors += 1
                continue
            states = [r.json().get("state") if r.status_code == 200 else r.status_code
                      for r in (first, second, third)]  # fmt: skip
            if states != ["waiting_location", "waiting_confirm", "idle"] or not third.json().get(
                "order"
            ):
                errors += 1
                continue
            done = time.perf_counter()
            filed += 1
            if started >= record_from and done <= stop_at:
                seconds.append(
                    [
                        photo_done - started,
                        location_done - photo_done,
                        done - location_done,
                        done - started,
                    ]
                )
    return seconds, filed, errors


async def _load(url: str, users: int, duration: float, image: bytes) -> dict[str, float]:
    cpu_started = time.process_time()
    now = time.perf_counter()
    record_from = now + WARMUP_SECONDS
    stop_at = record_from + duration
    results = await asyncio.gather(
        *(_reporter(url, i, image, stop_at, record_from) for i in range(users))
    )
    wall = time.perf_counter() - now
    steps = [x for s, _, _ in results for x in s]
    seconds = sorted(x[3] for x in steps)
    if len(seconds) < 2:
        raise SystemExit(f"only {len(seconds)} reports were filed in the window")
    quantiles = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "reports": len(seconds),
        "filed": sum(f for _, f, _ in results),
        "errors": sum(e for _, _, e in results),
        "reports_per_s": len(seconds) / duration,
        "p50_s": quantiles[49],
        "p99_s": quantiles[98],
        "photo_s": statistics.median(x[0] for x in steps),
        "location_s": statistics.median(x[1] for x in steps),
        "confirm_s": statistics.median(x[2] for x in steps),
        "generator_cpu": (time.process_time() - cpu_started) / wall,
    }


# -- the server -----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every living descendant (Linux)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += _children(current)
    return total


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    workers: int, env: dict[str, str], directory: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    script = Path(sys.executable).with_name("snapreport")
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    ready = 0
    while ready < 2 * workers:  # likely answered by every worker by then
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the server did not get ready within 120 s")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                ready += response.status == 200
        except OSError:
            time.sleep(0.2)
    return process, url


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_average() -> float:
    """The machine's 1-minute load average (runnable tasks; 2.0 keeps 2 CPUs busy)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_point(url: str, pid: int, users: int, duration: float) -> dict[str, float]:
    load_before = load_average()
    cpu_before = tree_cpu_seconds(pid)
    out = subprocess.run(
        [sys.executable, __file__, "--load", url, "--users", str(users),
         "--duration", str(duration)],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    figures: dict[str, float] = json.loads(out.stdout)
    cpu = tree_cpu_seconds(pid) - cpu_before
    figures["server_cpu_ms_per_report"] = cpu / max(1, figures["filed"]) * 1000
    figures["server_cpu_share"] = cpu / (duration + WARMUP_SECONDS)  # in CPUs
    figures["load_average"] = max(load_before, load_average())
    return figures


# -- the report -----------------------------------------------------------------------------------


def write_report(
    results: dict[int, dict[str, float]], args: argparse.Namespace, command: str, size: int
) -> str:
    lines = [
        "# Report-flow benchmark",
        "",
        "Whole reports through `POST /api/v1/messages`: a photo upload (`multipart/form-data`, "
        f"a 1600x1200 JPEG of {size / 1e6:.2f} MB), the model's answer from a local fake "
        f"vision model that answers after a fixed {args.model_latency:g} s, the location as "
        "text, the confirmation; the last answer carries the order. The server is `snapreport "
        "serve --workers N` as shipped: sessions, deduplication and rate limits in Redis, "
        "orders in PostgreSQL, photos on the local disk, INFO logs. redis-server, PostgreSQL "
        "and the fake model run on the same machine (PostgreSQL and the model started by the "
        "test harness).",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; shared with "
        "other work (figures move with its load)",
        f"- load: {args.users} simulated field workers, each on its own keep-alive connection "
        "(httpx, in a separate process), each filing its next report when the previous one "
        f"is filed; {WARMUP_SECONDS:g} s of warm-up, then {args.duration:g} s measured",
        "",
        "| workers | reports/s | p50 s/report | p99 s/report | photo s | location s "
        "| confirm s | server CPU ms/report | server CPU used (CPUs) | generator CPU "
        "| machine load | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, f in sorted(results.items()):
        lines.append(
            f"| {workers} | {f['reports_per_s']:.1f} | {f['p50_s']:.2f} | {f['p99_s']:.2f} "
            f"| {f['photo_s']:.2f} | {f['location_s']:.2f} | {f['confirm_s']:.2f} "
            f"| {f['server_cpu_ms_per_report']:.1f} | {f['server_cpu_share']:.2f} "
            f"| {f['generator_cpu']:.0%} | {f['load_average']:.1f} | {int(f['errors'])} |"
        )
    ceiling = args.users / args.model_latency
    lines += [
        "",
        "A report is three requests; the model's latency is inside the first. With "
        f"{args.users} users and a {args.model_latency:g} s model the latency alone would "
        f"allow at most {ceiling:.0f} reports/s: below that, the CPU is the limit. The server "
        "CPU per report is the steadier figure (the throughput moves with what else the "
        "machine runs): it includes reading, checking and re-encoding the photo (the model "
        "gets a bounded JPEG), storing it, the model call's HTTP client, three session turns "
        "on Redis with their deduplication and rate-limit calls, and the order's insert and "
        "event in PostgreSQL. More workers can only use the machine's CPUs: on 2 cores, shared "
        "with redis-server, PostgreSQL, the fake model and the load generator, 4 workers add "
        "little over 1; on a machine of its own each worker adds up to one core.",
        "",
        "The step columns are medians of each request's time (the photo step includes the "
        "model's latency). The confirmation is the step that queues: every order takes the "
        "next number of its day from one counter row, which the creating transaction holds "
        "locked until it commits (numbers are gapless, see orders.md), so concurrent "
        "confirmations file one after another, each for as long as its transaction takes; "
        "on a loaded machine that wait, not the server's CPU, bounds the reports per second "
        "(compare the CPU the server used with the CPUs it had).",
        "",
        "The machine-load column is the 1-minute load average (runnable tasks) at the start or "
        "the end of the point, whichever was higher: above 2 the 2 CPUs were oversubscribed by "
        "other work and every figure but the CPU per report is lower than on a machine of its "
        "own.",
        "",
        "No target was set for this flow; the figures are the baseline the next features are "
        "measured against.",
        "",
    ]
    text = "\n".join(lines)
    DOC.write_text(text, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per point")
    parser.add_argument("--users", type=int, default=48, help="simulated field workers")
    parser.add_argument("--workers", default="1,4", help="worker processes, comma-separated")
    parser.add_argument("--model-latency", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        import uvloop

        figures = uvloop.run(_load(args.load, args.users, args.duration, photo()))
        sys.stdout.write(json.dumps(figures))
        return

    from tests.harness.fake_vlm import FakeVLM
    from tests.harness.postgres_server import start_postgres

    command = " ".join([".venv/bin/python bench/bench_report_flow.py", *sys.argv[1:]])
    results: dict[int, dict[str, float]] = {}
    postgres = start_postgres()
    try:
        with (
            LocalRedis() as redis_url,
            FakeVLM() as model,
            tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp,
        ):
            model.delay = args.model_latency
            for workers in [int(w) for w in args.workers.split(",")]:
                directory = Path(tmp) / f"w{workers}"
                directory.mkdir()
                env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPREPORT_")}
                env.update(
                    {
                        "SNAPREPORT_SESSION__BACKEND": "redis",
                        "SNAPREPORT_SESSION__URL": redis_url,
                        "SNAPREPORT_SESSION__KEY_PREFIX": f"bench{workers}",
                        "SNAPREPORT_ORDERS__URL": postgres.admin_url,
                        "SNAPREPORT_MEDIA__ROOT": str(directory / "media"),
                        "SNAPREPORT_DATA_DIR": str(directory),
                        "SNAPREPORT_VISION__BASE_URL": model.url,
                        "SNAPREPORT_VISION__API_KEY": model.api_key,
                        "SNAPREPORT_VISION__MODEL": model.model,
                        "SNAPREPORT_RATE_LIMIT_PER_MINUTE": str(10**6),
                        "SNAPREPORT_LOG_LEVEL": "INFO",
                    }
                )
                process, url = start_server(workers, env, directory)
                try:
                    results[workers] = run_point(url, process.pid, args.users, args.duration)
                finally:
                    stop_server(process)
                print(f"{workers} workers: {results[workers]}", flush=True)
    finally:
        postgres.destroy()
    print(write_report(results, args, command, len(photo())))


if __name__ == "__main__":
    main()

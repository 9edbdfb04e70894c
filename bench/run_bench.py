"""Benchmark: the service under load against the in-process limit of the same model, same run.

    make bench            (or: .venv/bin/python bench/run_bench.py [--quick])

1. In-process limit: the shipped model with the settings in config.ini, its ModelBatcher, and
   the service's own decode/preprocess code, reading the benchmark photos from disk in a
   tight loop, at concurrency 1 and 16.
2. The service as a user runs it (`python main.py`, SQLite, one process): register, upload 64
   photos, then `wrk` drives POST /images/inference at concurrency 1 and 16: once with
   CACHE_INPUTS off (every request decodes its photo, like the limit) and once as shipped
   (stored images keep their model-ready pixels, so only the first request decodes).
3. Memory: the server's RSS after warm-up and after 10,000 inferences.
4. The async path: 1000 tasks submitted, time until the last one is completed.

Results are printed as a table and written to bench/results/latest.json.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from app.config import load_settings  # noqa: E402
from app.inference.batcher import ModelBatcher  # noqa: E402
from app.inference.kept_inputs import KeptInputs  # noqa: E402
from app.models.model_interface import create_model  # noqa: E402
from app.services.storage import ImageStore  # noqa: E402
from bench.photos import make_photos  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODEL = "efficientnet_lite0"
PASSWORD = "benchmark-password"


def in_process_limit(photos: list[Path], *, single: int, seconds: float) -> dict[str, float]:
    """Same model, settings, batching and preprocessing code as the service, no HTTP, no DB."""
    settings = load_settings().model_settings(MODEL)
    model = create_model(MODEL, settings)
    model.load_model()
    model.warm_up()
    runner = ModelBatcher(model, settings)
    runner.start()
    # The service's own decoding and preprocessing, for photos in a store of their own.
    decode_always = KeptInputs(ImageStore(photos[0].parent), enabled=False)

    def classify_file(runner: ModelBatcher, path: Path, inputs: KeptInputs) -> None:
        output = runner.submit(inputs.sample(model, path.name)).result()
        model.postprocess(output)

    try:
        for path in photos[:16]:
            classify_file(runner, path, decode_always)
        latencies = []
        for i in range(single):
            started = time.perf_counter()
            classify_file(runner, photos[i % len(photos)], decode_always)
            latencies.append((time.perf_counter() - started) * 1000)

        counts = [0] * 16
        stop = time.perf_counter() + seconds

        def loop(worker: int) -> None:
            i = worker
            while time.perf_counter() < stop:
                classify_file(runner, photos[i % len(photos)], decode_always)
                counts[worker] += 1
                i += 16

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(loop, range(16)))
        elapsed = time.perf_counter() - started
    finally:
        runner.stop()
    return {
        "c1_p50_ms": statistics.median(latencies),
        "c1_img_s": 1000 / statistics.mean(latencies),
        "c16_img_s": sum(counts) / elapsed,
        "c16_mean_batch": runner.samples_run / max(runner.batches_run, 1),
    }


def wrk(
    server: LiveServer, env: dict[str, str], *, connections: int, seconds: int, limit: int = 0
) -> dict[str, Any]:
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "bench" / "inference.lua"),
            server.base_url,
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON "))
    stats: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    stats["img_s"] = stats["requests"] / stats["seconds"]
    return stats


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def async_throughput(
    server: LiveServer, headers: dict[str, str], token: str, ids: list[int], tasks: int
) -> float:
    """Seconds from the first submission to the last completion, over the WebSocket."""
    completed: set[str] = set()
    submitted: set[str] = set()
    finished = threading.Event()

    with connect(f"ws://127.0.0.1:{server.port}/ws/inference?token={token}") as socket:
        socket.recv(timeout=10)  # greeting

        def listen() -> None:
            while len(completed) < tasks:
                message = json.loads(socket.recv(timeout=120))
                if message.get("status") == "completed":
                    completed.add(message["task_id"])
            finished.set()

        listener = threading.Thread(target=listen)
        listener.start()
        started = time.perf_counter()
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:

            def submit(i: int) -> None:
                response = http.post(
                    "/images/inference/async", json={"image_id": ids[i % len(ids)]}
                )
                response.raise_for_status()
                submitted.add(response.json()["task_id"])

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(submit, range(tasks)))
        finished.wait(300)
        elapsed = time.perf_counter() - started
        listener.join(5)
    if not completed >= submitted:
        raise RuntimeError(f"only {len(completed & submitted)} of {tasks} tasks completed")
    return tasks / elapsed


def start_service(
    scratch: Path, photos: list[Path], *, cache: bool
) -> tuple[LiveServer, dict[str, str]]:
    """A server as `make run` starts it, with one user who uploaded every photo."""
    settings = {"IMGAPI_INFERENCE__CACHE_INPUTS": str(cache).lower()}
    server = LiveServer(
        database_url=f"sqlite:///{scratch}/bench.db", root=scratch, settings=settings
    )
    server.start()
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        account = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
        http.post("/users/", json=account)
        login = http.post("/users/token", data={"username": "bench", "password": PASSWORD})
        token = login.json()["access_token"]
        ids = []
        for path in photos:
            with path.open("rb") as handle:
                uploaded = http.post(
                    "/images/upload",
                    headers={"Authorization": f"Bearer {token}"},
                    files={"file": (path.name, handle)},
                )
            uploaded.raise_for_status()
            ids.append(uploaded.json()["id"])
    return server, {"BENCH_TOKEN": token, "BENCH_IDS": ",".join(map(str, ids))}


def run(quick: bool) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    photos = make_photos(RESULTS / "photos", 64)
    seconds = 5 if quick else 20
    print(f"in-process limit ({seconds} s at concurrency 16) ...", flush=True)
    limit = in_process_limit(photos, single=50 if quick else 200, seconds=seconds)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "photos": {
            "count": len(photos),
            "mean_kb": sum(p.stat().st_size for p in photos) / len(photos) / 1024,
        },
        "limit": limit,
    }

    print("service without kept inputs (every request decodes its photo) ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        server, env = start_service(Path(scratch), photos, cache=False)
        try:
            wrk(server, env, connections=16, seconds=5)
            report["uncached"] = {
                "c1": wrk(server, env, connections=1, seconds=seconds),
                "c16": wrk(server, env, connections=16, seconds=seconds + 10),
            }
        finally:
            server.stop()

    print("service as shipped (kept inputs) ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        server, env = start_service(Path(scratch), photos, cache=True)
        try:
            assert server.process is not None
            pid = server.process.pid
            warm = wrk(server, env, connections=16, seconds=5 if quick else 10)
            report["rss_after_warmup_mb"] = rss_mb(pid)
            c1 = wrk(server, env, connections=1, seconds=seconds)
            c16 = wrk(server, env, connections=16, seconds=seconds + 10)
            done = warm["requests"] + c1["requests"] + c16["requests"]
            target = 2_000 if quick else 10_000
            sustained = None
            if done < target:
                # wrk runs for a duration, so size it from the rate just measured.
                needed = math.ceil((target - done) / c16["img_s"] * 1.1) + 1
                print(f"sustained run to {target} inferences ({needed} s) ...", flush=True)
                sustained = wrk(server, env, connections=16, seconds=needed)
                done += sustained["requests"]
            report["rss_after_mb"] = rss_mb(pid)
            report["inferences_served"] = done
            report["cached"] = {"c1": c1, "c16": c16, "sustained": sustained}
            runs = [warm, c1, c16, sustained, *report["uncached"].values()]
            report["failed_requests"] = sum(r["failures"] + r["socket_errors"] for r in runs if r)

            tasks = 200 if quick else 1000
            print(f"async: {tasks} tasks ...", flush=True)
            report["async_tasks"] = tasks
            token, ids = env["BENCH_TOKEN"], [int(i) for i in env["BENCH_IDS"].split(",")]
            headers = {"Authorization": f"Bearer {token}"}
            report["async_tasks_s"] = async_throughput(server, headers, token, ids, tasks)
        finally:
            server.stop()
    for mode in ("uncached", "cached"):
        report[f"{mode}_ratio_c16"] = report[mode]["c16"]["img_s"] / limit["c16_img_s"]
        report[f"{mode}_c1_p50_over_limit_ms"] = report[mode]["c1"]["p50_ms"] - limit["c1_p50_ms"]
    report["rss_growth"] = report["rss_after_mb"] / report["rss_after_warmup_mb"] - 1
    return report


def print_report(report: dict[str, Any]) -> None:
    limit = report["limit"]
    rows = [
        ("in-process limit, concurrency 1", limit["c1_img_s"], f"p50 {limit['c1_p50_ms']:.1f} ms"),
        (
            "in-process limit, concurrency 16",
            limit["c16_img_s"],
            f"mean batch {limit['c16_mean_batch']:.1f}",
        ),
    ]
    for mode, name in (
        ("uncached", "service, decoding every time"),
        ("cached", "service as shipped"),
    ):
        for level in ("c1", "c16"):
            run = report[mode][level]
            latency = (
                f"p50 {run['p50_ms']:.1f} / p95 {run['p95_ms']:.1f} / p99 {run['p99_ms']:.1f} ms"
            )
            rows.append((f"{name}, concurrency {level[1:]}", run["img_s"], latency))
    print()
    for name, rate, detail in rows:
        print(f"{name:44s} {rate:7.1f} img/s   {detail}")
    tasks = f"async tasks ({report['async_tasks']} submitted)"
    print(f"{tasks:44s} {report['async_tasks_s']:7.1f} tasks/s")
    print()
    for mode in ("uncached", "cached"):
        ratio, over = report[f"{mode}_ratio_c16"], report[f"{mode}_c1_p50_over_limit_ms"]
        print(
            f"{mode:8s} service/limit at concurrency 16: {ratio:.2f} (target >= 0.85); "
            f"p50 at concurrency 1 minus the limit's: {over:+.1f} ms (target <= 3)"
        )
    print(
        f"RSS after warm-up {report['rss_after_warmup_mb']:.0f} MB, "
        f"after {report['inferences_served']} inferences {report['rss_after_mb']:.0f} MB: "
        f"{report['rss_growth']:+.1%} (target within 5 %)"
    )
    print(f"failed requests: {report['failed_requests']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs, to check the benchmark itself"
    )
    args = parser.parse_args()
    report = run(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print_report(report)


if __name__ == "__main__":
    main()

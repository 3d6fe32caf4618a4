"""The live dashboard against a real ``fitness-weights serve`` and a real training job: four Markdown tables.

1. **Latency.** Each metrics row's arrival at a page's WebSocket (``/ws/jobs/{id}``) minus the time the job's
   logger dumped it (the row's ``recorded``), with 1 and 2 workers (with 2, one socket on each); and, in headless
   Chromium, the time until the real page's charts show it (the page redraws at most once a second). p50, p95
   and max. Target: p95 <= 2 s.
2. **Live changes.** ``--changes`` changes of ``ent_coef`` (``POST /train/{id}/params``), each requested at a
   random moment (a uniform delay after the previous one took effect): its delay in seconds (``applied`` minus
   ``requested``), in rollouts (``(timestep - last dumped step before the request) / rollout size``: 1 is the
   next rollout boundary), against the time between two dumps. Target: every change at the next boundary.
3. **FPS cost.** Alternating windows of ``--window`` seconds without and with a page open (each ``--settle``
   seconds after opening or closing it), ``--pairs`` pairs, interleaved (without-with, then with-without): the
   job's steps per second in each window (from its dumps' steps and times), and the ratio with over without
   (median of the pairs). Two pages: the page's WebSocket alone (what following a job costs the server), and the
   real page in headless Chromium (``/ui`` following the job: charts, heatmaps, job list) on the same machine,
   when ``chromium`` and ``chromedriver`` are installed. Target: ratio >= 0.95.
4. **20 pages on one worker.** ``--pages`` sockets follow the job for ``--hold`` seconds: each must get every row
   the job database holds, no ``error`` message and no close.

The job is an ``AttnCQQXPolicy`` on ``FitnessWeights-v0`` with 16 envs (a 1,024-step rollout, several dumps a
second: a busier stream than the README's 64 envs make), cancelled at the end::

    python benchmarks/bench_dashboard.py
    python benchmarks/bench_dashboard.py --pairs 3 --window 8 --no-browser     # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import report_log_errors, run_in_home, serve

TRAIN = {"timesteps": 2_000_000, "n_envs": 16, "eval_trainees": 2}  # bench_api's server allows 2,000,000
ROLLOUT = 16 * 64
LATENCY_TARGET_S = 2.0
FPS_RATIO_TARGET = 0.95


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Page(threading.Thread):
    """What a page does with the job's WebSocket: follow it, noting each new metrics row's latency."""

    def __init__(self, url: str, job_id: str, token: str) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.closing = contextlib.ExitStack()
        self.socket = self.closing.enter_context(
            connect(
                f"{url.replace('http', 'ws', 1)}/ws/jobs/{job_id}",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=30,
                max_size=16 << 20,
            )
        )
        self.worker = self.socket.response.headers["x-worker-id"]
        self.opened = time.time()
        self.latencies: list[float] = []
        self.seqs: list[int] = []
        self.errors: list[Any] = []
        self.closed: str | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        while not self.stopping.is_set():
            try:
                message = json.loads(self.socket.recv(timeout=0.5))
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                if not self.stopping.is_set():
                    self.closed = f"{closed.rcvd.code if closed.rcvd else '?'}"
                return
            arrived = time.time()
            if message["type"] == "error":
                self.errors.append(message)
            elif message["type"] == "metrics":
                for row in message["rows"]:
                    self.seqs.append(row["seq"])
                    recorded = seconds(row["recorded"])
                    if recorded > self.opened:  # not the history a late page gets first
                        self.latencies.append(arrived - recorded)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.closing.close()


def pages_on_workers(url: str, job_id: str, token: str, workers: int) -> list[Page]:
    """One page on each of ``workers`` workers (a new connection goes to whichever worker the kernel picks)."""
    pages: dict[str, Page] = {}
    for _ in range(200):
        page = Page(url, job_id, token)
        if page.worker in pages:
            page.closing.close()
        else:
            pages[page.worker] = page
            page.start()
        if len(pages) == workers:
            return list(pages.values())
    raise RuntimeError(f"only {len(pages)} of {workers} workers took a socket")


def rows(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = []
    while True:
        batch = client.get(f"/train/{job_id}/metrics", params={"after": answer[-1]["seq"] if answer else 0})
        batch.raise_for_status()
        if not batch.json():
            return answer
        answer += batch.json()


def start_job(client: httpx.Client) -> str:
    job_id = str(client.post("/train", json=TRAIN).raise_for_status().json()["job_id"])
    deadline = time.monotonic() + 180
    while len(rows(client, job_id)) < 3:
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not dump 3 rows within 180 s")
        time.sleep(0.5)
    return job_id


def steps_per_second(client: httpx.Client, job_id: str, start: float, end: float) -> float:
    inside = [
        (seconds(r["recorded"]), r["step"]) for r in rows(client, job_id) if start <= seconds(r["recorded"]) <= end
    ]
    if len(inside) < 2:
        raise RuntimeError(f"the job dumped {len(inside)} rows in a {end - start:.0f} s window: make --window longer")
    (t0, s0), (t1, s1) = inside[0], inside[-1]
    return (s1 - s0) / (t1 - t0)


# -- the four parts ---------------------------------------------------------------------------------------------


def summary(values: list[float], errors: int) -> dict[str, Any]:
    array = np.array(values)
    return {
        "rows": len(array),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "max": float(array.max()),
        "errors": errors,
    }


def socket_latency(url: str, token: str, job_id: str, workers: int, duration: float) -> dict[str, Any]:
    """Latency to the pages' sockets, one on each worker."""
    pages = pages_on_workers(url, job_id, token, workers)
    time.sleep(duration)
    for page in pages:
        page.stop()
    errors = sum(len(page.errors) for page in pages) + sum(page.closed is not None for page in pages)
    return {"workers": workers, "page": "WebSocket", **summary([v for p in pages for v in p.latencies], errors)}


def open_job_page(driver: Any, url: str, token: str, job_id: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/ui")
    field = driver.find_element(By.ID, "token")
    field.clear()  # the tab may keep the token from before (sessionStorage)
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    deadline = time.monotonic() + 30
    while driver.find_element(By.ID, "job-id").text != job_id[:8]:
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not open the job")
        for row in driver.find_elements(By.CSS_SELECTOR, f"#jobs tr[data-job-id='{job_id}']"):
            with contextlib.suppress(StaleElementReferenceException):  # the list is redrawn every 2 s
                row.click()
        time.sleep(0.2)


def page_latency(url: str, token: str, job_id: str, client: httpx.Client, workers: int, duration: float) -> dict:
    """Latency to the charts of the real page: each row's dump to the redraw that first shows it.

    The page marks the last row it drew (``#charts[data-seq]``); it is read every 50 ms, so a latency is late by
    up to 50 ms.
    """
    driver = browser()
    drawn: list[tuple[float, int]] = []
    try:
        open_job_page(driver, url, token, job_id)
        start = time.time()
        while time.time() < start + duration:
            seq = driver.execute_script("return document.getElementById('charts').dataset.seq || null")
            if seq is not None and (not drawn or int(seq) != drawn[-1][1]):
                drawn.append((time.time(), int(seq)))
            time.sleep(0.05)
    finally:
        driver.quit()
    recorded = {r["seq"]: seconds(r["recorded"]) for r in rows(client, job_id)}
    values, previous = [], drawn[0][1]  # the first redraw shows the history: not counted
    for seen, seq in drawn[1:]:
        values += [seen - recorded[s] for s in sorted(recorded) if previous < s <= seq]
        previous = seq
    return {"workers": workers, "page": "Chromium, /ui", **summary(values, 0)}


def changes(client: httpx.Client, job_id: str, n: int, seed: int) -> list[dict[str, float]]:
    draw = random.Random(seed)
    dumped = rows(client, job_id)
    gap = float(np.median(np.diff([seconds(r["recorded"]) for r in dumped[-10:]])))
    results = []
    for i in range(n):
        time.sleep(draw.uniform(0.0, 1.5 * gap))
        change = {"name": "ent_coef", "value": round(0.001 * (i + 1), 4)}
        seq = client.post(f"/train/{job_id}/params", json=change).raise_for_status().json()["seq"]
        while True:
            (done,) = [c for c in client.get(f"/train/{job_id}/params").json() if c["seq"] == seq]
            if done["applied"]:
                break
            time.sleep(0.05)
        requested, applied = seconds(done["requested"]), seconds(done["applied"])
        before = [r["step"] for r in rows(client, job_id) if seconds(r["recorded"]) < requested]
        results.append(
            {"seconds": applied - requested, "rollouts": (done["timestep"] - before[-1]) / ROLLOUT, "gap": gap}
        )
    return results


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)


def fps_cost(url: str, token: str, job_id: str, client: httpx.Client, kind: str, args: argparse.Namespace) -> list:
    """``(without, with)`` steps per second for each pair of windows, the page being ``kind``.

    Chromium runs in both windows of its pairs: without, it shows an empty tab (``about:blank``). Each window
    starts ``--settle`` seconds after the page was opened or closed: what is measured is a page that stays open,
    not its load.
    """
    driver = browser() if kind == "browser" else None
    pairs = []
    try:
        for pair in range(args.pairs):
            window = {}
            for page_open in (False, True) if pair % 2 == 0 else (True, False):  # ABBA: a drift cancels out
                page = None
                if page_open and driver is not None:
                    open_job_page(driver, url, token, job_id)
                elif page_open:
                    page = Page(url, job_id, token)
                    page.start()
                time.sleep(args.settle)  # past the page's load and first drawing (or its closing)
                start = time.time()
                time.sleep(args.window)
                window[page_open] = steps_per_second(client, job_id, start, time.time())
                if page is not None:
                    page.stop()
                elif driver is not None:
                    driver.get("about:blank")
            pairs.append((window[False], window[True]))
    finally:
        if driver is not None:
            driver.quit()
    return pairs


def many_pages(url: str, token: str, job_id: str, client: httpx.Client, n: int, hold: float) -> dict[str, Any]:
    pages = [Page(url, job_id, token) for _ in range(n)]
    for page in pages:
        page.start()
    time.sleep(hold)
    held = {row["seq"] for row in rows(client, job_id)}
    time.sleep(2.0)  # the last rows' way to the pages
    for page in pages:
        page.stop()
    return {
        "pages": n,
        "complete": sum(held <= set(page.seqs) for page in pages),
        "errors": sum(len(page.errors) for page in pages),
        "closed": sum(page.closed is not None for page in pages),
        "p95": float(np.percentile([v for page in pages for v in page.latencies], 95)),
        "rows": len(held),
    }


# -- the run ----------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, home: Path) -> None:
    from fitness_weights_api.settings import ServiceSettings

    _, token = ServiceSettings(home=home).open_tokens().create("admin", "bench_dashboard")
    headers = {"Authorization": f"Bearer {token}"}
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"Job: AttnCQQXPolicy, FitnessWeights-v0, n_envs 16 (rollout {ROLLOUT} steps), cpu preset\n")
    measured: dict[str, Any] = {"latency": []}
    use_browser = args.browser and shutil.which("chromium") is not None and shutil.which("chromedriver") is not None
    for workers in args.workers:
        with serve(home, workers) as server, httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            try:
                job_id = start_job(client)
                measured["latency"].append(socket_latency(server.url, token, job_id, workers, args.latency_s))
                if use_browser:
                    measured["latency"].append(page_latency(server.url, token, job_id, client, workers, args.latency_s))
                if workers == 1:
                    measured["changes"] = changes(client, job_id, args.changes, args.seed)
                    measured["many"] = many_pages(server.url, token, job_id, client, args.pages, args.hold)
                    kinds = ["socket"] + (["browser"] if use_browser else [])
                    measured["fps"] = {kind: fps_cost(server.url, token, job_id, client, kind, args) for kind in kinds}
                client.delete(f"/train/{job_id}")
            finally:
                report_log_errors(server)
    report(measured)


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(measured: dict[str, Any]) -> None:
    print(f"1. Metric latency, dump to page (target p95 <= {LATENCY_TARGET_S:.0f} s)\n")
    print("| workers | page | rows seen | p50 s | p95 s | max s | errors | target |")
    print("|---|---|---|---|---|---|---|---|")
    for r in measured["latency"]:
        ok = r["p95"] <= LATENCY_TARGET_S and not r["errors"]
        print(
            f"| {r['workers']} | {r['page']} | {r['rows']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} "
            f"| {r['errors']} | {met(ok)} |"
        )
    if "changes" in measured:
        c = measured["changes"]
        delays, waited = np.array([x["seconds"] for x in c]), np.array([x["rollouts"] for x in c])
        print(f"\n2. Live changes ({len(c)} at random moments; one dump every {c[0]['gap']:.2f} s)\n")
        print("| delay s: median | p95 | max | rollouts to the change: 1 (next boundary) | more | target |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {np.median(delays):.2f} | {np.percentile(delays, 95):.2f} | {delays.max():.2f} "
            f"| {int((waited == 1).sum())} | {int((waited > 1).sum())} | {met(bool((waited == 1).all()))} |"
        )
    if "fps" in measured:
        print(
            "\n3. Training FPS with a page open over without (pairs of windows, interleaved; "
            f"target >= {FPS_RATIO_TARGET})\n"
        )
        print("| page | pairs | steps/s without (median) | with (median) | ratio (median of pairs) | min | target |")
        print("|---|---|---|---|---|---|---|")
        for kind, pairs in measured["fps"].items():
            off, on = np.array(pairs).T
            ratios = on / off
            print(
                f"| {'WebSocket' if kind == 'socket' else 'Chromium, /ui'} | {len(pairs)} | {np.median(off):.0f} "
                f"| {np.median(on):.0f} | {np.median(ratios):.3f} | {ratios.min():.3f} "
                f"| {met(np.median(ratios) >= FPS_RATIO_TARGET)} |"
            )
    if "many" in measured:
        m = measured["many"]
        print(f"\n4. {m['pages']} pages on one worker\n")
        print("| pages | with every row | errors | closed | latency p95 s | rows | target |")
        print("|---|---|---|---|---|---|---|")
        ok = m["complete"] == m["pages"] and not m["errors"] and not m["closed"]
        print(
            f"| {m['pages']} | {m['complete']} | {m['errors']} | {m['closed']} | {m['p95']:.2f} | {m['rows']} "
            f"| {met(ok)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server worker counts")
    parser.add_argument("--latency-s", type=float, default=40.0, help="seconds of latency measurement")
    parser.add_argument("--changes", type=int, default=20, help="live changes requested")
    parser.add_argument("--pairs", type=int, default=12, help="pairs of FPS windows per page kind")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per FPS window")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each FPS window")
    parser.add_argument("--pages", type=int, default=20, help="pages on one worker")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the pages stay connected")
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="no Chromium FPS row")
    parser.add_argument("--home", type=Path, default=None, help="service folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the changes' moments")
    args = parser.parse_args()
    run_in_home(args.home, "bench-dashboard-", lambda home: run(args, home))


if __name__ == "__main__":
    main()

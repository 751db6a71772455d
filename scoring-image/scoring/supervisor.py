"""Several worker processes on one port (SO_REUSEPORT: the kernel spreads connections evenly).

The supervisor only starts, watches and stops workers: SIGTERM/SIGINT are forwarded and each worker
drains its own connections. A worker that dies is restarted (with a pause if it keeps dying). With
several workers, Prometheus metrics use prometheus-client's multiprocess mode so that any worker's
``/metrics`` reports the sum over all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .config import Settings

__all__ = ["supervise"]

log = logging.getLogger("scoring.supervisor")


def supervise(model_dir: str, settings: Settings) -> int:
    if settings.port == 0:
        log.error("--workers > 1 needs a fixed --port (workers share it with SO_REUSEPORT)")
        return 2
    env = dict(os.environ)
    own_metrics_dir = not env.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="scoring-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    env["SCORING_HOST"] = settings.host
    env["SCORING_PORT"] = str(settings.port)
    env["SCORING_WORKERS"] = str(settings.workers)  # each worker's share of the CPUs (SCORING_COMPILED_THREADS=auto)
    if settings.compiled_dir:
        env["SCORING_COMPILED_DIR"] = settings.compiled_dir
    cmd = [sys.executable, "-m", "scoring", "_worker", model_dir]
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, env=env)

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    procs = [start() for _ in range(settings.workers)]
    log.info("started %d workers: %s", len(procs), ", ".join(str(p.pid) for p in procs))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failures = 0
    exit_code = 0
    try:
        while not stopping:
            for i, proc in enumerate(procs):
                code = proc.poll()
                if code is None or stopping:
                    continue
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(proc.pid, metrics_dir)
                if code == 3:
                    log.error("worker %d could not load the model; stopping", proc.pid)
                    on_signal(signal.SIGTERM, None)
                    exit_code = 3
                    break
                failures += 1
                log.error("worker %d exited with %s; restarting", proc.pid, code)
                time.sleep(min(5.0, 0.2 * failures))
                procs[i] = start()
            time.sleep(0.2)
        deadline = time.monotonic() + settings.shutdown_delay_s + settings.shutdown_timeout_s + 5.0
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return exit_code or max(codes, default=0)
    finally:
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)

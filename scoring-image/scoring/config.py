"""Server settings, read from ``SCORING_*`` environment variables (see docs/scoring.md)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["Settings", "SettingsError", "usable_cpus"]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...], *, allow_empty: bool = False) -> str:
    value = os.environ.get(name) or default
    if value not in choices and not (allow_empty and value == ""):
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (a pod's CPU limit)."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_quota() -> float | None:
    """The cgroup's CPU limit in CPUs (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
            period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class Settings:
    """Every knob of the server. ``from_env()`` reads them; the CLI may override host/port/workers."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # Micro-batching: rows merged into one predict call, and how long a batch may wait for recently active clients.
    max_batch_rows: int = 1024
    max_batch_wait_ms: float = 2.0
    # SCORING_MAX_BATCH_WAIT_MS unset or "auto": wait only when a one-row predict call (timed at warm-up) costs more
    # than the wait, i.e. when merging saves a call's fixed cost (a compiled model's cost is per row: it never
    # waits); a number: always.
    batch_wait_auto: bool = True
    # Which models get concurrent requests merged into one predict call: "sklearn" (row-wise estimators),
    # "row-aligned" (any model whose warm-up output has one row per input row), or "off".
    batching: str = "sklearn"
    # Requests larger than this get a 413.
    max_body_bytes: int = 10 * 1024 * 1024
    # "mlflow": answer every request as `mlflow models serve` does (its type coercions included);
    # "strict": 422 naming the column and the type for data that does not match the signature.
    validation: str = "mlflow"
    # "reject" answers 422 for columns the signature does not name; "ignore" drops them (MLflow's behaviour).
    # Empty: "reject" in strict mode, "ignore" otherwise.
    unknown_columns: str = ""
    # MLflow's own setting: a request still scoring after this many seconds gets a 504.
    request_timeout_s: float = 60.0
    # Connections: idle keep-alive, time to send the headers / the body, and how many at once.
    keepalive_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1024
    # SIGTERM: keep serving (readiness 503) for shutdown_delay_s, then wait up to shutdown_timeout_s for in-flight work.
    shutdown_delay_s: float = 0.0
    shutdown_timeout_s: float = 30.0
    # Telemetry: one JSON line per scoring request to stdout ("-") or a file path.
    telemetry_path: str = "-"
    telemetry_sample_rate: float = 0.01
    telemetry_max_rows: int = 10
    # Identity, reported by /version and in every telemetry line.
    deployment: str = ""
    model_name: str = ""
    model_version: str = ""
    revision: str = ""
    image_digest: str = ""
    log_level: str = "INFO"
    # "auto": serve the compiled model the image build verified (compiled_dir/decision.json), if any;
    # "original": always the model's own runtime (scikit-learn).
    runtime: str = "auto"
    compiled_dir: str = ""
    # ONNX Runtime / Treelite threads per worker for one compiled predict call. 0 ("auto"): the CPUs this process may
    # use (affinity, cgroup quota) divided among the workers, at least 1 (bench/scoring/README.md has the measurements).
    compiled_threads: int = 0
    # Health probes on their own port, answered by a thread outside the event loop (0 = off).
    health_port: int = 0
    # /health/live fails once the event loop has not run for this long (a wedged worker gets restarted).
    liveness_stall_s: float = 300.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            host=_env_str("SCORING_HOST", cls.host),
            port=_env_int("SCORING_PORT", cls.port),
            workers=_env_int("SCORING_WORKERS", cls.workers, minimum=1),
            max_batch_rows=_env_int("SCORING_MAX_BATCH_ROWS", cls.max_batch_rows, minimum=1),
            max_batch_wait_ms=_env_float("SCORING_MAX_BATCH_WAIT_MS", cls.max_batch_wait_ms, maximum=1000.0)
            if os.environ.get("SCORING_MAX_BATCH_WAIT_MS", "auto") not in ("", "auto")
            else cls.max_batch_wait_ms,
            batch_wait_auto=os.environ.get("SCORING_MAX_BATCH_WAIT_MS", "auto") in ("", "auto"),
            batching=_env_choice("SCORING_BATCHING", cls.batching, ("sklearn", "row-aligned", "off")),
            max_body_bytes=_env_int("SCORING_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
            validation=_env_choice("SCORING_VALIDATION", cls.validation, ("mlflow", "strict")),
            unknown_columns=_env_choice("SCORING_UNKNOWN_COLUMNS", "", ("reject", "ignore"), allow_empty=True),
            request_timeout_s=_env_float("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", cls.request_timeout_s, minimum=0.001),
            keepalive_timeout_s=_env_float("SCORING_KEEPALIVE_TIMEOUT_S", cls.keepalive_timeout_s, minimum=0.1),
            header_timeout_s=_env_float("SCORING_HEADER_TIMEOUT_S", cls.header_timeout_s, minimum=0.1),
            body_timeout_s=_env_float("SCORING_BODY_TIMEOUT_S", cls.body_timeout_s, minimum=0.1),
            max_connections=_env_int("SCORING_MAX_CONNECTIONS", cls.max_connections, minimum=1),
            shutdown_delay_s=_env_float("SCORING_SHUTDOWN_DELAY_S", cls.shutdown_delay_s),
            shutdown_timeout_s=_env_float("SCORING_SHUTDOWN_TIMEOUT_S", cls.shutdown_timeout_s),
            telemetry_path=_env_str("SCORING_TELEMETRY_PATH", cls.telemetry_path) or "-",
            telemetry_sample_rate=_env_float("SCORING_TELEMETRY_SAMPLE_RATE", cls.telemetry_sample_rate, maximum=1.0),
            telemetry_max_rows=_env_int("SCORING_TELEMETRY_MAX_ROWS", cls.telemetry_max_rows),
            deployment=_env_str("SCORING_DEPLOYMENT", ""),
            model_name=_env_str("SCORING_MODEL_NAME", ""),
            model_version=_env_str("SCORING_MODEL_VERSION", ""),
            revision=_env_str("SCORING_REVISION", ""),
            image_digest=_env_str("SCORING_IMAGE_DIGEST", ""),
            log_level=_env_choice("SCORING_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            runtime=_env_choice("SCORING_RUNTIME", cls.runtime, ("auto", "original")),
            compiled_dir=_env_str("SCORING_COMPILED_DIR", ""),
            compiled_threads=0
            if os.environ.get("SCORING_COMPILED_THREADS", "auto") in ("", "auto")
            else _env_int("SCORING_COMPILED_THREADS", cls.compiled_threads, minimum=1),
            health_port=_env_int("SCORING_HEALTH_PORT", cls.health_port),
            liveness_stall_s=_env_float("SCORING_LIVENESS_STALL_S", cls.liveness_stall_s, minimum=1.0),
        )

    @property
    def effective_compiled_threads(self) -> int:
        return self.compiled_threads or max(1, usable_cpus() // self.workers)

    @property
    def effective_unknown_columns(self) -> str:
        return self.unknown_columns or ("reject" if self.validation == "strict" else "ignore")

    def replace(self, **changes: object) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in changes.items() if v is not None})
        return Settings(**values)  # type: ignore[arg-type]

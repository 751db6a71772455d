"""Telemetry sources: where the latency and drift aggregates come from (``TELEMETRY_SOURCE``)."""

from apps.monitoring.sources.base import TelemetrySource, get_telemetry_source

__all__ = ["TelemetrySource", "get_telemetry_source"]

"""Azure Monitor: KQL against a Log Analytics workspace (``ContainerLogV2`` by default, the telemetry JSON in
``LogMessage``), run with ``azure.monitor.query.LogsQueryClient``. The only module importing the Azure SDKs.

The KQL is built here, once: every value it embeds is a literal made by ``kql_string``/``kql_real``/
``kql_datetime`` and every table or column name comes from settings and must be a plain identifier. The
workspace aggregates (percentiles per bin, counts per baseline bin), so only aggregates come back.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.monitor.query import LogsQueryClient, LogsQueryPartialResult, LogsQueryStatus
from django.core.exceptions import ImproperlyConfigured

from apps.monitoring.agreement import TOLERANCE
from apps.monitoring.drift import prediction_value
from apps.monitoring.sources.base import (
    SampledRows,
    TelemetryError,
    TelemetrySource,
    TelemetryUnavailableError,
    window_bounds,
)
from apps.monitoring.types import (
    Agreement,
    BaselineProfile,
    DriftCounts,
    FeatureProfile,
    LatencyBin,
    LatencyCounts,
    RequestTotals,
    RevisionLatency,
    RevisionWindow,
)

__all__ = ["AzureMonitorTelemetrySource", "kql_string", "kql_real", "kql_identifier", "kql_timespan"]

# azure-core logs every request and response at INFO; ours go to a logger of their own, quiet by default.
_http_logger = logging.getLogger("apps.monitoring.azure_http")
_http_logger.setLevel(logging.WARNING)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def kql_string(value: str) -> str:
    """A double-quoted KQL string literal holding exactly ``value`` (control characters other than
    newline, carriage return and tab are dropped: names never contain them)."""
    out = []
    for char in str(value):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            continue
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def kql_real(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return f"real({number!r})"


def kql_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name or ""):
        raise ImproperlyConfigured(f"{what}={name!r} is not a plain KQL table or column name")
    return name


def kql_datetime(value: datetime) -> str:
    return "datetime(" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + ")"


def kql_timespan(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class AzureMonitorTelemetrySource(TelemetrySource):
    name = "azure_monitor"

    def __init__(
        self,
        *,
        workspace_id: str,
        endpoint: str = "https://api.loganalytics.io",
        table: str = "ContainerLogV2",
        message_column: str = "LogMessage",
        time_column: str = "TimeGenerated",
        source_column: str = "LogSource",
        namespace_column: str = "PodNamespace",
        timeout: int = 60,
        credential=None,
        connection_verify: bool | str = True,
        client: LogsQueryClient | None = None,
        **client_options,
    ) -> None:
        if not workspace_id:
            raise ImproperlyConfigured("TELEMETRY_SOURCE=azure_monitor needs AZURE_LOG_ANALYTICS_WORKSPACE_ID")
        self.workspace_id = workspace_id
        self.table = kql_identifier(table, "TELEMETRY_AZURE_TABLE")
        self.message = kql_identifier(message_column, "TELEMETRY_AZURE_MESSAGE_COLUMN")
        self.time = kql_identifier(time_column, "TELEMETRY_AZURE_TIME_COLUMN")
        self.source = kql_identifier(source_column, "TELEMETRY_AZURE_SOURCE_COLUMN") if source_column else ""
        self.namespace = (
            kql_identifier(namespace_column, "TELEMETRY_AZURE_NAMESPACE_COLUMN") if namespace_column else ""
        )
        self.timeout = timeout
        if client is None:
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            client = LogsQueryClient(
                credential, endpoint=endpoint, connection_verify=connection_verify, **client_options
            )
        self.client = client

    # ------------------------------------------------------------------ KQL
    def _base(self, deployment, start: datetime, end: datetime) -> str:
        m = self.message
        lines = [
            self.table,
            f"| where {self.time} >= {kql_datetime(start)} and {self.time} < {kql_datetime(end)}",
        ]
        if self.source:
            lines.append(f'| where {self.source} == "stdout"')
        namespace = getattr(deployment.environment, "namespace", "")
        if self.namespace and namespace:  # the same deployment name may serve in several environments
            lines.append(f"| where {self.namespace} == {kql_string(namespace)}")
        lines += [
            f"| extend m = todynamic({m})",
            '| where tostring(m["type"]) == "scoring_request"',
            f'| where tostring(m["deployment"]) == {kql_string(deployment.name)}',
            f'| where tostring(m["model"]) == {kql_string(deployment.model_name)}',
        ]
        return "\n".join(lines)

    def latency_query(
        self, deployment, window: timedelta, bin: timedelta, *, end=None
    ) -> tuple[str, datetime, datetime]:
        start, end = window_bounds(window, bin, end)
        step = kql_timespan(bin)
        query = "\n".join(
            [
                "let base = " + self._base(deployment, start, end).replace("\n", "\n    "),
                f'| extend t = bin({self.time}, {step}), latency = todouble(m["latency_ms"]), '
                'status = toint(m["status"]), revision = tostring(m["revision"]);',
                "union",
                "(base | summarize percentiles(latency, 50, 95, 99), requests = count(),"
                " errors = countif(status >= 500), rejected = countif(status >= 400 and status < 500) by t"
                ' | extend kind = "latency"),',
                '(base | summarize requests = count() by t, revision | extend kind = "revision"),',
                "(base | summarize percentiles(latency, 50, 95, 99), requests = count(),"
                ' errors = countif(status >= 500) by revision | extend kind = "by_revision")',
            ]
        )
        return query, start, end

    def totals_query(
        self, deployment, windows: list[timedelta], *, slow_above_ms: float | None, end: datetime
    ) -> tuple[str, datetime, datetime]:
        """One summarize over the longest window with a ``countif`` per window (``requests_<i>``, ``errors_<i>``,
        ``slow_<i>``) and the longest window's p99: every window of a rule in one round trip."""
        longest = max(windows)
        start = end - longest
        aggregates = []
        for index, window in enumerate(windows):
            since = f"{self.time} >= {kql_datetime(end - window)}"
            aggregates.append(f"requests_{index} = countif({since})")
            aggregates.append(f"errors_{index} = countif({since} and status >= 500)")
            if slow_above_ms is not None:
                aggregates.append(f"slow_{index} = countif({since} and latency > {kql_real(slow_above_ms)})")
        aggregates.append("p99 = percentile(latency, 99)")
        query = "\n".join(
            [
                self._base(deployment, start, end),
                '| extend latency = todouble(m["latency_ms"]), status = toint(m["status"])',
                "| summarize " + ",\n    ".join(aggregates),
            ]
        )
        return query, start, end

    def request_totals(self, deployment, windows, *, slow_above_ms=None, end=None) -> list[RequestTotals]:
        if not windows:
            return []
        end = end or datetime.now(UTC)
        query, start, end = self.totals_query(deployment, windows, slow_above_ms=slow_above_ms, end=end)
        rows, _ = self._run(query, start, end)
        row = rows[0] if rows else {}
        longest = max(windows)

        def number(key: str) -> int:
            try:
                return int(row[key] or 0)
            except (KeyError, IndexError, TypeError, ValueError):
                return 0

        totals = []
        for index, window in enumerate(windows):
            requests = number(f"requests_{index}")
            p99 = None
            if window == longest and requests:
                try:
                    p99 = _float(row["p99"])
                except (KeyError, IndexError, ValueError):
                    p99 = None
            totals.append(
                RequestTotals(
                    window=window,
                    requests=requests,
                    errors=number(f"errors_{index}"),
                    slow=number(f"slow_{index}"),
                    p99=p99,
                )
            )
        return totals

    def revision_windows_query(self, deployment, *, start: datetime, end: datetime, revisions: list[str]) -> str:
        """One summarize by revision over exactly ``[start, end)``, mirrored copies counted among the requests."""
        return "\n".join(
            [
                self._base(deployment, start, end),
                '| extend revision = tostring(m["revision"])',
                f"| where revision in ({', '.join(kql_string(r) for r in revisions)})",
                '| extend latency = todouble(m["latency_ms"]), status = toint(m["status"]), '
                'mirrored = tobool(m["shadow"])',
                "| summarize requests = count(), errors = countif(status >= 500), shadow = countif(mirrored == true),"
                " percentiles(latency, 50, 99) by revision",
            ]
        )

    def agreement_query(self, deployment, *, stable: str, candidate: str, start: datetime, end: datetime) -> str:
        """The sampled lines of both sides with outputs, the earliest per request id, joined on it; each output
        row (each field of an object row) compared by the rule of ``apps.monitoring.agreement``; one row back."""
        numeric = '("int", "long", "real", "decimal")'
        return "\n".join(
            [
                "let lines = " + self._base(deployment, start, end).replace("\n", "\n    "),
                '    | where tobool(m["sampled"]) == true',
                '    | extend revision = tostring(m["revision"]), request_id = tostring(m["request_id"]), '
                'mirrored = coalesce(tobool(m["shadow"]), false), outputs = m["outputs"]',
                '    | where gettype(outputs) == "array" and array_length(outputs) > 0;',
                f"let stable_lines = lines | where revision == {kql_string(stable)} and not(mirrored)",
                f"    | summarize arg_min({self.time}, outputs) by request_id | project request_id, a = outputs;",
                f"let candidate_lines = lines | where revision == {kql_string(candidate)} and mirrored",
                f"    | summarize arg_min({self.time}, outputs) by request_id | project request_id, b = outputs;",
                "stable_lines",
                "| join kind=inner candidate_lines on request_id",
                "| extend rows_a = array_length(a), rows_b = array_length(b)",
                "| mv-expand with_itemindex=i x = a",
                "| extend y = b[i]",
                '| extend shaped = iff(gettype(x) == "dictionary" or gettype(y) == "dictionary", '
                "gettype(x) == gettype(y) and array_length(bag_keys(x)) == array_length(bag_keys(y)), true)",
                '| extend per_field = gettype(x) == "dictionary" and array_length(bag_keys(x)) > 0',
                '| mv-expand k = iff(per_field, bag_keys(x), pack_array("")) to typeof(string)',
                "| extend xv = iff(per_field, x[k], x), yv = iff(per_field, y[k], y)",
                f"| extend numeric = gettype(xv) in {numeric} and gettype(yv) in {numeric}",
                "| extend d = iff(numeric, abs(todouble(xv) - todouble(yv)), real(null))",
                f"| extend same = shaped and iff(numeric, d <= {kql_real(TOLERANCE)} * max_of(1.0, "
                "abs(todouble(xv)), abs(todouble(yv))), gettype(xv) == gettype(yv) and tostring(xv) == tostring(yv))",
                "| summarize cells = count(), agreeing = countif(same), largest = max(d) by request_id, rows_a, rows_b",
                "| summarize compared = count(), equal = countif(agreeing == cells and rows_a == rows_b),"
                " max_abs_difference = max(largest)",
            ]
        )

    def revision_windows(self, deployment, *, start, end, revisions) -> dict[str, RevisionWindow]:
        windows = {name: RevisionWindow(name, requests=0, errors=0, shadow=0, p50=None, p99=None) for name in revisions}
        if not revisions:
            return windows
        rows, _ = self._run(
            self.revision_windows_query(deployment, start=start, end=end, revisions=revisions), start, end
        )
        for row in rows:
            name = str(row["revision"] or "")
            requests = int(row["requests"] or 0)
            if name not in windows or not requests:
                continue
            windows[name] = RevisionWindow(
                revision=name,
                requests=requests,
                errors=int(row["errors"] or 0),
                shadow=int(row["shadow"] or 0),
                p50=_float(row["percentile_latency_50"]),
                p99=_float(row["percentile_latency_99"]),
            )
        return windows

    def agreement(self, deployment, *, stable, candidate, start, end) -> Agreement:
        query = self.agreement_query(deployment, stable=stable, candidate=candidate, start=start, end=end)
        rows, _ = self._run(query, start, end)
        if not rows:
            return Agreement(compared=0, equal=0)
        row = rows[0]
        compared = int(row["compared"] or 0)
        difference = _float(row["max_abs_difference"]) if compared else None
        return Agreement(compared=compared, equal=int(row["equal"] or 0), max_abs_difference=difference)

    def drift_query(
        self, deployment, window, bin, baseline: BaselineProfile, *, end=None, revision: str | None = None
    ) -> tuple[str, datetime, datetime]:
        start, end = window_bounds(window, bin, end)
        step = kql_timespan(bin)
        packs = []
        for index, feature in enumerate(baseline.features):
            packs.append(f'pack("f", {index}, "b", {self._bin_case(feature, "row")})')
        expand = '| mv-expand row = m["inputs"]'
        if baseline.prediction is not None:
            # outputs[i] is the prediction of inputs[i], so both expand side by side; a one-field row ({"label":
            # 1}, [1]) counts as its value, like the local source; the prediction is feature number len(inputs)
            expand += (
                ', out = m["outputs"]\n| extend pred = case('
                'gettype(out) == "dictionary" and array_length(bag_keys(out)) == 1, out[tostring(bag_keys(out)[0])], '
                'gettype(out) == "array" and array_length(out) == 1, out[0], '
                'gettype(out) in ("dictionary", "array"), dynamic(null), out)'
            )
            prediction_bin = self._bin_case(baseline.prediction, "", value="pred")
            packs.append(f'pack("f", {len(baseline.features)}, "b", {prediction_bin})')
        revision_filter = [f'| where tostring(m["revision"]) == {kql_string(revision)}'] if revision is not None else []
        query = "\n".join(
            [
                self._base(deployment, start, end),
                f'| where tostring(m["model_version"]) == {kql_string(baseline.model_version)}',
                *revision_filter,
                '| where tobool(m["sampled"]) == true',
                f"| extend t = bin({self.time}, {step})",
                expand,
                "| extend cells = pack_array(\n    " + ",\n    ".join(packs) + ")",
                "| mv-expand cell = cells",
                '| extend f = toint(cell["f"]), b = toint(cell["b"])',
                "| where b >= 0",
                "| summarize n = count() by t, f, b",
            ]
        )
        return query, start, end

    def sampled_rows_query(self, deployment, *, start: datetime, end: datetime, model_version: str, limit: int) -> str:
        return "\n".join(
            [
                self._base(deployment, start, end),
                f'| where tostring(m["model_version"]) == {kql_string(model_version)}',
                '| where tobool(m["sampled"]) == true',
                '| mv-expand row = m["inputs"], out = m["outputs"]',
                "| where isnotnull(row)",
                f"| sample {int(limit)}",
                f"| project t = {self.time}, row, out",
            ]
        )

    @staticmethod
    def _bin_case(feature: FeatureProfile, column: str, *, value: str = "") -> str:
        """The KQL ``case`` mapping ``column[feature.name]`` (or the expression ``value``) to its baseline bin,
        -1 when missing."""
        value = value or f"{column}[{kql_string(feature.name)}]"
        if feature.kind == "categorical":
            text = f"tostring({value})"
            arms = [f"{text} == {kql_string(c)}, {i}" for i, c in enumerate(feature.categories)]
            return (
                f"case(isnull({value}) or isempty({text}), -1, "
                + ", ".join([*arms, str(len(feature.categories))])
                + ")"
            )
        number = f"todouble({value})"
        arms = [f"{number} < {kql_real(edge)}, {i}" for i, edge in enumerate(feature.edges)]
        return f"case(isnull({number}), -1, " + ", ".join([*arms, str(len(feature.edges))]) + ")"

    # ------------------------------------------------------------------ running it
    def _run(self, query: str, start: datetime, end: datetime) -> tuple[list, list[str]]:
        try:
            response = self.client.query_workspace(
                self.workspace_id, query, timespan=(start, end), server_timeout=self.timeout, logger=_http_logger
            )
        except ClientAuthenticationError as exc:
            raise TelemetryError(f"Azure Monitor refused the credentials: {_message(exc)}") from None
        except HttpResponseError as exc:
            if exc.status_code in (429, 502, 503, 504):
                raise TelemetryUnavailableError(
                    f"Azure Monitor is unavailable ({exc.status_code}): {_message(exc)}"
                ) from None
            raise TelemetryError(f"Azure Monitor rejected the query ({exc.status_code}): {_message(exc)}") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TelemetryUnavailableError(f"Azure Monitor cannot be reached: {_message(exc)}") from None
        warnings = []
        if isinstance(response, LogsQueryPartialResult) or getattr(response, "status", None) == LogsQueryStatus.PARTIAL:
            error = getattr(response, "partial_error", None)
            detail = getattr(error, "message", "") or getattr(error, "code", "") or "no detail"
            warnings.append(f"Azure Monitor returned partial results: {detail}")
            tables = response.partial_data or []
        else:
            tables = response.tables or []
        rows = [row for table in tables[:1] for row in table.rows]
        return rows, warnings

    def latency_series(self, deployment, window, bin, *, end=None) -> LatencyCounts:
        query, start, end = self.latency_query(deployment, window, bin, end=end)
        rows, warnings = self._run(query, start, end)
        stats: dict[datetime, dict] = {}
        revisions: dict[datetime, dict[str, int]] = {}
        compared = []
        for row in rows:
            if row["kind"] == "by_revision":
                compared.append(
                    RevisionLatency(
                        revision=str(row["revision"] or ""),
                        requests=int(row["requests"] or 0),
                        errors=int(row["errors"] or 0),
                        p50=_float(row["percentile_latency_50"]),
                        p95=_float(row["percentile_latency_95"]),
                        p99=_float(row["percentile_latency_99"]),
                    )
                )
                continue
            t = _as_datetime(row["t"])
            if row["kind"] == "latency":
                stats[t] = {
                    "requests": int(row["requests"] or 0),
                    "errors": int(row["errors"] or 0),
                    "rejected": int(row["rejected"] or 0),
                    "p50": _float(row["percentile_latency_50"]),
                    "p95": _float(row["percentile_latency_95"]),
                    "p99": _float(row["percentile_latency_99"]),
                }
            else:
                revisions.setdefault(t, {})[str(row["revision"] or "")] = int(row["requests"] or 0)
        bins = []
        for t in sorted(stats):
            counts = revisions.get(t, {})
            revision = max(sorted(counts), key=lambda r: counts[r]) if counts else ""
            bins.append(LatencyBin(start=t, revision=revision, revisions=tuple(sorted(counts)), **stats[t]))
        return LatencyCounts(bins=bins, warnings=warnings, revisions=sorted(compared, key=lambda r: r.revision))

    def drift_counts(self, deployment, window, bin, baseline, *, end=None, revision=None) -> DriftCounts:
        query, start, end = self.drift_query(deployment, window, bin, baseline, end=end, revision=revision)
        rows, warnings = self._run(query, start, end)
        counts: dict[str, dict[datetime, list[int]]] = {f.name: {} for f in baseline.features}
        prediction: dict[datetime, list[int]] = {}
        for row in rows:
            f, b = int(row["f"]), int(row["b"])
            if 0 <= f < len(baseline.features):
                feature, per_time = baseline.features[f], counts[baseline.features[f].name]
            elif f == len(baseline.features) and baseline.prediction is not None:
                feature, per_time = baseline.prediction, prediction
            else:
                continue
            if not 0 <= b < len(feature.frequencies):
                continue
            cells = per_time.setdefault(_as_datetime(row["t"]), [0] * len(feature.frequencies))
            cells[b] += int(row["n"] or 0)
        return DriftCounts(counts=counts, warnings=warnings, prediction=prediction)

    def sampled_rows(self, deployment, *, start, end, model_version: str, limit: int) -> SampledRows:
        query = self.sampled_rows_query(deployment, start=start, end=end, model_version=model_version, limit=limit)
        rows, _ = self._run(query, start, end)
        times, inputs, outputs = [], [], []
        for row in rows:
            values = _dynamic(row["row"])
            if not isinstance(values, dict):
                continue
            times.append(_as_datetime(row["t"]).timestamp())
            inputs.append(values)
            outputs.append(prediction_value(_dynamic(row["out"])))
        return SampledRows(
            times=np.asarray(times, dtype=float),
            inputs=pd.DataFrame(inputs, index=range(len(inputs))),
            outputs=pd.Series(outputs, dtype=object),
        )


def _dynamic(value):
    """A ``dynamic`` cell: the SDK hands it over as its JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _message(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    text = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0][:500]

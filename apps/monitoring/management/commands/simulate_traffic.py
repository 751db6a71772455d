"""Send demo scoring traffic, built from the model version's reference data, to a live local deployment."""

from __future__ import annotations

import tempfile

import pandas as pd
from django.core.management.base import CommandError

from apps.accounts.request_context import SystemCommand
from apps.common.errors import ApplicationError
from apps.deployments.selectors import deployment_get
from apps.monitoring import selectors, traffic
from apps.monitoring.services import REFERENCE_ARTIFACT


class Command(SystemCommand):
    help = (
        "Send requests built from the reference data of a deployment's model version (optionally shifted) to its "
        "local endpoint, e.g. `simulate_traffic 3 --rate 5 --seconds 300 --drift age,credit_limit`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("deployment", type=int, help="The deployment's id (as in /deployments/<id>/).")
        parser.add_argument(
            "--rate", type=float, default=5.0, help=f"Requests per second (at most {traffic.MAX_RATE:g})."
        )
        parser.add_argument("--seconds", type=float, default=60.0, help=f"How long (at most {traffic.MAX_SECONDS}).")
        parser.add_argument("--rows", type=int, default=1, help="Rows per request (1..100).")
        parser.add_argument("--drift", default="", help="Comma-separated features to shift away from the reference.")
        parser.add_argument("--strength", type=float, default=1.5, help="Shift of numeric features, in std devs.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Requests in flight at once (default: one per 10 req/s of --rate, at most "
            f"{traffic.MAX_CONCURRENCY}); one sender waiting for each answer reaches only 1000/latency req/s.",
        )

    def handle(self, *args, **options) -> None:
        try:
            deployment = deployment_get(pk=options["deployment"])
            endpoint = traffic.loopback_endpoint(deployment.endpoint_url)
            version = selectors.monitored_version(deployment)
            if version is None:
                raise ApplicationError(f"{deployment} has no revision yet.")
            frame = self._reference(deployment.model_name, version)
            features = [f.strip() for f in options["drift"].split(",") if f.strip()]
            if features:
                frame = traffic.shift_frame(frame, features, strength=options["strength"])
            rows = min(max(options["rows"], 1), 100)
            rate = min(max(options["rate"], 0.01), traffic.MAX_RATE)
            concurrency = options["concurrency"] or traffic.default_concurrency(rate)
            self.stdout.write(
                f"Sending {rate:g} req/s for {options['seconds']:g} s to {endpoint} from {concurrency} "
                f"concurrent sender(s)" + (f", shifting {', '.join(features)}" if features else "")
            )
            if rate < options["rate"]:
                self.stdout.write(self.style.WARNING(f"--rate is capped at {traffic.MAX_RATE:g} req/s."))
            report = traffic.send(
                endpoint=endpoint,
                frame=frame,
                rate=rate,
                concurrency=concurrency,
                seconds=options["seconds"],
                rows_per_request=rows,
                seed=options["seed"],
                on_progress=lambda r: self.stdout.write(f"  {r.sent} sent, statuses {dict(r.statuses)}"),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        summary = (
            f"Sent {report.sent} requests in {report.seconds:.1f} s ({report.achieved_rate:.1f} req/s, median "
            f"{report.median_ms:.0f} ms): statuses {dict(report.statuses)}"
            + (f", {report.failures} connection failures" if report.failures else "")
        )
        self.stdout.write(self.style.SUCCESS(summary))
        if shortfall := report.shortfall():
            self.stdout.write(self.style.WARNING(f"Below the asked rate: {shortfall}."))

    @staticmethod
    def _reference(model_name: str, version: str) -> pd.DataFrame:
        from apps.registry.client import get_client

        client = get_client()
        run_id = client.get_version(model_name, version).run_id
        if not run_id:
            raise ApplicationError(f"{model_name} v{version} has no source run with reference data.")
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(client.download_run_artifact(run_id, REFERENCE_ARTIFACT, tmp))

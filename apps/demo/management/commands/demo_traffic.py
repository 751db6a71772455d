"""`make run` starts this in the background: demo requests to the demo deployment, bounded, then it stops."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.accounts.request_context import SystemCommand
from apps.common.errors import ApplicationError
from apps.demo import traffic as demo
from apps.monitoring import traffic
from apps.monitoring.management.commands.simulate_traffic import Command as SimulateTraffic


class Command(SystemCommand):
    help = (
        "DEMO ONLY (DEMO_TRAFFIC=true, never in a deployed control plane): wait for the demo credit model to be "
        "live in dev, then send about 20 minutes of labelled requests (request ids demo-traffic-...) with one "
        "drift episode, and stop."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", type=float, default=600.0, help="Seconds to wait for the deployment.")
        parser.add_argument("--scale", type=float, default=1.0, help="Multiply every phase's length (0 < x <= 1).")

    def handle(self, *args, wait: float, scale: float, **options) -> None:
        try:
            demo.demo_enabled_or_refuse()
            deployment = demo.live_demo_deployment(wait_seconds=wait)
            endpoint = traffic.loopback_endpoint(deployment.endpoint_url)
            reference = SimulateTraffic._reference(deployment.model_name, deployment.live_revision.model_version)
            scale = min(max(scale, 0.0001), 1.0)  # shorter, never longer: the demo stays bounded
            for number, phase in enumerate(demo.PHASES):
                seconds = phase.seconds * scale
                self.stdout.write(f"demo traffic to {deployment} ({endpoint}): {phase.label}, {seconds:g} s")
                frame = traffic.shift_frame(reference, list(phase.drift)) if phase.drift else reference
                report = traffic.send(
                    endpoint=endpoint,
                    frame=frame,
                    rate=demo.RATE,
                    seconds=seconds,
                    rows_per_request=demo.ROWS_PER_REQUEST,
                    seed=number,
                    bad_share=demo.BAD_SHARE,
                    label="demo-traffic",
                )
                self.stdout.write(f"  sent {report.sent}: statuses {dict(report.statuses)}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS("demo traffic done; it does not run again until the next make run"))

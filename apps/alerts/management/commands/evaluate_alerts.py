"""One evaluation pass of every alert rule, as the beat task runs it each minute (for scripts and tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError

from apps.accounts.request_context import SystemCommand
from apps.alerts import services


class Command(SystemCommand):
    help = "Evaluate every alert rule once (what the alerts.evaluate beat task does every minute)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--at", default="", help="Evaluate as of this ISO 8601 instant (UTC if no offset) instead of now."
        )

    def handle(self, *args, **options) -> None:
        now = None
        if options["at"]:
            try:
                now = datetime.fromisoformat(options["at"].replace("Z", "+00:00"))
            except ValueError:
                raise CommandError(f"--at {options['at']!r} is not an ISO 8601 instant.") from None
            now = now if now.tzinfo else now.replace(tzinfo=UTC)
        report = services.evaluate_all(now=now)
        counts = {o: report.count(o) for o in sorted(set(report.outcomes.values()))}
        summary = ", ".join(f"{n} {o}" for o, n in counts.items()) or "no rules"
        self.stdout.write(f"Evaluated {len(report.outcomes)} rule(s) at {report.at:%Y-%m-%d %H:%M:%S} UTC: {summary}.")

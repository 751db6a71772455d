from __future__ import annotations

from django.conf import settings

from apps.accounts.request_context import SystemCommand
from apps.demo.seed import demo_people_ensure


class Command(SystemCommand):
    help = "Create the demo users, environments and registered models. Running it again changes nothing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip-models", action="store_true", help="Only users and environments.")
        parser.add_argument("--rows", type=int, default=4000, help="Training rows per demo model.")

    def handle(self, *args, skip_models: bool, rows: int, **options) -> None:
        created = demo_people_ensure()
        if created:
            self.stdout.write(self.style.SUCCESS("Demo users (passwords are shown only this once):"))
            for user in created:
                self.stdout.write(f"  {user.username:<9} {user.password}   ({user.label})")
        else:
            self.stdout.write("Demo users exist already (reset a password with: manage.py changepassword <user>).")
        if skip_models:
            return
        from apps.demo.registry.seed import demo_models_ensure

        self.stdout.write("Demo models in the MLflow registry:")
        changed = demo_models_ensure(
            tracking_uri=settings.MLFLOW_TRACKING_URI,
            registry_uri=settings.MLFLOW_REGISTRY_URI,
            artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
            rows=rows,
            log=self.stdout.write,
        )
        self.stdout.write(
            "  registered new versions of: " + ", ".join(sorted(set(changed))) if changed else "  already there."
        )
        if settings.DEMO_TRAFFIC:
            from apps.demo.traffic import DEMO_ENVIRONMENT, DEMO_MODEL, demo_deployment_ensure

            revision = demo_deployment_ensure()
            self.stdout.write(
                f"Demo deployment: {DEMO_MODEL} v{revision.model_version} to {DEMO_ENVIRONMENT} requested as "
                f"{revision.deployment.name} {revision.label} (the worker deploys it)."
                if revision
                else f"Demo deployment: {DEMO_MODEL} in {DEMO_ENVIRONMENT} exists already."
            )

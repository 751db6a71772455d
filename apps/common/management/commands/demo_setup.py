from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.choices import Role
from apps.accounts.services import user_ensure
from apps.deployments.models import EnvironmentGrant
from apps.deployments.services import environment_ensure
from apps.promotions.services import promotion_policy_ensure

DEMO_ENVIRONMENTS = [
    {"name": "dev", "order": 1, "description": "Try things; anyone with the ML lead role deploys."},
    {"name": "staging", "order": 2, "description": "Pre-production, mirrors production settings."},
    {
        "name": "production",
        "order": 3,
        "description": "Serves customers; deploys need an approved promotion.",
        "gated": True,
    },
]


class Command(BaseCommand):
    help = "Create the demo users, environments and registered models. Running it again changes nothing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip-models", action="store_true", help="Only users and environments.")
        parser.add_argument("--rows", type=int, default=4000, help="Training rows per demo model.")

    def handle(self, *args, skip_models: bool, rows: int, **options) -> None:
        created = []
        for role in (Role.VIEWER, Role.LEAD, Role.REVIEWER, Role.ADMIN):
            user, password = user_ensure(username=role.value, role=role.value)
            if password:
                created.append((user.username, password, role.label))
        environments = {spec["name"]: environment_ensure(**spec)[0] for spec in DEMO_ENVIRONMENTS}
        # Per-environment roles: the intern reads everything and deploys to dev only.
        intern, password = user_ensure(username="intern", role=Role.VIEWER)
        EnvironmentGrant.objects.get_or_create(user=intern, environment=environments["dev"], role=Role.LEAD)
        if password:
            created.append((intern.username, password, "Viewer; ML lead in dev"))
        # Production takes one reviewer's approval of a version that is live in staging.
        promotion_policy_ensure(environment=environments["production"], require_live_in=environments["staging"])
        if created:
            self.stdout.write(self.style.SUCCESS("Demo users (passwords are shown only this once):"))
            for username, password, label in created:
                self.stdout.write(f"  {username:<9} {password}   ({label})")
        else:
            self.stdout.write("Demo users exist already (reset a password with: manage.py changepassword <user>).")
        if skip_models:
            return
        from apps.registry.demo.seed import demo_models_ensure

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

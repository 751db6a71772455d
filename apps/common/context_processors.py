from __future__ import annotations

from django.http import HttpRequest


def product(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    can_deploy = bool(user and user.is_authenticated and user.has_role("lead"))
    return {"product_name": "Modelplane", "can_deploy": can_deploy}

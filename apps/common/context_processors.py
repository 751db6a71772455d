from __future__ import annotations

from django.http import HttpRequest


def product(request: HttpRequest) -> dict[str, object]:
    return {"product_name": "Modelplane"}

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.common.paging import TokenCursor
from apps.registry import selectors
from apps.registry.client import MODEL_ORDER

ORDER_LABELS = {
    "updated": "Last updated",
    "-updated": "Least recently updated",
    "name": "Name A-Z",
    "-name": "Name Z-A",
}


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:200]
    order = request.GET.get("order", "updated")
    order = order if order in MODEL_ORDER else "updated"
    cursor = TokenCursor.from_query(request.GET)
    page = selectors.registered_model_list(search=search, order=order, page_token=cursor.token or None)
    return render(
        request,
        "registry/model_list.html",
        {
            "models": page.items,
            "search": search,
            "order": order,
            "orders": ORDER_LABELS,
            "page_number": cursor.number,
            "next_query": cursor.next_query(request.GET, page.next_token),
            "previous_query": cursor.previous_query(request.GET),
            "registry_uri": selectors.registry_display_uri(),
        },
    )


@require_GET
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    cursor = TokenCursor.from_query(request.GET)
    page = selectors.model_page_get(name=name, page_token=cursor.token or None)
    rows = [(v, page.runs.get(v.run_id) if v.run_id else None) for v in page.versions.items]
    return render(
        request,
        "registry/model_detail.html",
        {
            "page": page,
            "model": page.model,
            "rows": rows,
            "page_number": cursor.number,
            "next_query": cursor.next_query(request.GET, page.versions.next_token),
            "previous_query": cursor.previous_query(request.GET),
        },
    )


@require_GET
def version_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    detail = selectors.model_version_detail_get(name=name, version=version)
    return render(
        request, "registry/version_detail.html", {"detail": detail, "version": detail.version, "run": detail.run}
    )


@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    return render(request, "registry/run_detail.html", {"run": selectors.run_get(run_id=run_id)})

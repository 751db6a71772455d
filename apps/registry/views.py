from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from apps.common.paging import TokenCursor
from apps.common.timefmt import ago
from apps.deployments import selectors as deployment_selectors
from apps.deployments.drafts import deploy_draft_take
from apps.deployments.forms import STRATEGY_FIELDS, DeployForm
from apps.monitoring.views import plotly_js_version
from apps.promotions import selectors as promotion_selectors
from apps.promotions.drafts import draft_take
from apps.promotions.forms import PromotionRequestForm
from apps.registry import charts, links, selectors
from apps.registry.client import MODEL_ORDER
from apps.registry.types import ModelSummary
from apps.registry.versions import compared_versions

ORDER_LABELS = {
    "updated": "Last updated",
    "-updated": "Least recently updated",
    "name": "Name A-Z",
    "-name": "Name Z-A",
}


@dataclass(frozen=True)
class ModelRow:
    """One row of the models page, with its links, chips and times made in Python (cheaper than the template)."""

    name: str
    description: str
    url: str
    latest_version: str | None
    latest_url: str
    chips: str
    updated_title: str
    updated_human: str

    @property
    def html(self) -> str:
        """The table row. Made here rather than in the template: it is the models page's hot loop."""
        description = f'<div class="desc">{escape(self.description)}</div>' if self.description else ""
        latest = (
            f'<a href="{self.latest_url}">v{escape(self.latest_version)}</a>'
            if self.latest_version
            else '<span class="muted">none</span>'
        )
        return mark_safe(  # noqa: S308 - every value is escaped; urls are percent-encoded paths
            f'<tr><td><a class="name" href="{self.url}">{escape(self.name)}</a>{description}</td>'
            f'<td>{latest}</td><td colspan="2">{self.chips}</td>'
            f'<td title="{self.updated_title}">{self.updated_human}</td></tr>'
        )


def _model_row(model: ModelSummary, now: datetime) -> ModelRow:
    chips = "".join(
        [f'<span class="chip">@{escape(a)} → v{escape(v)}</span>' for a, v in model.aliases.items()]
        + [f'<span class="chip stage">{escape(s)}: v{escape(v)}</span>' for s, v in model.stages.items()]
        + [f'<span class="chip tag">{escape(k)}={escape(v)}</span>' for k, v in model.tags.items()]
    )
    updated = model.updated_at
    return ModelRow(
        name=model.name,
        description=model.description,
        url=escape(links.model_path(model.name)),
        latest_version=model.latest_version,
        latest_url=escape(links.version_path(model.name, model.latest_version)) if model.latest_version else "",
        chips=mark_safe(chips),  # noqa: S308 - every part is escaped above
        updated_title=f"{updated:%Y-%m-%d %H:%M:%S} UTC" if updated else "",
        updated_human=ago(updated, now) if updated else "",
    )


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
            "models": [_model_row(model, timezone.now()) for model in page.items],
            "search": search,
            "order": order,
            "orders": {} if selectors.registry_is_unity_catalog() else ORDER_LABELS,
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
    live = deployment_selectors.live_by_version(model_name=page.model.name)
    rows = [(v, page.runs.get(v.run_id) if v.run_id else None, live.get(v.version, [])) for v in page.versions.items]
    oldest_first = [v.version for v in reversed(page.versions.items)]
    history = charts.metric_history_figure(
        versions=oldest_first,
        metrics={m: page.metric_values(m) for m in page.metric_names},
        directions=page.directions,
        best=page.best,
    )
    return render(
        request,
        "registry/model_detail.html",
        {
            "page": page,
            "model": page.model,
            "rows": rows,
            "history": history,
            "plotly_version": plotly_js_version(),
            "page_number": cursor.number,
            "next_query": cursor.next_query(request.GET, page.versions.next_token),
            "previous_query": cursor.previous_query(request.GET),
        },
    )


@require_GET
def model_compare(request: HttpRequest, name: str) -> HttpResponse:
    """Versions side by side: ``?versions=1&versions=3`` (the model page's checkboxes) or ``?versions=1,3``."""
    versions = compared_versions(request.GET)
    if not versions:
        messages.error(request, "Tick the versions to compare first.")
        return redirect("registry:model_detail", name=name)
    comparison = selectors.model_versions_compare(name=name, versions=versions)
    live = deployment_selectors.live_by_version(model_name=comparison.model.name)
    return render(
        request,
        "registry/model_compare.html",
        {
            "comparison": comparison,
            "model": comparison.model,
            "columns": [(v, comparison.runs[v.version], live.get(v.version, [])) for v in comparison.versions],
        },
    )


@require_GET
def version_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    detail = selectors.model_version_detail_get(name=name, version=version)
    context = {
        "detail": detail,
        "version": detail.version,
        "run": detail.run,
        "deploy_form": DeployForm.again(
            deploy_draft_take(request, model=name, version=detail.version.version),
            initial={"model": name, "version": detail.version.version},
            environments=deployment_selectors.deploy_targets(user=request.user),
        ),
        "strategy_fields": STRATEGY_FIELDS,
        "revisions": deployment_selectors.revisions_of_version(model_name=name, version=detail.version.version)[:10],
        "promotion_form": PromotionRequestForm(
            initial={"model": name, "version": detail.version.version},
            environments=promotion_selectors.promotion_targets(user=request.user),
        ),
        "promotions": promotion_selectors.promotions_of_version(model_name=name, version=detail.version.version)[:5],
        "promotion_draft": draft_take(request, model=name, version=detail.version.version),
    }
    return render(request, "registry/version_detail.html", context)


@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    return render(request, "registry/run_detail.html", {"run": selectors.run_get(run_id=run_id)})

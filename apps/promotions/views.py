from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError
from apps.common.flash import flash_error
from apps.common.forms import form_errors
from apps.promotions import selectors, services
from apps.promotions.choices import PromotionStatus
from apps.promotions.drafts import draft_keep
from apps.promotions.filtersets import PromotionFilterSet
from apps.promotions.forms import DecisionForm, PromotionRequestForm


@require_GET
def promotion_list(request: HttpRequest) -> HttpResponse:
    filterset = PromotionFilterSet(request.GET, queryset=selectors.promotion_list())
    promotions = filterset.qs.defer("comparison")[:200]  # the inbox does not show what each compared
    return render(request, "promotions/promotion_list.html", {"filter": filterset, "promotions": promotions})


@require_POST
def promotion_create(request: HttpRequest) -> HttpResponse:
    form = PromotionRequestForm(request.POST)
    model, version = request.POST.get("model", ""), request.POST.get("version", "")
    back = redirect("registry:version_detail", name=model, version=version) if model and version.isdigit() else None
    if not form.is_valid():
        messages.error(request, f"Cannot request the promotion: {form_errors(form)}")
        draft_keep(request)
        return back or redirect("promotions:promotion_list")
    try:
        promotion = services.promotion_request(
            actor=request.user,
            model_name=form.cleaned_data["model"],
            version=form.cleaned_data["version"],
            environment=form.cleaned_data["environment"].name,
            justification=form.cleaned_data["justification"],
        )
    except ApplicationError as exc:
        flash_error(request, exc)
        draft_keep(request)
        return back or redirect("promotions:promotion_list")
    messages.success(request, f"Promotion #{promotion.pk} requested; reviewers can now approve it.")
    return redirect("promotions:promotion_detail", pk=promotion.pk)


@require_GET
def promotion_detail(request: HttpRequest, pk: int) -> HttpResponse:
    promotion = selectors.promotion_get(pk=pk)
    policy = services.policy_for(promotion.environment)
    comparison, comparison_error = selectors.promotion_comparison_get(promotion=promotion)
    context = {
        "promotion": promotion,
        "policy": policy,
        "comparison": comparison,
        "comparison_error": comparison_error,
        "live_now": selectors.promotion_live_get(promotion=promotion),
        "source_revision": selectors.promotion_source_revision(promotion=promotion),
        "shadow_evidence": selectors.promotion_shadow_evidence(promotion=promotion),
        "permissions": selectors.promotion_permissions(promotion=promotion, user=request.user, policy=policy),
        "decision_form": DecisionForm(),
        "events": selectors.promotion_events(promotion=promotion),
    }
    return render(request, "promotions/promotion_detail.html", context)


def _decide(request: HttpRequest, pk: int, action: Callable[..., object], done: str) -> HttpResponse:
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        promotion = action(actor=request.user, promotion=pk, comment=comment)
    except ApplicationError as exc:
        flash_error(request, exc)
        return redirect("promotions:promotion_detail", pk=pk)
    if promotion.status == PromotionStatus.EXECUTED:
        messages.success(request, f"Promotion #{pk} executed: the alias moved and the rollout started.")
    elif promotion.status == PromotionStatus.APPROVED and promotion.execution_error:
        messages.warning(
            request, f"Promotion #{pk} is approved, but could not execute yet: {promotion.execution_error}"
        )
    else:
        messages.success(request, done.format(pk=pk))
    return redirect("promotions:promotion_detail", pk=pk)


@require_POST
def promotion_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.promotion_approve, "Approval recorded on promotion #{pk}.")


@require_POST
def promotion_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.promotion_reject, "Promotion #{pk} rejected.")


@require_POST
def promotion_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.promotion_cancel, "Promotion #{pk} cancelled.")

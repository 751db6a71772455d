from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.permissions import require_admin
from apps.accounts.selectors import active_user_get
from apps.accounts.services import user_role_set
from apps.common.errors import ApplicationError
from apps.common.flash import flash_error
from apps.common.forms import form_errors
from apps.deployments import selectors, services
from apps.deployments.access import access_rows, grant_add, grant_get, grant_remove
from apps.deployments.drafts import deploy_draft_keep
from apps.deployments.filtersets import DeploymentFilterSet, UserAccessFilterSet
from apps.deployments.forms import DeployForm, GrantForm, RoleForm, RollbackForm
from apps.deployments.rollouts.control import ABORT, PAUSE, PROMOTE, RESUME, rollout_control


@require_GET
def deployment_list(request: HttpRequest) -> HttpResponse:
    filterset = DeploymentFilterSet(request.GET, queryset=selectors.deployment_list())
    return render(request, "deployments/deployment_list.html", {"filter": filterset, "deployments": filterset.qs})


@require_POST
def deployment_create(request: HttpRequest) -> HttpResponse:
    form = DeployForm(request.POST)
    model, version = request.POST.get("model", ""), request.POST.get("version", "")
    back = redirect("registry:version_detail", name=model, version=version) if model and version.isdigit() else None
    if not form.is_valid():
        messages.error(request, f"Cannot deploy: {form_errors(form)}")
        deploy_draft_keep(request, form.errors)
        return back or redirect("registry:model_list")
    model, version = form.cleaned_data["model"], form.cleaned_data["version"]
    try:
        revision = services.deployment_create(
            actor=request.user,
            model_name=model,
            model_version=version,
            environment=form.cleaned_data["environment"].name,
            name=form.cleaned_data["name"],
            input_validation=form.cleaned_data["input_validation"],
            strategy=form.strategy_request(),
        )
    except ApplicationError as exc:
        flash_error(request, exc)
        if exc.code in ("invalid_strategy", "strategy_unsupported"):
            form.add_strategy_error(exc.message)
        deploy_draft_keep(request, form.errors)
        return redirect("registry:version_detail", name=model, version=version)
    messages.success(
        request, f"Deploying {model} v{version} to {revision.deployment.environment.name} ({revision.label})."
    )
    return redirect("deployments:revision_detail", pk=revision.pk)


def _detail(request: HttpRequest, deployment, *, test_body: str | None = None, answer=None, status: int = 200):
    revisions = list(selectors.revisions_of_deployment(deployment=deployment))
    example = selectors.input_example_get(deployment=deployment) if deployment.endpoint_url else None
    context = {
        "deployment": deployment,
        "revisions": revisions,
        "permissions": selectors.deployment_permissions(deployment=deployment, user=request.user, revisions=revisions),
        "example": example,
        "snippet": selectors.score_snippet(endpoint_url=deployment.endpoint_url, example=example) if example else "",
        "test_body": test_body if test_body is not None else (json.dumps(example, indent=2) if example else ""),
        "answer": answer,
        "test_timeout": settings.DEPLOY_TEST_TIMEOUT,
        "serving": selectors.deployment_serving_health(deployment=deployment),
        "reconcile_seconds": int(settings.DEPLOY_RECONCILE_SECONDS),
    }
    return render(request, "deployments/deployment_detail.html", context, status=status)


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, selectors.deployment_get(pk=pk))


@require_POST
def deployment_test(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Test this endpoint" form: the (edited) body goes to the model from the server; the page shows the
    answer and its latency, and keeps what was typed."""
    deployment = selectors.deployment_get(pk=pk)
    body = request.POST.get("body", "")
    try:
        answer = services.deployment_test_score(actor=request.user, deployment=deployment, body=body)
    except ApplicationError as exc:
        flash_error(request, exc)
        return _detail(request, deployment, test_body=body, status=exc.status_code)
    return _detail(request, deployment, test_body=body, answer=answer)


@require_POST
def deployment_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(pk=pk)
    form = RollbackForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError("Choose the revision to roll back to.")
        target = selectors.revision_numbered(deployment=deployment, number=form.cleaned_data["revision"])
        revision = services.deployment_rollback(actor=request.user, deployment=deployment, to_revision=target)
    except ApplicationError as exc:
        flash_error(request, exc)
        return redirect("deployments:deployment_detail", pk=pk)
    messages.success(request, f"Rolling back to {target.label} as {revision.label}.")
    return redirect("deployments:revision_detail", pk=revision.pk)


@require_POST
def deployment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(pk=pk)
    try:
        services.deployment_delete(actor=request.user, deployment=deployment)
    except ApplicationError as exc:
        flash_error(request, exc)
        return redirect("deployments:deployment_detail", pk=pk)
    messages.success(request, f"Deleting {deployment}: its scoring servers are being torn down.")
    return redirect(reverse("deployments:deployment_detail", kwargs={"pk": pk}))


def _revision_page(request: HttpRequest, revision, *, status: int = 200) -> HttpResponse:
    from apps.monitoring.views import plotly_js_version  # monitoring reads deployments, not the reverse, at import

    deployment = revision.deployment
    example = None
    if deployment.endpoint_url and deployment.live_revision_id == revision.pk:
        example = selectors.input_example_get(deployment=deployment)
    snippet = selectors.score_snippet(endpoint_url=deployment.endpoint_url, example=example) if example else ""
    rollout = selectors.rollout_view(revision=revision, user=request.user)
    context = {
        "revision": revision,
        "deployment": deployment,
        "snippet": snippet,
        "rollout": rollout,
        "plotly_version": plotly_js_version() if rollout else "",
    }
    return render(request, "deployments/revision_detail.html", context, status=status)


@require_GET
def revision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _revision_page(request, selectors.revision_get(pk=pk))


@require_GET
def revision_rollout(request: HttpRequest, pk: int) -> HttpResponse:
    """The rollout card of the revision page alone, for the page to swap in when the rollout moved."""
    revision = selectors.revision_get(pk=pk)
    context = {"revision": revision, "rollout": selectors.rollout_view(revision=revision, user=request.user)}
    return render(request, "deployments/_rollout.html", context)


_CONTROL_DONE = {
    PROMOTE: "{label} is promoted now: it takes all traffic at the rollout's next tick.",
    PAUSE: "{label} is paused at {weight}% of traffic; no interval is judged until it resumes.",
    RESUME: "{label} resumes; the current interval starts again.",
    ABORT: "Aborting {label}: all traffic goes back to {stable} and {label} rolls back.",
}


def _revision_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Promote now, pause, resume or abort a progressive rollout; a refusal (403, 409) is shown on the revision page
    with its status."""
    revision = selectors.revision_get(pk=pk)
    try:
        revision = rollout_control(actor=request.user, revision=revision, action=action)
    except ApplicationError as exc:
        flash_error(request, exc)
        return _revision_page(request, selectors.revision_get(pk=pk), status=exc.status_code)
    live = revision.deployment.live_revision
    stable = live.label if live and live.pk != revision.pk else "the live revision"
    done = _CONTROL_DONE[action].format(label=revision.label, weight=revision.canary_weight, stable=stable)
    messages.success(request, done)
    return redirect("deployments:revision_detail", pk=pk)


@require_POST
def revision_promote(request: HttpRequest, pk: int) -> HttpResponse:
    return _revision_control(request, pk, PROMOTE)


@require_POST
def revision_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _revision_control(request, pk, PAUSE)


@require_POST
def revision_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _revision_control(request, pk, RESUME)


@require_POST
def revision_abort(request: HttpRequest, pk: int) -> HttpResponse:
    return _revision_control(request, pk, ABORT)


@require_GET
def access(request: HttpRequest) -> HttpResponse:
    require_admin(request.user, "manage access")
    filterset = UserAccessFilterSet(request.GET, queryset=User.objects.filter(is_active=True))
    rows = access_rows(users=filterset.qs)
    context = {
        "rows": [(row, RoleForm.of(row.user)) for row in rows],
        "filter": filterset,
        "grant_form": GrantForm(),
        "roles": Role.choices,
        "environments": selectors.environment_list(),
    }
    return render(request, "deployments/access.html", context)


@require_POST
def access_grant_add(request: HttpRequest) -> HttpResponse:
    form = GrantForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(f"Cannot grant: {form_errors(form)}")
        grant = grant_add(actor=request.user, **form.cleaned_data)
        messages.success(request, f"{grant.user} is now {grant.get_role_display()} in {grant.environment}.")
    except ApplicationError as exc:
        flash_error(request, exc)
    return redirect("deployments:access")


@require_POST
def access_grant_remove(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        grant = grant_get(pk=pk)
        grant_remove(actor=request.user, grant=grant)
        messages.success(request, f"{grant.user} is no longer {grant.get_role_display()} in {grant.environment}.")
    except ApplicationError as exc:
        flash_error(request, exc)
    return redirect("deployments:access")


@require_POST
def access_role_set(request: HttpRequest, username: str) -> HttpResponse:
    form = RoleForm(request.POST)
    try:
        user = active_user_get(username=username)
        if not form.is_valid():
            raise ApplicationError(f"Unknown role; expected one of {', '.join(Role.values)}.")
        user = user_role_set(actor=request.user, user=user, role=form.cleaned_data["role"])
        messages.success(request, f"{user} is now {user.get_role_display()} everywhere.")
    except ApplicationError as exc:
        flash_error(request, exc)
    return redirect("deployments:access")

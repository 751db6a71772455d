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
from apps.deployments.filtersets import DeploymentFilterSet, UserAccessFilterSet
from apps.deployments.forms import DeployForm, GrantForm, RoleForm, RollbackForm


@require_GET
def deployment_list(request: HttpRequest) -> HttpResponse:
    filterset = DeploymentFilterSet(request.GET, queryset=selectors.deployment_list())
    return render(request, "deployments/deployment_list.html", {"filter": filterset, "deployments": filterset.qs})


@require_POST
def deployment_create(request: HttpRequest) -> HttpResponse:
    form = DeployForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cannot deploy: {form_errors(form)}")
        return redirect("registry:model_list")
    model, version = form.cleaned_data["model"], form.cleaned_data["version"]
    try:
        revision = services.deployment_create(
            actor=request.user,
            model_name=model,
            model_version=version,
            environment=form.cleaned_data["environment"].name,
            name=form.cleaned_data["name"],
            input_validation=form.cleaned_data["input_validation"],
        )
    except ApplicationError as exc:
        flash_error(request, exc)
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


@require_GET
def revision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    revision = selectors.revision_get(pk=pk)
    deployment = revision.deployment
    example = None
    if deployment.endpoint_url and deployment.live_revision_id == revision.pk:
        example = selectors.input_example_get(deployment=deployment)
    snippet = selectors.score_snippet(endpoint_url=deployment.endpoint_url, example=example) if example else ""
    context = {"revision": revision, "deployment": deployment, "snippet": snippet}
    return render(request, "deployments/revision_detail.html", context)


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

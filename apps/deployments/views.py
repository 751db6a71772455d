from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError, NotFoundError
from apps.deployments import selectors, services
from apps.deployments.filtersets import DeploymentFilterSet
from apps.deployments.forms import DeployForm, RollbackForm


@require_GET
def deployment_list(request: HttpRequest) -> HttpResponse:
    filterset = DeploymentFilterSet(request.GET, queryset=selectors.deployment_list())
    return render(request, "deployments/deployment_list.html", {"filter": filterset, "deployments": filterset.qs})


@require_POST
def deployment_create(request: HttpRequest) -> HttpResponse:
    form = DeployForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Cannot deploy: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("registry:model_list")
    model, version = form.cleaned_data["model"], form.cleaned_data["version"]
    try:
        revision = services.deployment_create(
            actor=request.user,
            model_name=model,
            model_version=version,
            environment=form.cleaned_data["environment"].name,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("registry:version_detail", name=model, version=version)
    messages.success(
        request, f"Deploying {model} v{version} to {revision.deployment.environment.name} ({revision.label})."
    )
    return redirect("deployments:revision_detail", pk=revision.pk)


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(pk=pk)
    revisions = selectors.revisions_of_deployment(deployment=deployment)
    return render(request, "deployments/deployment_detail.html", {"deployment": deployment, "revisions": revisions})


@require_POST
def deployment_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(pk=pk)
    form = RollbackForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError("Choose the revision to roll back to.")
        target = deployment.revisions.filter(number=form.cleaned_data["revision"]).first()
        if target is None:
            raise NotFoundError(f"{deployment} has no revision r{form.cleaned_data['revision']}.")
        revision = services.deployment_rollback(actor=request.user, deployment=deployment, to_revision=target)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:deployment_detail", pk=pk)
    messages.success(request, f"Rolling back to {target.label} as {revision.label}.")
    return redirect("deployments:revision_detail", pk=revision.pk)


@require_POST
def deployment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(pk=pk)
    try:
        services.deployment_delete(actor=request.user, deployment=deployment)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:deployment_detail", pk=pk)
    messages.success(request, f"Deleting {deployment}: its scoring servers are being torn down.")
    return redirect(reverse("deployments:deployment_detail", kwargs={"pk": pk}))


@require_GET
def revision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    revision = selectors.revision_get(pk=pk)
    return render(
        request, "deployments/revision_detail.html", {"revision": revision, "deployment": revision.deployment}
    )

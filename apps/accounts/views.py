"""Pages: your API tokens, service accounts (admins), the audit trail (reviewers and admins)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts import selectors, services
from apps.accounts.exports import audit_csv_response, audit_json_response
from apps.accounts.filtersets import AuditEventFilterSet
from apps.accounts.forms import ServiceAccountCreateForm, ServiceAccountUpdateForm, TokenCreateForm
from apps.accounts.services import CreatedToken
from apps.common.errors import ApplicationError
from apps.common.forms import form_errors

AUDIT_PAGE_SIZE = 50


# ---------------------------------------------------------------------------------------------------- tokens


def _token_page(request: HttpRequest, *, form: TokenCreateForm, created: CreatedToken | None = None, status=200):
    context = {
        "tokens": selectors.api_token_list(user=request.user),
        "form": form,
        "created": created,
        "now": timezone.now(),
    }
    return render(request, "accounts/token_list.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """Your tokens; POST creates one and answers with the key, the one time it is shown (never redirected
    to, never stored in the session)."""
    if request.method == "GET":
        return _token_page(request, form=TokenCreateForm())
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _token_page(request, form=form, status=400)
    try:
        created = services.api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=form.expires_at(),
            actor=request.user,
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _token_page(request, form=form, status=exc.status_code)
    return _token_page(request, form=TokenCreateForm(), created=created)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = services.api_token_revoke(actor=request.user, token=selectors.api_token_get(user=request.user, pk=pk))
    messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked; it no longer works.")
    return redirect("accounts:token_list")


# ---------------------------------------------------------------------------------------------------- service accounts


@require_http_methods(["GET", "POST"])
def service_account_list(request: HttpRequest) -> HttpResponse:
    accounts = selectors.service_account_list(actor=request.user)  # 403 for non-admins
    form = ServiceAccountCreateForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                account = services.service_account_create(actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Service account {account.username} created. Issue it a token below.")
                return redirect("accounts:service_account_detail", pk=account.pk)
    status = 400 if form.errors else 200
    return render(request, "accounts/service_account_list.html", {"accounts": accounts, "form": form}, status=status)


def _service_account_page(request: HttpRequest, pk: int, *, created=None, token_form=None, status=200):
    account = selectors.service_account_get(actor=request.user, pk=pk)
    context = {
        "account": account,
        "tokens": account.api_tokens.order_by("-created_at", "-id"),
        "token_form": token_form or TokenCreateForm(),
        "edit_form": ServiceAccountUpdateForm(
            initial={"role": account.role, "description": account.description, "is_active": account.is_active}
        ),
        "created": created,
        "now": timezone.now(),
    }
    return render(request, "accounts/service_account_detail.html", context, status=status)


@never_cache
@require_GET
def service_account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _service_account_page(request, pk)


@require_POST
def service_account_update(request: HttpRequest, pk: int) -> HttpResponse:
    form = ServiceAccountUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cannot change the service account: {form_errors(form)}")
        return redirect("accounts:service_account_detail", pk=pk)
    account = services.service_account_update(actor=request.user, account=pk, **form.cleaned_data)
    messages.success(request, f"Service account {account.username} saved.")
    return redirect("accounts:service_account_detail", pk=pk)


@never_cache
@require_POST
def service_account_token_create(request: HttpRequest, pk: int) -> HttpResponse:
    account = selectors.service_account_get(actor=request.user, pk=pk)
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _service_account_page(request, pk, token_form=form, status=400)
    try:
        created = services.api_token_create(
            user=account,
            name=form.cleaned_data["name"],
            expires_at=form.expires_at(),
            actor=request.user,
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _service_account_page(request, pk, token_form=form, status=exc.status_code)
    return _service_account_page(request, pk, created=created)


@require_POST
def service_account_token_revoke(request: HttpRequest, pk: int, token_pk: int) -> HttpResponse:
    account = selectors.service_account_get(actor=request.user, pk=pk)
    token = account.api_tokens.filter(pk=token_pk).first()
    if token is None:
        return render(request, "common/error.html", {"title": "Not found", "error": None}, status=404)
    services.api_token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token {token.name} ({token.prefix}…) of {account.username} is revoked.")
    return redirect("accounts:service_account_detail", pk=pk)


# ---------------------------------------------------------------------------------------------------- audit


def _audit_filter(request: HttpRequest) -> AuditEventFilterSet:
    return AuditEventFilterSet(request.GET, queryset=selectors.audit_event_list(actor=request.user))


@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    filterset = _audit_filter(request)
    page = Paginator(filterset.qs.select_related(None), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode(), "filtered": bool(query)}
    return render(request, "accounts/audit_list.html", context)


def _valid_audit_filter(request: HttpRequest) -> AuditEventFilterSet:
    """The filters of an export; a bad one is refused rather than ignored, which would export more than asked."""
    filterset = _audit_filter(request)
    if not filterset.is_valid():
        raise ApplicationError(f"Cannot export: {form_errors(filterset.form)}", code="invalid_filter")
    return filterset


@require_GET
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    return audit_csv_response(_valid_audit_filter(request).qs)


@require_GET
def audit_export_json(request: HttpRequest) -> HttpResponse:
    return audit_json_response(_valid_audit_filter(request).qs)

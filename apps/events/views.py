"""The Channels and Deliveries pages: thin callers of ``selectors`` and ``services``, like the API."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.common.errors import ApplicationError
from apps.common.forms import form_errors
from apps.events import selectors, services
from apps.events.catalogue import EVENTS
from apps.events.filtersets import DeliveryFilterSet
from apps.events.forms import ChannelCreateForm, ChannelUpdateForm


@never_cache
@require_http_methods(["GET", "POST"])
def channel_list(request: HttpRequest) -> HttpResponse:
    channels = selectors.channel_list(actor=request.user)  # 403 for who manages no channel anywhere
    can = selectors.events_permissions(request.user)
    environments = list(selectors.channel_environments(request.user).values_list("name", flat=True))
    form = ChannelCreateForm(request.POST or None, environments=environments, allow_global=can.manage_global)
    if request.method == "POST" and form.is_valid():
        try:
            channel = services.channel_create(actor=request.user, **form.service_kwargs())
        except ApplicationError as exc:
            for field, errors in exc.extra.get("errors", {}).items():
                form.add_error(field if field in form.fields else None, errors)
            if not exc.extra.get("errors"):
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Channel {channel.name} added.")
            return redirect("events:channel_list")
    context = {
        "channels": channels,
        "form": form,
        "can": can,
        "events": EVENTS,
    }
    return render(request, "events/channel_list.html", context, status=400 if form.errors else 200)


@require_POST
def channel_update(request: HttpRequest, pk: int) -> HttpResponse:
    channel = selectors.channel_get(actor=request.user, pk=pk)
    form = ChannelUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cannot change channel {channel.name}: {form_errors(form)}")
        return redirect("events:channel_list")
    try:
        services.channel_update(actor=request.user, channel=channel, **form.service_kwargs())
    except ApplicationError as exc:
        messages.error(request, f"Cannot change channel {channel.name}: {exc.message}")
    else:
        messages.success(request, f"Channel {channel.name} saved.")
    return redirect("events:channel_list")


@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    channel = selectors.channel_get(actor=request.user, pk=pk)
    services.channel_delete(actor=request.user, channel=channel)
    messages.success(request, f"Channel {channel.name} deleted.")
    return redirect("events:channel_list")


@never_cache
@require_GET
def delivery_list(request: HttpRequest) -> HttpResponse:
    filterset = DeliveryFilterSet(request.GET or None, queryset=selectors.delivery_list(actor=request.user))
    page = Paginator(filterset.qs, 50).get_page(request.GET.get("page"))
    return render(request, "events/delivery_list.html", {"filterset": filterset, "page": page})


@never_cache
@require_GET
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.delivery_get(actor=request.user, pk=pk)
    return render(request, "events/delivery_detail.html", {"delivery": delivery})


@require_POST
def delivery_resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = selectors.delivery_get(actor=request.user, pk=pk)
    resent = services.delivery_resend(actor=request.user, delivery=delivery)
    messages.success(request, f"Resending: delivery #{resent.pk} is queued.")
    return redirect("events:delivery_detail", pk=resent.pk)

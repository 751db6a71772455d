from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from apps.common import views as common_views
from apps.common.schema_view import CachedSchemaView
from controlplane.status import STATUS_CHECKS

api_v1 = [
    path("", include("apps.registry.api.urls")),
    path("", include("apps.deployments.api.urls")),
    path("", include("apps.promotions.api.urls")),
    path("", include("apps.monitoring.api.urls")),
    path("", include("apps.alerts.api.urls")),
    path("", include("apps.accounts.api.urls")),
    path("", include("apps.events.api.urls")),
]

urlpatterns = [
    path("", require_GET(RedirectView.as_view(pattern_name="registry:model_list")), name="home"),
    path("status/", common_views.system_status, {"checks": STATUS_CHECKS}, name="status"),
    path("healthz", common_views.healthz, name="healthz"),
    path("readyz", common_views.readyz, name="readyz"),
    path("accounts/", include("apps.accounts.urls")),
    path("audit/", include("apps.accounts.audit_urls")),
    path("", include("apps.registry.urls")),
    path("", include("apps.deployments.urls")),
    path("", include("apps.promotions.urls")),
    path("", include("apps.monitoring.urls")),
    path("", include("apps.alerts.urls")),
    path("", include("apps.events.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", CachedSchemaView.as_view(), name="api-schema"),
    # The split view serves its init script from a URL: the Content-Security-Policy allows no inline script.
    path("docs/api/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
]

handler404 = "apps.common.views.page_not_found"

"""The OpenAPI schema view (apart from ``api.py``, which drf-spectacular's views import through the settings)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request

__all__ = ["CachedSchemaView"]


class CachedSchemaView(SpectacularAPIView):
    """The OpenAPI schema, generated and rendered once per process instead of on every request.

    Generating it walks every view and serializer (~250-500 ms here) and rendering its 150 KB another ~100 ms,
    and the API docs page fetches it on every load; the schema only changes with the code, which restarts the
    process. It is the same for every caller (drf-spectacular's ``SERVE_PUBLIC``), so one copy serves everyone;
    ``controlplane.warmup`` generates it at start-up."""

    _generated: dict[tuple[str | None, str | None], Any] = {}
    _rendered: dict[tuple, bytes] = {}

    @classmethod
    def generate(cls, version: str | None = None, lang: str | None = None, request: Request | None = None) -> Any:
        """The schema for ``version`` (and ``lang``), generated on first use."""
        key = (version, lang)
        if key not in cls._generated:
            generator = cls.generator_class(urlconf=cls.urlconf, api_version=version, patterns=cls.patterns)
            cls._generated[key] = generator.get_schema(request=request, public=cls.serve_public)
        return cls._generated[key]

    @classmethod
    def prerender(cls) -> None:
        """Generate the schema and render it in every format this view offers (start-up, ~0.7 s)."""
        data = cls.generate()
        for renderer_class in cls.renderer_classes:
            media_type = renderer_class.media_type
            cls._rendered[(None, None, renderer_class, media_type)] = renderer_class().render(data, media_type)

    def _get_schema_response(self, request: Request) -> HttpResponse:
        version = self.api_version or request.version or self._get_version_parameter(request)
        lang = request.GET.get("lang")
        renderer, media_type = request.accepted_renderer, request.accepted_media_type
        key = (version, lang, type(renderer), media_type)  # as prerender() files them
        if key not in self._rendered:
            data = self.generate(version, lang, request)
            self._rendered[key] = renderer.render(data, media_type, {"request": request, "view": self})
        content_type = f"{media_type}; charset={renderer.charset}" if renderer.charset else media_type
        response = HttpResponse(self._rendered[key], content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="{self._get_filename(request, version)}"'
        return response

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.paging import TokenCursor
from apps.deployments.selectors import live_by_version
from apps.registry import selectors
from apps.registry.api import serializers as s
from apps.registry.client import MODEL_ORDER
from apps.registry.versions import compared_versions

PAGE_PARAMS = [
    OpenApiParameter("page_token", OpenApiTypes.STR, description="Token from the previous answer's `next` link."),
    OpenApiParameter("history", OpenApiTypes.STR, description="Kept in `next`/`previous` links; do not build by hand."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1-100, default 25."),
]


def _page_size(request: Request) -> int | None:
    raw = request.query_params.get("page_size")
    if raw is None:
        return None
    from rest_framework.exceptions import ValidationError

    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100:
        raise ValidationError({"page_size": [f"Must be an integer from 1 to 100, not {raw!r}."]})
    return int(raw)


def _links(request: Request, cursor: TokenCursor, next_token: str | None) -> dict[str, str | None]:
    base = request.build_absolute_uri(request.path)
    next_query = cursor.next_query(request.query_params, next_token)
    previous_query = cursor.previous_query(request.query_params)
    return {
        "next": base + next_query if next_query else None,
        "previous": base + previous_query if previous_query else None,
    }


def _live_in(revisions) -> list[dict]:
    return [
        {
            "environment": r.deployment.environment.name,
            "deployment": r.deployment_id,
            "revision": r.label,
            "since": r.finished_at,
        }
        for r in revisions
    ]


class ModelListApi(APIView):
    @extend_schema(
        operation_id="models_list",
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="Part of the model name, case-insensitive."),
            OpenApiParameter("order", OpenApiTypes.STR, enum=list(MODEL_ORDER), description="Default `updated`."),
            *PAGE_PARAMS,
        ],
        responses=s.ModelPageSerializer,
    )
    def get(self, request: Request) -> Response:
        order = request.query_params.get("order", "updated")
        if order not in MODEL_ORDER:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"order": [f"Unknown order {order!r}; use one of {', '.join(MODEL_ORDER)}."]})
        cursor = TokenCursor.from_query(request.query_params)
        page = selectors.registered_model_list(
            search=request.query_params.get("search", "")[:200],
            order=order,
            page_token=cursor.token or None,
            page_size=_page_size(request),
        )
        base_url = request.build_absolute_uri("/").rstrip("/")
        results = s.ModelSerializer(page.items, many=True, context={"base_url": base_url}).data
        return Response({"count": None, **_links(request, cursor, page.next_token), "results": results})


class ModelDetailApi(APIView):
    @extend_schema(operation_id="models_retrieve", responses=s.ModelSerializer)
    def get(self, request: Request, name: str) -> Response:
        model = selectors.registered_model_get(name=name)
        base_url = request.build_absolute_uri("/").rstrip("/")
        return Response(s.ModelSerializer(model, context={"base_url": base_url}).data)


class VersionListApi(APIView):
    @extend_schema(operation_id="models_versions_list", parameters=PAGE_PARAMS, responses=s.VersionPageSerializer)
    def get(self, request: Request, name: str) -> Response:
        cursor = TokenCursor.from_query(request.query_params)
        page = selectors.model_version_list(name=name, page_token=cursor.token or None, page_size=_page_size(request))
        if not page.items and not cursor.token:
            selectors.registered_model_get(name=name)  # an unknown model is a 404, not an empty list
        live = live_by_version(model_name=name)
        items = [{**asdict(v), "live_in": _live_in(live.get(v.version, []))} for v in page.items]
        results = s.VersionListItemSerializer(items, many=True).data
        return Response({"count": None, **_links(request, cursor, page.next_token), "results": results})


class VersionDetailApi(APIView):
    @extend_schema(operation_id="models_versions_retrieve", responses=s.VersionDetailSerializer)
    def get(self, request: Request, name: str, version: str) -> Response:
        detail = selectors.model_version_detail_get(name=name, version=version)
        data = {
            **asdict(detail.version),
            "run": detail.run,
            "signature": detail.signature,
            "signature_error": detail.signature_error,
        }
        return Response(s.VersionDetailSerializer(data).data)


class ModelCompareApi(APIView):
    @extend_schema(
        operation_id="models_compare",
        parameters=[
            OpenApiParameter(
                "versions",
                OpenApiTypes.STR,
                required=True,
                description=f"Comma-separated (or repeated) versions, at most {selectors.MAX_COMPARED_VERSIONS}.",
            )
        ],
        responses=s.VersionsComparisonSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        """Versions side by side, as the compare page shows them: metrics with the best value by direction,
        params, and where each version serves now."""
        comparison = selectors.model_versions_compare(name=name, versions=compared_versions(request.query_params))
        live = live_by_version(model_name=comparison.model.name)
        data = {
            "model": comparison.model.name,
            "versions": [
                {
                    "version": v.version,
                    "aliases": v.aliases,
                    "run_id": v.run_id,
                    "run_readable": comparison.runs[v.version] is not None,
                    "live_in": _live_in(live.get(v.version, [])),
                }
                for v in comparison.versions
            ],
            "metrics": [
                {"name": m.name, "better": m.direction, "values": m.values, "best": sorted(m.best)}
                for m in comparison.metrics
            ],
            "params": [asdict(p) for p in comparison.params],
        }
        return Response(s.VersionsComparisonSerializer(data).data)


class RunDetailApi(APIView):
    @extend_schema(operation_id="runs_retrieve", responses=s.RunSerializer)
    def get(self, request: Request, run_id: str) -> Response:
        return Response(s.RunSerializer(selectors.run_get(run_id=run_id)).data)

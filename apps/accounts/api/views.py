"""``/api/v1/tokens/`` (your own tokens), ``/api/v1/service-accounts/`` (admins), ``/api/v1/audit/``
(reviewers and admins). The same services and selectors as the pages."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.api.serializers import (
    AuditEventSerializer,
    CreatedTokenSerializer,
    ServiceAccountCreateInputSerializer,
    ServiceAccountSerializer,
    ServiceAccountUpdateInputSerializer,
    TokenCreateInputSerializer,
    TokenSerializer,
)
from apps.accounts.exports import audit_csv_response, audit_json_response
from apps.accounts.filtersets import AuditEventFilterSet
from apps.accounts.models import ApiToken, AuditEvent, User
from apps.accounts.services import CreatedToken
from apps.common.paging import Pagination


def _created(request: Request, created: CreatedToken) -> Response:
    data = {**TokenSerializer(created.token).data, "key": created.key}  # the only answer that has the key
    return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------------------------- own tokens


class TokenListCreateApi(generics.ListAPIView):
    """Your API tokens, newest first (never their keys); POST creates one and answers with its key, once."""

    serializer_class = TokenSerializer
    pagination_class = Pagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return selectors.api_token_list(user=self.request.user).select_related("user")

    @extend_schema(operation_id="tokens_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="tokens_create", request=TokenCreateInputSerializer, responses={201: CreatedTokenSerializer}
    )
    def post(self, request: Request) -> Response:
        data = TokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.api_token_create(
            user=request.user,
            name=data.validated_data["name"],
            expires_at=data.validated_data["expires_at"],
            actor=request.user,
        )
        return _created(request, created)


class TokenDetailApi(APIView):
    """One of your tokens. DELETE revokes it (the row stays, marked revoked)."""

    @extend_schema(operation_id="tokens_retrieve", responses=TokenSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(TokenSerializer(selectors.api_token_get(user=request.user, pk=pk)).data)

    @extend_schema(operation_id="tokens_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        token = selectors.api_token_get(user=request.user, pk=pk)
        services.api_token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRevokeApi(APIView):
    """Revoke one of your tokens; revoking twice changes nothing."""

    @extend_schema(operation_id="tokens_revoke", request=None, responses=TokenSerializer)
    def post(self, request: Request, pk: int) -> Response:
        token = selectors.api_token_get(user=request.user, pk=pk)
        token = services.api_token_revoke(actor=request.user, token=token)
        return Response(TokenSerializer(token).data)


# ---------------------------------------------------------------------------------------------------- service accounts


class ServiceAccountListCreateApi(generics.ListAPIView):
    """Service accounts for CI (admins only; others get 403 ``admin_required``). POST creates one."""

    serializer_class = ServiceAccountSerializer
    pagination_class = Pagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return User.objects.none()
        return selectors.service_account_list(actor=self.request.user)

    @extend_schema(operation_id="service_accounts_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="service_accounts_create",
        request=ServiceAccountCreateInputSerializer,
        responses={201: ServiceAccountSerializer},
    )
    def post(self, request: Request) -> Response:
        selectors.service_account_list(actor=request.user)  # 403 before validating anything
        data = ServiceAccountCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.service_account_create(actor=request.user, **data.validated_data)
        return _account(request, account.pk, status.HTTP_201_CREATED)


def _account(request: Request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    account = selectors.service_account_get(actor=request.user, pk=pk)
    data = ServiceAccountSerializer(account, context={"request": request}).data
    return Response(data, status=code, headers={"Location": data["url"]})


class ServiceAccountDetailApi(APIView):
    @extend_schema(operation_id="service_accounts_retrieve", responses=ServiceAccountSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _account(request, pk)

    @extend_schema(
        operation_id="service_accounts_partial_update",
        request=ServiceAccountUpdateInputSerializer,
        responses=ServiceAccountSerializer,
    )
    def patch(self, request: Request, pk: int) -> Response:
        selectors.service_account_get(actor=request.user, pk=pk)
        data = ServiceAccountUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.service_account_update(actor=request.user, account=pk, **data.validated_data)
        return _account(request, pk)


class ServiceAccountTokenListCreateApi(generics.ListAPIView):
    """A service account's tokens (admins only); POST issues one and answers with its key, once."""

    serializer_class = TokenSerializer
    pagination_class = Pagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        account = selectors.service_account_get(actor=self.request.user, pk=self.kwargs["pk"])
        return account.api_tokens.select_related("user").order_by("-created_at", "-id")

    @extend_schema(operation_id="service_accounts_tokens_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="service_accounts_tokens_create",
        request=TokenCreateInputSerializer,
        responses={201: CreatedTokenSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        account = selectors.service_account_get(actor=request.user, pk=pk)
        data = TokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.api_token_create(
            user=account,
            name=data.validated_data["name"],
            expires_at=data.validated_data["expires_at"],
            actor=request.user,
        )
        return _created(request, created)


def _account_token(request: Request, pk: int, token_pk: int) -> ApiToken:
    account = selectors.service_account_get(actor=request.user, pk=pk)
    return selectors.api_token_get(user=account, pk=token_pk)


class ServiceAccountTokenDetailApi(APIView):
    @extend_schema(operation_id="service_accounts_tokens_retrieve", responses=TokenSerializer)
    def get(self, request: Request, pk: int, token_pk: int) -> Response:
        return Response(TokenSerializer(_account_token(request, pk, token_pk)).data)

    @extend_schema(operation_id="service_accounts_tokens_destroy", responses={204: None})
    def delete(self, request: Request, pk: int, token_pk: int) -> Response:
        token = _account_token(request, pk, token_pk)
        services.api_token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceAccountTokenRevokeApi(APIView):
    @extend_schema(operation_id="service_accounts_tokens_revoke", request=None, responses=TokenSerializer)
    def post(self, request: Request, pk: int, token_pk: int) -> Response:
        token = _account_token(request, pk, token_pk)
        token = services.api_token_revoke(actor=request.user, token=token)
        return Response(TokenSerializer(token).data)


# ---------------------------------------------------------------------------------------------------- audit


class _AuditQuery:
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return selectors.audit_event_list(actor=self.request.user)


class AuditEventListApi(_AuditQuery, generics.ListAPIView):
    """The audit trail, newest first (reviewers and admins; others get 403 ``audit_forbidden``)."""

    serializer_class = AuditEventSerializer
    pagination_class = Pagination

    @extend_schema(operation_id="audit_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class _AnyAccept(BaseContentNegotiation):
    """The exports answer a file whatever the Accept header says; errors are still JSON."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AuditExportCsvApi(_AuditQuery, generics.GenericAPIView):
    """The filtered audit trail as one CSV file, streamed (no pagination)."""

    content_negotiation_class = _AnyAccept
    serializer_class = AuditEventSerializer
    pagination_class = None

    @extend_schema(operation_id="audit_export_csv", responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)})
    def get(self, request: Request):
        return audit_csv_response(self.filter_queryset(self.get_queryset()))


class AuditExportJsonApi(_AuditQuery, generics.GenericAPIView):
    """The filtered audit trail as one JSON array, streamed (no pagination)."""

    content_negotiation_class = _AnyAccept
    serializer_class = AuditEventSerializer
    pagination_class = None

    @extend_schema(operation_id="audit_export_json", responses={200: AuditEventSerializer(many=True)})
    def get(self, request: Request):
        return audit_json_response(self.filter_queryset(self.get_queryset()))

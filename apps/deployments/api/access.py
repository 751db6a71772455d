"""Access over the API: per-environment grants and global roles. Admins write; everyone reads their own."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.permissions import require_admin
from apps.accounts.selectors import active_user_get
from apps.accounts.services import user_role_set
from apps.common.api import IF_MATCH, check_if_match, etag_of
from apps.deployments.access import grant_add, grant_get, grant_remove, grants_visible_to, user_access_get
from apps.deployments.filtersets import GrantFilterSet, UserAccessFilterSet
from apps.deployments.models import EnvironmentGrant
from apps.deployments.selectors import environment_get


class GrantSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    environment = serializers.CharField(source="environment.name")
    granted_by = serializers.CharField(source="granted_by.username", default=None, allow_null=True)

    class Meta:
        model = EnvironmentGrant
        fields = ["id", "user", "environment", "role", "source", "granted_by", "created_at"]
        read_only_fields = fields


class GrantInputSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="Username.")
    environment = serializers.CharField(max_length=63)
    role = serializers.ChoiceField(choices=Role.choices)


class UserAccessSerializer(serializers.ModelSerializer):
    grants = GrantSerializer(source="environment_grants", many=True, read_only=True)
    email = serializers.CharField(read_only=True, help_text="May be empty.")

    class Meta:
        model = User
        fields = ["username", "email", "role", "grants"]
        read_only_fields = ["username", "email", "grants"]


class RoleInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class GrantListCreateApi(generics.ListAPIView):
    """Per-environment grants. Admins see everyone's; others see their own."""

    serializer_class = GrantSerializer
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = GrantFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return EnvironmentGrant.objects.none()
        return grants_visible_to(self.request.user)

    @extend_schema(operation_id="grants_create", request=GrantInputSerializer, responses={201: GrantSerializer})
    def post(self, request: Request) -> Response:
        require_admin(request.user, "manage access")
        data = GrantInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grant = grant_add(
            actor=request.user,
            user=active_user_get(username=data.validated_data["user"], from_input=True),
            environment=environment_get(name=data.validated_data["environment"]),
            role=data.validated_data["role"],
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class GrantDetailApi(APIView):
    @extend_schema(operation_id="grants_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        require_admin(request.user, "manage access")
        grant_remove(actor=request.user, grant=grant_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserAccessListApi(generics.ListAPIView):
    """Every active user with their global role and grants (admins only)."""

    serializer_class = UserAccessSerializer
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = UserAccessFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return User.objects.none()
        require_admin(self.request.user, "manage access")
        return (
            User.objects.filter(is_active=True).order_by("username").prefetch_related("environment_grants__environment")
        )


class UserAccessDetailApi(APIView):
    def _user(self, request: Request, username: str) -> User:
        return user_access_get(actor=request.user, username=username)

    @staticmethod
    def _answer(user: User, code: int = status.HTTP_200_OK) -> Response:
        return Response(UserAccessSerializer(user).data, status=code, headers={"ETag": etag_of(user.pk, user.role)})

    @extend_schema(operation_id="users_access_retrieve", responses=UserAccessSerializer)
    def get(self, request: Request, username: str) -> Response:
        """One user's global role and grants: admins for anyone, everyone for themselves."""
        return self._answer(self._user(request, username))

    @extend_schema(
        operation_id="users_access_role_set",
        request=RoleInputSerializer,
        parameters=[IF_MATCH],
        responses=UserAccessSerializer,
    )
    def patch(self, request: Request, username: str) -> Response:
        """Change the global role (admins only). Send the GET's `ETag` as `If-Match` to not overwrite a
        concurrent change."""
        require_admin(request.user, "manage access")
        user = self._user(request, username)
        check_if_match(request, etag_of(user.pk, user.role))
        data = RoleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_role_set(actor=request.user, user=user, role=data.validated_data["role"])
        return self._answer(user)

"""Who may call the Kubernetes API emulator, and what they may do: authentication and RBAC as the API server does them.

Authentication (``Authenticator``): bearer tokens only, as our worker sends them.

- static tokens (``add_token``), like ``--token-auth-file``;
- service account tokens the emulator signs itself (``service_account_token``: a JWT with ``exp``, as projected
  tokens are), so a test can rotate one and let another expire;
- Microsoft Entra tokens for AKS (``trust_entra``): a JWT signed by a trusted issuer's key, for the audience of the
  AKS AAD server application, not expired; the user is the token's ``oid`` (what a RoleBinding names for a managed
  identity), its groups the ``groups`` claim.

A request with a token none of them accepts, or an expired one, is answered 401 with the API server's Status body
(``"message": "Unauthorized"``); a request without a token is anonymous (``system:anonymous``) when the emulator
allows that (the shared test emulator does, like a development API server with ``--anonymous-auth``) and 401
otherwise (AKS).

Authorization (``Rbac``): ``AlwaysAllow`` or ``RBAC``. RBAC reads the Roles, RoleBindings, ClusterRoles and
ClusterRoleBindings stored in the emulator (created through the API like any object, e.g. from the manifests in
deploy/kubernetes), matches subjects (User, Group, ServiceAccount) and rules (apiGroups, resources with
``resource/subresource``, verbs, resourceNames, ``*``), gives ``system:masters`` everything and every authenticated
user the discovery endpoints, and refuses the rest with 403 and the API server's message:
``deployments.apps "iris" is forbidden: User "..." cannot get resource "deployments" in API group "apps" in the
namespace "ns"``. A server-side apply that creates an object is also checked for ``create``, as the API server does.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from kmock import KubernetesError

__all__ = ["AKS_AUDIENCE", "Authenticator", "Rbac", "UserInfo", "forbidden", "unauthorized"]

AKS_AUDIENCE = "6dae42f8-4368-4678-94ff-3960e28e3630"  # the AKS AAD server application
RBAC_GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def unauthorized() -> KubernetesError:
    return KubernetesError(status=401, reason="Unauthorized", message="Unauthorized")


def forbidden(user: UserInfo, verb: str, group: str, resource: str, sub: str, namespace: str | None, name: str | None):
    """The API server's 403, word for word."""
    qualified = f"{resource}.{group}" if group else resource
    target = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    full = f"{resource}/{sub}" if sub else resource
    message = f'{target} is forbidden: User "{user.name}" cannot {verb} resource "{full}" in API group "{group}"'
    message += f" {scope}"
    details = {"group": group, "kind": resource, **({"name": name} if name else {})}
    return KubernetesError(status=403, reason="Forbidden", message=message, details=details)


@dataclass
class _Entra:
    key: RSAKey
    issuer: str
    audience: str


@dataclass
class Authenticator:
    anonymous: bool = True
    static: dict[str, UserInfo] = field(default_factory=dict)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "sa-key", "alg": "RS256", "use": "sig"})
    )
    entra: list[_Entra] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # the user of every authenticated request, in order
    refused: list[str] = field(default_factory=list)  # why each refused token was refused

    def add_token(self, token: str, user: str, groups: tuple[str, ...] = ()) -> str:
        self.static[token] = UserInfo(user, (*groups, "system:authenticated"))
        return token

    def service_account_token(
        self, namespace: str, name: str, *, lifetime: float = 3600, audience: str = SERVICE_ACCOUNT_ISSUER
    ) -> str:
        """A projected service account token for ``namespace/name``, valid for ``lifetime`` seconds; for Entra
        (workload identity) the audience is ``api://AzureADTokenExchange``."""
        now = int(time.time())
        claims = {
            "iss": SERVICE_ACCOUNT_ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}},
        }
        return jwt.encode({"alg": "RS256", "kid": "sa-key"}, claims, self.key)

    def trust_entra(self, public_key: RSAKey, issuer: str, audience: str = AKS_AUDIENCE) -> None:
        """Accept Entra tokens from ``issuer`` signed by ``public_key`` (the cluster's Entra ID integration)."""
        self.entra.append(_Entra(public_key, issuer, audience))

    def authenticate(self, authorization: str) -> UserInfo:
        """The user a request's Authorization header proves; raises the 401 otherwise."""
        if not authorization:
            if self.anonymous:
                return ANONYMOUS
            self.refused.append("no token")
            raise unauthorized()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            self.refused.append("not a bearer token")
            raise unauthorized()
        user = self.static.get(token) or self._jwt_user(token)
        if user is None:
            raise unauthorized()
        self.seen.append(user.name)
        return user

    def _jwt_user(self, token: str) -> UserInfo | None:
        trusted = [(self.key, SERVICE_ACCOUNT_ISSUER, ""), *((e.key, e.issuer, e.audience) for e in self.entra)]
        for key, issuer, audience in trusted:
            try:
                claims = jwt.decode(token, key, algorithms=["RS256"]).claims
            except (JoseError, ValueError):
                continue  # not signed by this issuer's key
            if claims.get("iss") != issuer:
                continue
            if issuer == SERVICE_ACCOUNT_ISSUER and SERVICE_ACCOUNT_ISSUER not in (claims.get("aud") or []):
                self.refused.append(f"service account token for {claims.get('aud')}")
                return None
            audiences = claims.get("aud")
            audiences = audiences if isinstance(audiences, list) else [audiences]
            if audience and audience not in audiences:
                self.refused.append(f"audience {audiences}")
                return None
            if int(claims.get("exp") or 0) <= time.time():
                self.refused.append("expired")
                return None
            if issuer == SERVICE_ACCOUNT_ISSUER:
                namespace = str(claims["sub"]).split(":")[2]
                groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
                return UserInfo(str(claims["sub"]), groups)
            groups = tuple(str(g) for g in claims.get("groups") or ())
            return UserInfo(str(claims.get("oid") or claims.get("sub")), (*groups, "system:authenticated"))
        self.refused.append("unknown token")
        return None


# ---------------------------------------------------------------------------------------------- RBAC
def _matches_subject(subject: dict[str, Any], user: UserInfo, binding_namespace: str | None) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
        return False
    if group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
        return False
    resources = rule.get("resources", [])
    base, _, sub = resource.partition("/")
    if resource not in resources and "*" not in resources and not (sub and f"*/{sub}" in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


@dataclass
class Rbac:
    """``mode`` is ``AlwaysAllow`` or ``RBAC``; ``objects`` returns the stored objects of an RBAC kind (plural)."""

    mode: str = "AlwaysAllow"
    decisions: list[tuple[str, str, str, str, str, bool]] = field(default_factory=list)  # user, verb, group, res, ns

    def allowed(self, objects, user: UserInfo, verb: str, group: str, resource: str, namespace: str | None, name):
        if self.mode == "AlwaysAllow" or "system:masters" in user.groups:
            return True
        decision = any(
            _rule_allows(rule, verb, group, resource, name) for rule in self._rules(objects, user, namespace)
        )
        self.decisions.append((user.name, verb, group, resource, namespace or "", decision))
        return decision

    @staticmethod
    def _rules(objects, user: UserInfo, namespace: str | None):
        roles = {(r["metadata"].get("namespace"), r["metadata"]["name"]): r for r in objects("roles")}
        cluster_roles = {r["metadata"]["name"]: r for r in objects("clusterroles")}
        for binding in objects("clusterrolebindings"):
            if any(_matches_subject(s, user, None) for s in binding.get("subjects") or []):
                yield from (cluster_roles.get(binding["roleRef"]["name"]) or {}).get("rules") or []
        if namespace is None:
            return
        for binding in objects("rolebindings"):
            if binding["metadata"].get("namespace") != namespace:
                continue
            if not any(_matches_subject(s, user, namespace) for s in binding.get("subjects") or []):
                continue
            ref = binding["roleRef"]
            role = roles.get((namespace, ref["name"])) if ref["kind"] == "Role" else cluster_roles.get(ref["name"])
            yield from (role or {}).get("rules") or []

    def granted(self, user: str) -> set[tuple[str, str, str]]:
        """(verb, group, resource) of every request ``user`` was allowed to make."""
        return {(verb, group, resource) for who, verb, group, resource, _, ok in self.decisions if who == user and ok}

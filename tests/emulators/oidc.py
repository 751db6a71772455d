"""A small OpenID Connect provider for the tests, faithful where a relying party looks: discovery document,
``/authorize`` (redirects back with code and state), ``/token`` (client secret checked, code single-use,
redirect_uri checked, an RS256 id_token with iss, sub, aud, exp, iat, nonce, groups), ``/jwks`` and
``/userinfo``. Runs on 127.0.0.1 in a thread.

Tests choose who signs in (``next_identity``) and can make the provider misbehave the way a forged or stale
token would (``tamper``): another key, another audience, another issuer, a replaced nonce, an expired token.

It is also Microsoft Entra ID's token endpoint for workload identity (``/<tenant>/oauth2/v2.0/token``): the
client credentials grant with a federated client assertion (a Kubernetes service account token), checked against
the app's federated identity credentials (``federate``: issuer, subject, audience, the issuer's key, expiry) and
answered with an RS256 access token for the ``<resource>/.default`` scope asked (``oid``, ``appid``, ``tid``,
``exp`` after ``access_token_lifetime`` seconds), as azure-identity's ``WorkloadIdentityCredential`` expects. Refusals
carry Entra's AADSTS codes. With ``certificate_dir`` it is served over HTTPS (``ca`` is the certificate to trust),
which azure-identity requires of an authority.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

__all__ = ["OidcProvider", "Identity", "Federation"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Identity:
    sub: str
    preferred_username: str
    email: str = ""
    name: str = ""
    groups: list[str] = field(default_factory=list)


@dataclass
class Federation:
    """A federated identity credential of an app (a managed identity): whose tokens it exchanges, and who it is."""

    issuer: str  # the cluster's OIDC issuer
    subject: str  # system:serviceaccount:<namespace>:<name>
    key: Any  # the issuer's signing key (what Entra reads from the issuer's JWKS)
    object_id: str  # the identity's object id: the user name AKS sees
    audience: str = "api://AzureADTokenExchange"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    identity: Identity


class OidcProvider:
    def __init__(
        self,
        *,
        client_id: str = "modelplane-tests",
        client_secret: str = "s3cr3t-client-value",
        certificate_dir: Path | None = None,
    ) -> None:
        self.federations: dict[str, Federation] = {}  # client id -> its federated credential
        self.access_token_lifetime = 3600
        self.issued: list[dict[str, Any]] = []  # claims of every access token issued by the client assertion grant
        self.ca = ""
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "alg": "RS256", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "alg": "RS256", "use": "sig"})
        self.next_identity = Identity(sub="00000000-sub", preferred_username="sso.user@contoso.com")
        self.tamper: str | None = None  # "signature", "audience", "issuer", "nonce", "expired"
        self.requests: list[str] = []  # "METHOD /path" of every request, in order
        self.token_requests: list[dict[str, str]] = []
        self.token_clients: list[tuple[str, str]] = []  # (client_id, client_secret) as each /token call sent them
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, Identity] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._scheme = "http"
        if certificate_dir is not None:
            from tests.emulators.acr import make_certificate

            cert, key = make_certificate(certificate_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme, self.ca = "https", str(cert)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def __enter__(self) -> OidcProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ protocol
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "email", "groups"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        required = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")
        missing = [name for name in required if not query.get(name)]
        if missing or query["client_id"] != self.client_id or query["response_type"] != "code":
            return 400, {"Content-Type": "text/plain"}, f"bad authorization request: {missing}".encode()
        if "openid" not in query["scope"].split():
            return 400, {"Content-Type": "text/plain"}, b"scope must include openid"
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Grant(query["client_id"], query["redirect_uri"], query["nonce"], self.next_identity)
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": location}, b""

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            import base64
            from urllib.parse import unquote

            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        self.token_clients.append((client_id, client_secret))
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = self._codes.pop(form.get("code", ""), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = grant.identity
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid profile email",
            "id_token": self.id_token(grant),
        }

    # ------------------------------------------------------------------ Entra: workload identity
    def federate(self, client_id: str, federation: Federation) -> None:
        self.federations[client_id] = federation

    def entra_issuer(self, tenant: str) -> str:
        return f"https://sts.windows.net/{tenant}/"

    def entra_token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The client credentials grant with a federated assertion, as Entra answers it."""
        self.token_requests.append(form)

        def refuse(status: int, error: str, description: str) -> tuple[int, dict[str, Any]]:
            return status, {"error": error, "error_description": description, "error_codes": [int(description[6:12])]}

        if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != JWT_BEARER:
            return refuse(400, "unsupported_grant_type", "AADSTS700016: only client assertions are emulated.")
        federation = self.federations.get(form.get("client_id", ""))
        if federation is None:
            return refuse(400, "unauthorized_client", f"AADSTS700016: Application {form.get('client_id')} not found.")
        try:
            claims = jwt.decode(form.get("client_assertion", ""), federation.key, algorithms=["RS256"]).claims
        except Exception:  # noqa: BLE001 - any malformed or wrongly signed assertion
            return refuse(
                401,
                "invalid_client",
                "AADSTS700211: No matching federated identity record found for presented assertion issuer.",
            )
        audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if claims.get("iss") != federation.issuer or claims.get("sub") != federation.subject:
            return refuse(
                401,
                "invalid_client",
                "AADSTS700213: No matching federated identity record found for presented assertion subject "
                f"'{claims.get('sub')}'.",
            )
        if federation.audience not in audiences:
            return refuse(
                401,
                "invalid_client",
                "AADSTS700212: No matching federated identity record found for presented assertion audience "
                f"{audiences}.",
            )
        if int(claims.get("exp") or 0) <= time.time():
            return refuse(401, "invalid_client", "AADSTS700024: Client assertion is not within its valid time range.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope.strip():
            return refuse(400, "invalid_scope", f"AADSTS1002012: The provided value for scope {scope} is not valid.")
        now = int(time.time())
        token_claims = {
            "aud": scope.removesuffix("/.default"),
            "iss": self.entra_issuer(tenant),
            "iat": now,
            "nbf": now,
            "exp": now + self.access_token_lifetime,
            "oid": federation.object_id,
            "sub": federation.object_id,
            "appid": form["client_id"],
            "tid": tenant,
            "jti": secrets.token_hex(8),
        }
        self.issued.append(token_claims)
        token = jwt.encode({"alg": "RS256", "kid": "test-key-1", "typ": "JWT"}, token_claims, self.key)
        lifetime = self.access_token_lifetime
        return 200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        identity = grant.identity
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": identity.sub,
            "aud": self.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "nonce": grant.nonce,
            "preferred_username": identity.preferred_username,
            "email": identity.email,
            "name": identity.name,
            "groups": identity.groups,
        }
        key = self.key
        if self.tamper == "signature":
            key = self.other_key  # same kid, another private key: what a forger would send
        elif self.tamper == "audience":
            claims["aud"] = "some-other-application"
        elif self.tamper == "issuer":
            claims["iss"] = "https://login.example.invalid/evil/v2.0"
        elif self.tamper == "nonce":
            claims["nonce"] = secrets.token_urlsafe(16)
        elif self.tamper == "expired":
            claims["iat"] = claims["nbf"] = now - 7200
            claims["exp"] = now - 3600
        return jwt.encode({"alg": "RS256", "kid": "test-key-1", "typ": "JWT"}, claims, key)

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        identity = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if identity is None:
            return 401, {"error": "invalid_token"}
        return 200, {"sub": identity.sub, "preferred_username": identity.preferred_username, "email": identity.email}

    # ------------------------------------------------------------------ HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                provider.requests.append(f"GET {url.path}")
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, {"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    status, headers, body = provider.authorize(query)
                    self._send(status, body, headers)
                elif url.path == "/userinfo":
                    self._json(*provider.userinfo(self.headers.get("Authorization", "")))
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                provider.requests.append(f"POST {url.path}")
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if url.path == "/token":
                    self._json(*provider.token(form, self.headers.get("Authorization", "")))
                elif url.path.endswith("/oauth2/v2.0/token"):
                    self._json(*provider.entra_token(url.path.split("/")[1], form))
                else:
                    self._json(404, {"error": "not_found"})

        return Handler

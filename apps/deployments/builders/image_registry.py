"""Image references and the image registry's HTTP API, as the image builders need them.

``ImageRegistryClient`` speaks just enough of the OCI distribution API to ask whether an image exists; the
MLflow model registry has its own client (``apps.registry.client.RegistryClient``), unrelated to this one.
"""

from __future__ import annotations

from typing import Any

import requests

from apps.deployments.backends import PermanentBackendError, TransientBackendError

__all__ = ["ImageReference", "ImageRegistryClient", "parse_image"]

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class ImageReference:
    """``registry/repository:tag`` (or ``@sha256:...``), split the way registries see it."""

    def __init__(self, registry: str, repository: str, reference: str) -> None:
        self.registry, self.repository, self.reference = registry, repository, reference

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


def parse_image(image: str) -> ImageReference:
    name, digest = (image.split("@", 1) + [""])[:2]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "registry-1.docker.io", name if rest else f"library/{name}"
    if digest:
        return ImageReference(registry, path, digest)
    repository, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = path, "latest"
    return ImageReference(registry, repository, tag)


ACR_SCOPE = "https://containerregistry.azure.net/.default"


class ImageRegistryClient:
    """Just enough of the OCI distribution API to ask whether a manifest exists (``HEAD``), with basic
    auth or the bearer-token dance registries (Docker Hub, ACR, Harbor) answer a 401 with.

    With ``credential`` (an azure-core ``TokenCredential``: workload identity, managed identity) an ACR is reached
    without a user name or password: the Entra token is exchanged for an ACR refresh token at
    ``/oauth2/exchange``, and that for an access token at the challenge's realm (ACR's documented AAD flow)."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        insecure_registries: list[str] | tuple[str, ...] = (),
        username: str = "",
        password: str = "",
        credential: Any = None,
        timeout: float = 15,
    ) -> None:
        self.verify, self.insecure = verify, set(insecure_registries)
        self.username, self.password, self.timeout = username, password, timeout
        self.credential = credential
        self.session = requests.Session()

    def _schemes(self, registry: str) -> list[str]:
        if registry in self.insecure:
            return ["http"]
        # Like ``--tls-verify=false`` on push: an unverified HTTPS registry, or failing that plain HTTP.
        return ["https"] if self.verify is not False else ["https", "http"]

    def manifest_digest(self, image: str) -> str | None:
        """The manifest's digest if the registry has ``image``, None if it does not."""
        ref = parse_image(image)
        last: Exception | None = None
        for scheme in self._schemes(ref.registry):
            url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
            try:
                return self._head(url, ref)
            except requests.exceptions.SSLError as exc:
                last = exc
            except requests.RequestException as exc:
                last = exc
                if scheme == "https" and "http" in self._schemes(ref.registry):
                    continue
                break
        reason = type(last).__name__ if last else "no answer"
        raise TransientBackendError(f"registry {ref.registry} is unreachable ({reason}); will try again")

    def _head(self, url: str, ref: ImageReference) -> str | None:
        headers = {"Accept": MANIFEST_TYPES}
        verify = self.verify if url.startswith("https") else True
        response = self.session.head(url, headers=headers, timeout=self.timeout, verify=verify)
        if response.status_code == 401:
            headers["Authorization"] = self._authorization(response, ref, verify)
            response = self.session.head(url, headers=headers, timeout=self.timeout, verify=verify)
        if response.status_code == 200:
            return response.headers.get("Docker-Content-Digest", "") or "unknown"
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            who = self._who()
            raise PermanentBackendError(
                f"registry {ref.registry} refused access to {ref.repository} {who} ({response.status_code}); "
                "check the registry credentials of the image builder"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientBackendError(f"registry {ref.registry} answered {response.status_code}; will try again")
        raise PermanentBackendError(f"registry {ref.registry} answered {response.status_code} for {url}")

    def _authorization(self, challenge: requests.Response, ref: ImageReference, verify: bool | str) -> str:
        header = challenge.headers.get("WWW-Authenticate", "")
        scheme, _, params = header.partition(" ")
        basic = (self.username, self.password) if self.username else None
        if scheme.lower() == "basic":
            if not basic:
                raise PermanentBackendError(f"registry {ref.registry} needs credentials and none are configured")
            return requests.auth._basic_auth_str(self.username, self.password)
        fields = dict(_challenge_fields(params))
        realm = fields.pop("realm", "")
        if scheme.lower() != "bearer" or not realm:
            raise PermanentBackendError(f"registry {ref.registry} asks for unsupported authentication: {header!r}")
        fields.setdefault("scope", f"repository:{ref.repository}:pull")
        try:
            if self.credential is not None and not basic:
                fields |= {"grant_type": "refresh_token", "refresh_token": self._acr_refresh_token(realm, ref, verify)}
                answer = self.session.post(realm, data=fields, timeout=self.timeout, verify=verify)
            else:
                answer = self.session.get(realm, params=fields, auth=basic, timeout=self.timeout, verify=verify)
        except requests.RequestException as exc:
            raise TransientBackendError(
                f"token service of {ref.registry} is unreachable ({type(exc).__name__})"
            ) from exc
        if answer.status_code >= 500:
            raise TransientBackendError(f"token service of {ref.registry} answered {answer.status_code}")
        if answer.status_code != 200:
            who = self._who()
            raise PermanentBackendError(
                f"registry {ref.registry} refused a token {who} ({answer.status_code}); "
                "check the registry credentials of the image builder"
            )
        body = answer.json()
        return "Bearer " + (body.get("token") or body.get("access_token") or "")

    def _who(self) -> str:
        if self.username:
            return f"as {self.username}"
        return "with the workload identity" if self.credential is not None else "anonymously"

    def _acr_refresh_token(self, realm: str, ref: ImageReference, verify: bool | str) -> str:
        """The Entra token of ``credential`` exchanged for an ACR refresh token (``POST /oauth2/exchange``)."""
        try:
            entra = self.credential.get_token(ACR_SCOPE).token
        except Exception as exc:  # noqa: BLE001 - azure-identity raises several kinds; all mean "no token"
            raise PermanentBackendError(
                f"no Entra token for registry {ref.registry}: {type(exc).__name__}: {exc}"
            ) from exc
        exchange = realm.rsplit("/oauth2/", 1)[0] + "/oauth2/exchange"
        form = {"grant_type": "access_token", "service": ref.registry, "access_token": entra}
        answer = self.session.post(exchange, data=form, timeout=self.timeout, verify=verify)
        if answer.status_code >= 500:
            raise TransientBackendError(f"token exchange of {ref.registry} answered {answer.status_code}")
        refresh = answer.json().get("refresh_token") if answer.status_code == 200 else None
        if not refresh:
            raise PermanentBackendError(
                f"registry {ref.registry} refused the workload identity's Entra token ({answer.status_code}); "
                "give the identity AcrPull (and AcrPush for builds) on the registry"
            )
        return refresh


def _challenge_fields(params: str):
    for part in params.split(","):
        key, _, value = part.strip().partition("=")
        if key:
            yield key.strip(), value.strip().strip('"')

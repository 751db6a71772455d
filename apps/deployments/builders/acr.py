"""Build in Azure Container Registry with an ACR build run (``az acr build`` through the SDK): upload the
context, schedule a Docker build run that pushes into the registry, follow its log, wait for it.

Options (from ``settings.IMAGE_BUILDER_OPTIONS["acr"]``); the first three are required when this builder is used:

``subscription_id``, ``resource_group``, ``registry_name``  the registry's ARM resource
``arm_endpoint``        Azure Resource Manager URL (default ``https://management.azure.com``)
``credential``          an azure-core ``TokenCredential``; default ``DefaultAzureCredential`` (workload identity,
                        managed identity, environment, Azure CLI), with ``managed_identity_client_id`` if given
``connection_verify``   TLS verification for every HTTPS call: true, false or a CA bundle path (default true)
``audience``            token audience of the registry data plane (default ``https://containerregistry.azure.net``)
``platform_os``         build platform (default ``Linux``)
``timeout``             seconds a run may take before it is cancelled (default 3600)
``poll_interval``       seconds between run status polls (default 3)
``retry_total``         SDK retries of throttled or failed requests (default: the SDK's)

The Azure SDKs are imported here only, so the local builder and target run without them.
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from apps.deployments.backends import Log, PermanentBackendError, TransientBackendError
from apps.deployments.builders.base import BuildRequest, ImageBuilder
from apps.deployments.builders.image_registry import parse_image

__all__ = ["AcrImageBuilder"]

FINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
TAIL_LINES = 25
REQUIRED = ("subscription_id", "resource_group", "registry_name")
SETTING_NAMES = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "ACR_RESOURCE_GROUP",
    "registry_name": "ACR_REGISTRY_NAME",
}
# azure-core logs every request and response at INFO; a build polls for minutes.
_HTTP_LOG = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
if _HTTP_LOG.level == logging.NOTSET:
    _HTTP_LOG.setLevel(logging.WARNING)


class AcrImageBuilder(ImageBuilder):
    name = "acr"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        missing = [key for key in REQUIRED if not options.get(key)]
        if missing:
            names = ", ".join(SETTING_NAMES[key] for key in missing)
            raise PermanentBackendError(f"the ACR image builder is not configured: set {names}")
        self.subscription_id = str(options["subscription_id"])
        self.resource_group = str(options["resource_group"])
        self.registry_name = str(options["registry_name"])
        self.verify = options.get("connection_verify", True)
        self.timeout = float(options.get("timeout") or 3600)
        self.poll_interval = float(options.get("poll_interval") or 3)
        self._credential = options.get("credential")
        self._mgmt = None
        self._data: dict[str, Any] = {}

    # ------------------------------------------------------------------ clients
    def _sdk_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"connection_verify": self.verify}
        if self.options.get("retry_total") is not None:
            kwargs["retry_total"] = int(self.options["retry_total"])
            kwargs["retry_backoff_factor"] = float(self.options.get("retry_backoff_factor", 0.8))
        return kwargs

    def credential(self):
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            client_id = self.options.get("managed_identity_client_id") or None
            self._credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        return self._credential

    def mgmt(self):
        if self._mgmt is None:
            # A pinned API version that still has build runs (listBuildSourceUploadUrl, scheduleRun, runs).
            from azure.mgmt.containerregistry.v2025_03_01_preview import ContainerRegistryManagementClient

            arm = str(self.options.get("arm_endpoint") or "https://management.azure.com").rstrip("/")
            self._mgmt = ContainerRegistryManagementClient(
                self.credential(),
                self.subscription_id,
                base_url=arm,
                credential_scopes=[f"{self.options.get('arm_audience') or arm}/.default"],
                **self._sdk_kwargs(),
            )
        return self._mgmt

    def data_plane(self, login_server: str):
        if login_server not in self._data:
            from azure.containerregistry import ContainerRegistryClient

            self._data[login_server] = ContainerRegistryClient(
                f"https://{login_server}",
                self.credential(),
                audience=str(self.options.get("audience") or "https://containerregistry.azure.net"),
                **self._sdk_kwargs(),
            )
        return self._data[login_server]

    # ------------------------------------------------------------------ interface
    def exists(self, image: str) -> bool:
        """Ask the registry's data plane for the tag (or digest); not found means it must be built."""
        from azure.core.exceptions import ResourceNotFoundError

        ref = parse_image(image)
        client = self.data_plane(ref.registry)
        with _azure_errors(f"registry {ref.registry}"):
            try:
                if ref.reference.startswith("sha256:"):
                    client.get_manifest_properties(ref.repository, ref.reference)
                else:
                    client.get_tag_properties(ref.repository, ref.reference)
            except ResourceNotFoundError:
                return False
        return True

    def build_and_push(self, request: BuildRequest, log: Log) -> str:
        """Upload the context, schedule a build-and-push run, follow its log until it ends; return the digest.

        Running twice schedules a second run that pushes the same tag again (harmless).
        """
        from azure.mgmt.containerregistry.v2025_03_01_preview.models import (
            Argument,
            DockerBuildRequest,
            PlatformProperties,
        )

        if not (request.context_dir / "Dockerfile").is_file():
            raise PermanentBackendError(f"the build context {request.context_dir} has no Dockerfile")
        ref = parse_image(request.image)
        where = f"Azure Container Registry {self.registry_name}"
        uploaded_context = self._upload(request, log, where)
        run_request = DockerBuildRequest(
            image_names=[f"{ref.repository}:{ref.reference}"],
            is_push_enabled=True,
            docker_file_path="Dockerfile",
            arguments=[Argument(name=k, value=v, is_secret=False) for k, v in request.build_args.items()],
            platform=PlatformProperties(os=str(self.options.get("platform_os") or "Linux")),
            source_location=uploaded_context,
            timeout=min(28800, max(300, int(self.timeout))),  # the API's bounds
        )
        registries = self.mgmt().registries
        with _azure_errors(where):
            if hasattr(registries, "schedule_run"):
                run = registries.schedule_run(self.resource_group, self.registry_name, run_request)
            else:  # older API versions: a long-running operation
                run = registries.begin_schedule_run(self.resource_group, self.registry_name, run_request).result()
        log(f"ACR run {run.run_id} scheduled in {self.registry_name}")
        run, tail = self._follow(run.run_id, log, where)
        if run.status != "Succeeded":
            reason = f": {run.run_error_message}" if run.run_error_message else ""
            raise PermanentBackendError(
                f"ACR build run {run.run_id} {run.status.lower()}{reason}; last lines:\n" + "\n".join(tail)
            )
        for output in run.output_images or []:
            if output.repository == ref.repository and output.tag == ref.reference and output.digest:
                return output.digest
        digests = [output.digest for output in run.output_images or [] if output.digest]
        if digests:
            return digests[0]
        raise PermanentBackendError(f"ACR build run {run.run_id} succeeded but reported no image digest")

    # ------------------------------------------------------------------ steps
    def _upload(self, request: BuildRequest, log: Log, where: str) -> str:
        with _azure_errors(where):
            upload = self.mgmt().registries.get_build_source_upload_url(self.resource_group, self.registry_name)
        with tempfile.TemporaryFile() as archive:
            _tar_context(request, archive)
            size = archive.tell()
            archive.seek(0)
            log(f"uploading the build context ({size / 1e6:.1f} MB)")
            try:
                answer = requests.put(
                    upload.upload_url,
                    data=archive,
                    headers={"x-ms-blob-type": "BlockBlob", "Content-Length": str(size)},
                    verify=self.verify,
                    timeout=300,
                )
            except requests.RequestException as exc:
                raise TransientBackendError(f"uploading the build context failed ({type(exc).__name__})") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TransientBackendError(f"uploading the build context failed ({answer.status_code}); will try again")
        if answer.status_code not in (200, 201):
            raise PermanentBackendError(f"uploading the build context was refused ({answer.status_code})")
        return upload.relative_path

    def _follow(self, run_id: str, log: Log, where: str):
        """Poll the run to a final state, streaming new log lines; cancel it if it outlasts the timeout."""
        runs = self.mgmt().runs
        deadline = time.monotonic() + self.timeout
        stream = _LogStream(self, run_id, log)
        status = None
        while True:
            with _azure_errors(where):
                run = runs.get(self.resource_group, self.registry_name, run_id)
            if run.status != status:
                status = run.status
                log(f"ACR run {run_id}: {status}")
            final = run.status in FINAL
            stream.poll(final=final)
            if final:
                return run, stream.tail
            if time.monotonic() > deadline:
                cancel = getattr(runs, "cancel", None) or runs.begin_cancel
                try:
                    cancel(self.resource_group, self.registry_name, run_id)
                except Exception:  # noqa: BLE001 - the run is abandoned either way
                    pass
                raise TransientBackendError(f"ACR build run {run_id} took longer than {self.timeout:.0f} s; cancelled")
            time.sleep(self.poll_interval)


class _LogStream:
    """The run's log blob grows while it runs: fetch it on every poll and pass on the new complete lines."""

    def __init__(self, builder: AcrImageBuilder, run_id: str, log: Log) -> None:
        self.builder, self.run_id, self.log = builder, run_id, log
        self.url = ""
        self.seen = 0
        self.partial = ""
        self.tail: list[str] = []

    def poll(self, *, final: bool) -> None:
        try:
            if not self.url:
                b = self.builder
                self.url = b.mgmt().runs.get_log_sas_url(b.resource_group, b.registry_name, self.run_id).log_link
            answer = requests.get(self.url, verify=self.builder.verify, timeout=30)
        except Exception as exc:  # noqa: BLE001 - the log is best effort until the run ends
            if final:
                self.log(f"could not fetch the run log ({type(exc).__name__})")
            return
        if answer.status_code != 200:
            if final:
                self.log(f"could not fetch the run log ({answer.status_code})")
            return
        text = answer.text
        new, self.seen = text[self.seen :], len(text)
        lines = (self.partial + new).split("\n")
        self.partial = "" if final else lines.pop()
        for line in lines:
            line = line.rstrip()
            if line:
                self.tail = (self.tail + [line])[-TAIL_LINES:]
                self.log(line)


def _tar_context(request: BuildRequest, archive) -> None:
    """The context as a tar.gz with the request's labels added to the Dockerfile (a run has no --label)."""
    root = Path(request.context_dir)
    dockerfile = (root / "Dockerfile").read_text()
    if request.labels:
        pairs = " ".join(f"{key}={_quote(value)}" for key, value in sorted(request.labels.items()))
        dockerfile = dockerfile.rstrip("\n") + f"\nLABEL {pairs}\n"
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if rel == "Dockerfile":
                data = dockerfile.encode()
                info = tarfile.TarInfo("Dockerfile")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            elif path.is_file() or path.is_dir():
                tar.add(path, arcname=rel, recursive=False)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _azure_errors:
    """Turn azure-core exceptions into backend errors whose messages a person can act on."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, (PermanentBackendError, TransientBackendError)):
            return False
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            raise TransientBackendError(f"{self.where} is unreachable ({type(exc).__name__}); will try again") from exc
        if isinstance(exc, ClientAuthenticationError):
            raise PermanentBackendError(f"{self.where} refused the Azure credential: {_first_line(exc)}") from exc
        if isinstance(exc, ResourceNotFoundError):
            raise PermanentBackendError(f"{self.where} was not found: {_first_line(exc)}") from exc
        if isinstance(exc, HttpResponseError):
            code = exc.status_code or 0
            if code == 429 or code >= 500:
                raise TransientBackendError(f"{self.where} answered {code}; will try again") from exc
            raise PermanentBackendError(f"{self.where} answered {code}: {_first_line(exc)}") from exc
        if type(exc).__name__ == "CredentialUnavailableError":
            raise PermanentBackendError(f"no Azure credential is available on this worker: {_first_line(exc)}") from exc
        return False


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__

"""The names a Kubernetes API server and an OCI registry accept, in one place.

A deployment's name becomes the name of its Deployment, Service, HorizontalPodAutoscaler and
PodDisruptionBudget, a label value and a path component of its image repository. The strictest of those
rules wins: a Service name is a DNS-1035 label (lowercase letters, digits and '-', starting with a letter,
at most 63 characters), which is also a valid DNS-1123 subdomain, label value and repository component.
Validation runs before any work starts (the deploy service), so a name the cluster would refuse never costs
an image build. Each function returns the broken rule as a sentence, or "" when the value is fine.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = [
    "NAME_MAX",
    "DNS1035_RULE",
    "deployment_name_error",
    "derive_deployment_name",
    "candidate_name",
    "CANDIDATE_SUFFIX",
    "dns1123_label_error",
    "label_value",
    "label_value_error",
    "image_repository_error",
]

NAME_MAX = 63
CANDIDATE_SUFFIX = "-canary"
DNS1035_RULE = (
    "a DNS-1035 label (Kubernetes Service names): at most 63 characters, lowercase letters, digits and '-', "
    "starting with a letter and ending with a letter or digit, e.g. 'churn-model'"
)
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# The distribution/reference grammar: [domain[:port]/]component(/component)*, components lowercase.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")


def deployment_name_error(name: str) -> str:
    """Why ``name`` cannot name a deployment's Kubernetes objects ("" if it can)."""
    if not name:
        return f"The deployment name is empty; it must be {DNS1035_RULE}."
    if len(name) > NAME_MAX or not _DNS1035.match(name):
        return f"{name!r} is not a valid deployment name: it must be {DNS1035_RULE}."
    if name.endswith(CANDIDATE_SUFFIX):
        return (
            f"{name!r} ends in {CANDIDATE_SUFFIX!r}, which names the new revision's objects beside a deployment's "
            f"live ones during a canary, blue-green or shadow rollout ({candidate_name('churn-model')!r} for "
            "'churn-model'); choose another name."
        )
    return ""


def dns1123_label_error(value: str, what: str) -> str:
    """Namespaces are DNS-1123 labels: lowercase letters, digits and '-', at most 63 characters."""
    if len(value) > NAME_MAX or not _DNS1123_LABEL.match(value):
        return (
            f"{what} {value!r} is not a DNS-1123 label: at most 63 characters, lowercase letters, digits and "
            "'-', starting and ending with a letter or digit."
        )
    return ""


def label_value_error(value: str) -> str:
    if len(value) > NAME_MAX or not _LABEL_VALUE.match(value):
        return (
            f"{value!r} is not a valid label value: at most 63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit."
        )
    return ""


def label_value(value: str) -> str:
    """``value`` made into a label value: other characters become '-', cut to 63, trimmed to alphanumerics."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", _ascii(value))[:NAME_MAX]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def derive_deployment_name(model_name: str, *, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A valid deployment name for ``model_name``, not in ``taken``.

    ``2024_churn_model`` -> ``m-2024-churn-model`` (a DNS-1035 label starts with a letter); fullwidth and
    accented characters fold to ASCII (NFKD), the rest become '-'; truncation never leaves a trailing '-'.
    Unity Catalog names (``catalog.schema.model``) keep all three parts."""
    base = re.sub(r"[^a-z0-9]+", "-", _ascii(model_name).lower()).strip("-") or "model"
    if not base[0].isalpha():
        base = f"m-{base}"
    base = _cut(base, NAME_MAX)
    name, n = base, 2
    while name in taken or name.endswith(CANDIDATE_SUFFIX):
        suffix = f"-{n}"
        name, n = _cut(base, NAME_MAX - len(suffix)) + suffix, n + 1
    return name


def candidate_name(deployment: str) -> str:
    """The name of the objects a deployment's candidate revision serves from, beside the primary's (progressive
    rollouts on Kubernetes): ``iris`` -> ``iris-canary``. A name too long for the suffix is cut and keeps a short
    hash of the whole name, so two long names that share a prefix never share a candidate: the result is always a
    valid deployment name (``deployment_name_error``) of at most 63 characters."""
    name = f"{deployment}{CANDIDATE_SUFFIX}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(deployment.encode()).hexdigest()[:6]
    tail = f"-{digest}{CANDIDATE_SUFFIX}"
    return _cut(deployment, NAME_MAX - len(tail)) + tail


def image_repository_error(repository: str) -> str:
    """Why ``repository`` (``registry.example/models/churn``) is not an image repository ("" if it is)."""
    if len(repository) > 255 or not _REPOSITORY.match(repository):
        return (
            f"{repository!r} is not a valid image repository: [registry[:port]/]path, where each path part is "
            "lowercase letters and digits, separated by '.', '_', '__' or '-' (e.g. myregistry.azurecr.io/models)."
        )
    return ""


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")


def _cut(value: str, length: int) -> str:
    return value[:length].rstrip("-")

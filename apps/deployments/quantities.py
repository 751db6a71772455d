"""Kubernetes resource quantities ("250m", "1", "512Mi", "1.5Gi", "1e3"): their grammar and their order.

An environment's CPU and memory are written as quantities; a malformed one, or a request above its limit, is
refused by the API server with a 422 only when the Deployment is applied, after the image build. These
rules run first: in the environment's validation (the admin) and in the deploy service (the form and the API).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["quantity_error", "quantity_value", "resources_errors"]

# k8s.io/apimachinery/pkg/api/resource: <signedNumber><suffix>, suffix binary SI, decimal SI or an exponent.
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_FACTORS = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{suffix: Decimal(1024) ** (i + 1) for i, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}
EXAMPLES = {"cpu": "'250m' or '2'", "memory": "'512Mi' or '2Gi'"}


def quantity_value(text: str) -> Decimal | None:
    """The quantity's value in base units (cores, bytes), or None if ``text`` is not a quantity."""
    match = _QUANTITY.match(text or "")
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _FACTORS[suffix]
    except (InvalidOperation, ValueError):
        return None


def quantity_error(text: str, resource: str) -> str:
    """Why ``text`` is not a valid ``resource`` ("cpu", "memory") quantity ("" if it is)."""
    value = quantity_value(text)
    if value is None:
        return f"{text!r} is not a Kubernetes quantity; write e.g. {EXAMPLES[resource]}."
    if value < 0:
        return f"{text!r}: a {resource} quantity cannot be negative."
    return ""


def resources_errors(*, cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str) -> dict[str, str]:
    """Field -> what is wrong, for malformed quantities and requests above their limits (empty: all fine)."""
    fields = {"cpu_request": cpu_request, "cpu_limit": cpu_limit}
    fields |= {"memory_request": memory_request, "memory_limit": memory_limit}
    errors = {field: quantity_error(text, field.split("_")[0]) for field, text in fields.items()}
    errors = {field: error for field, error in errors.items() if error}
    for resource in ("cpu", "memory"):
        request, limit = fields[f"{resource}_request"], fields[f"{resource}_limit"]
        if f"{resource}_request" in errors or f"{resource}_limit" in errors:
            continue
        if quantity_value(request) > quantity_value(limit):  # type: ignore[operator]
            errors[f"{resource}_request"] = (
                f"The {resource} request {request} is above its limit {limit}; Kubernetes requires request <= limit."
            )
    return errors

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_openapi_schema_generates_without_warnings_and_validates():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    assert '"/api/v1/deployments/"' in out.getvalue() and '"/api/v1/models/"' in out.getvalue()


def test_every_operation_documents_its_errors_as_detail_and_code():
    from tests.api_schema import raw_schema

    schema = raw_schema()
    error_refs = {"#/components/schemas/Error", "#/components/schemas/ValidationError"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = {int(code) for code in operation["responses"]}
            assert {401, 403, 406} <= codes, f"{method.upper()} {path} documents only {sorted(codes)}"
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref in error_refs, f"{method.upper()} {path} {code} answers {ref}"
    assert sorted(schema["components"]["schemas"]["Error"]["required"]) == ["code", "detail"]


def test_every_list_documents_the_pagination_shape_and_idempotency_keys_are_documented():
    from tests.api_schema import raw_schema

    schema = raw_schema()
    components = schema["components"]["schemas"]
    lists = [
        (path, item["get"])
        for path, item in schema["paths"].items()
        if "get" in item and item["get"]["operationId"].endswith("_list")
    ]
    assert len(lists) >= 8
    for path, operation in lists:
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert {"count", "next", "previous", "results"} <= set(components[ref]["properties"]), path
    keyed = {
        operation["operationId"]
        for item in schema["paths"].values()
        for operation in item.values()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    starts_work = {"deployments_create", "deployments_rollback", "deployments_destroy", "promotions_create"}
    assert starts_work | {"promotions_approve", "promotions_reject"} <= keyed

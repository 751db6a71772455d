"""The audit trail: who did what, when, from where (token or session, client IP), before/after for edits.
Append-only for everyone, admins included; readable by reviewers and admins; exportable as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import AppendOnlyError, AuditEvent, User
from apps.accounts.services import (
    REDACTED,
    api_token_create,
    audit_changes,
    audit_record,
    service_account_create,
)
from tests.accounts.helpers import CsrfClient, token_client

pytestmark = pytest.mark.django_db


def _events(n: int, *, action: str = "demo.thing", actor=None) -> None:
    for i in range(n):
        audit_record(actor=actor, action=action, target_type="thing", target_id=str(i), data={"i": i})


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


class AuditRecordTests:
    def test_a_system_write_has_no_origin(self):
        event = audit_record(actor=None, action="demo.system")
        assert (event.actor_name, event.source, event.via, event.credential, event.ip) == (
            "system",
            "system",
            "",
            "",
            None,
        )

    def test_an_api_write_names_the_token_and_the_client_ip_never_the_key(self, carol):
        created = api_token_create(user=carol, name="laptop")
        client = APIClient(REMOTE_ADDR="10.1.2.3")
        client.credentials(HTTP_AUTHORIZATION=f"Token {created.key}")
        client.post("/api/v1/tokens/", {"name": "second"}, format="json")
        event = AuditEvent.objects.filter(action="api_token.create").first()
        assert event.data["token"] == "second" and event.source == "api"
        assert event.via == "token" and event.credential == f"laptop ({created.key[:8]}…)" and event.ip == "10.1.2.3"
        assert created.key not in json.dumps(
            list(AuditEvent.objects.values("data", "credential", "actor_name")), default=str
        )

    def test_a_ui_write_names_a_hash_of_the_session_not_the_session_key(self, carol):
        browser = CsrfClient(carol)
        browser.post("/accounts/tokens/", {"name": "from-the-ui"})
        event = AuditEvent.objects.get(action="api_token.create")
        session_key = browser.client.session.session_key
        assert event.via == "session" and event.credential.startswith("session ") and event.ip == "127.0.0.1"
        assert session_key not in event.credential

    def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(self, carol, settings):
        settings.MODELPLANE_TRUSTED_PROXY_HOPS = 1
        client = token_client(carol)
        client.post("/api/v1/tokens/", {"name": "x"}, format="json", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.7")
        assert AuditEvent.objects.filter(action="api_token.create", data__token="x").get().ip == "192.0.2.7"

    def test_secret_looking_values_are_redacted_at_any_depth(self):
        event = audit_record(
            actor=None,
            action="demo.secrets",
            data={
                "registry_password": "hunter2",
                "env": {"connection_string": "InstrumentationKey=abc", "name": "prod"},
                "items": [{"api_key": "k"}],
                "idempotency_key": "not-a-secret",
            },
        )
        assert event.data == {
            "registry_password": REDACTED,
            "env": {"connection_string": REDACTED, "name": "prod"},
            "items": [{"api_key": REDACTED}],
            "idempotency_key": "not-a-secret",
        }

    def test_audit_changes_keeps_only_what_changed(self):
        data = audit_changes({"a": 1, "b": 2, "gone": 3}, {"a": 1, "b": 5}, name="x")
        assert data == {"name": "x", "before": {"b": 2, "gone": 3}, "after": {"b": 5, "gone": None}}


class AppendOnlyTests:
    def test_the_orm_refuses_to_change_or_delete_an_event(self):
        event = audit_record(actor=None, action="demo.x", data={"v": 1})
        event.action = "demo.rewritten"
        with pytest.raises(AppendOnlyError):
            event.save()
        with pytest.raises(AppendOnlyError):
            event.delete()
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.filter(pk=event.pk).update(action="demo.rewritten")
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.all().delete()
        with pytest.raises(AppendOnlyError):
            AuditEvent.objects.bulk_update([event], ["action"])
        assert AuditEvent.objects.get(pk=event.pk).action == "demo.x"

    def test_postgresql_refuses_raw_update_and_delete(self):
        event = audit_record(actor=None, action="demo.x")
        for sql in (
            "UPDATE accounts_auditevent SET action = 'demo.rewritten' WHERE id = %s",
            "DELETE FROM accounts_auditevent WHERE id = %s",
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(sql, [event.pk])
        assert AuditEvent.objects.get(pk=event.pk).action == "demo.x"

    def test_deleting_a_user_keeps_their_events_by_name(self, carol):
        audit_record(actor=carol, action="demo.by_carol")
        User.objects.filter(pk=carol.pk).delete()
        event = AuditEvent.objects.get(action="demo.by_carol")
        assert event.actor_id is None and event.actor_name == "carol"

    def test_the_admin_site_is_read_only_even_for_a_superuser(self, client, dave):
        dave.is_superuser = True
        dave.save()
        client.force_login(dave)
        event = audit_record(actor=dave, action="demo.x")
        base = "/admin/accounts/auditevent/"
        assert client.get(base).status_code == 200
        page = client.get(f"{base}{event.pk}/change/")
        assert page.status_code == 200 and b'name="_save"' not in page.content
        assert client.post(f"{base}{event.pk}/change/", {"action": "demo.rewritten"}).status_code == 403
        assert client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.get(f"{base}add/").status_code == 403
        bulk = client.post(base, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
        assert bulk.status_code in (200, 302, 403)
        assert AuditEvent.objects.get(pk=event.pk).action == "demo.x"


class AuditPageTests:
    @pytest.mark.parametrize("persona", ["alice", "carol"])
    def test_leads_and_viewers_may_not_read_it(self, persona, request):
        browser = CsrfClient(request.getfixturevalue(persona))
        for url in ("/audit/", "/audit/export.csv", "/audit/export.json"):
            response = browser.get(url)
            assert response.status_code == 403 and "Only reviewers and admins" in response.content.decode()

    @pytest.mark.parametrize("persona", ["bob", "dave"])
    def test_reviewers_and_admins_read_it_paginated(self, persona, request, django_assert_max_num_queries):
        _events(120)
        browser = CsrfClient(request.getfixturevalue(persona))
        with django_assert_max_num_queries(8):
            first = browser.get("/audit/")
        html = first.content.decode()
        assert first.status_code == 200 and html.count('data-action="demo.thing"') == 50
        assert "120 events · page 1 of 3" in html and 'href="?page=2"' in html
        last = browser.get("/audit/", {"page": 3}).content.decode()
        assert last.count('data-action="demo.thing"') == 20

    def test_filters_narrow_the_page_and_the_pager_keeps_them(self, bob, carol, alice):
        _events(60, action="promotion.approve", actor=carol)
        _events(3, action="deployment.deploy", actor=alice)
        audit_record(actor=alice, action="promotion.request", target_type="promotion", target_id="7")
        browser = CsrfClient(bob)
        html = browser.get("/audit/", {"actor": "CAROL", "action": "promotion."}).content.decode()
        assert html.count('data-action="promotion.approve"') == 50 and "deployment.deploy" not in html
        assert 'href="?actor=CAROL&amp;action=promotion.&amp;page=2"' in html
        one = browser.get("/audit/", {"target_type": "promotion", "target_id": "7"}).content.decode()
        assert one.count("<tr data-action=") == 1 and 'data-action="promotion.request"' in one
        today = timezone.now().date()
        assert "1 event ·" in browser.get("/audit/", {"since": today, "target_type": "promotion"}).content.decode()
        past = browser.get("/audit/", {"until": today - timedelta(days=1)}).content.decode()
        assert "No audit events match these filters" in past

    def test_an_edit_shows_before_and_after(self, bob, dave):
        robot = service_account_create(actor=dave, username="ci", role="viewer")
        CsrfClient(dave).post(
            f"/accounts/service-accounts/{robot.pk}/edit/", {"role": "lead"}, page="/accounts/service-accounts/"
        )
        html = CsrfClient(bob).get("/audit/", {"action": "service_account.update"}).content.decode()
        assert '<code>role</code>: <span class="was">viewer</span> → <strong>lead</strong>' in html


class AuditExportTests:
    def test_csv_is_streamed_with_the_filters_applied(self, bob, carol):
        _events(3, action="demo.keep", actor=carol)
        _events(2, action="other.drop")
        response = CsrfClient(bob).get("/audit/export.csv", {"action": "demo."})
        assert response.status_code == 200 and response.streaming
        assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(_body(response))))
        assert len(rows) == 3 and {r["action"] for r in rows} == {"demo.keep"} and rows[0]["actor"] == "carol"
        assert json.loads(rows[0]["data"]) == {"i": 2}  # newest first

    def test_csv_cells_cannot_run_as_formulas(self, bob):
        audit_record(actor=None, action="demo.x", target_id="=HYPERLINK(1)")
        rows = list(csv.DictReader(io.StringIO(_body(CsrfClient(bob).get("/audit/export.csv")))))
        assert rows[0]["target_id"] == "'=HYPERLINK(1)"

    def test_json_is_one_array_with_the_filters_applied(self, dave, carol):
        _events(2, action="demo.keep", actor=carol)
        _events(2, action="demo.keep")
        response = CsrfClient(dave).get("/audit/export.json", {"actor": "carol"})
        events = json.loads(_body(response))
        assert response["Content-Type"] == "application/json" and len(events) == 2
        assert set(events[0]) == {
            "id", "occurred_at", "actor", "source", "via", "credential", "ip", "action", "target_type", "target_id",
            "data",
        }  # fmt: skip
        assert {e["actor"] for e in events} == {"carol"}

    def test_an_invalid_filter_is_refused_not_ignored(self, bob):
        _events(1)
        response = CsrfClient(bob).get("/audit/export.csv", {"since": "last tuesday"})
        assert response.status_code == 400 and "Cannot export" in response.content.decode()


class AuditApiTests:
    def test_it_pages_and_filters_like_the_page(self, bob, carol):
        _events(30, action="demo.keep", actor=carol)
        _events(5, action="other.drop")
        client = token_client(bob)
        page = client.get("/api/v1/audit/", {"action": "demo", "actor": "carol"}).json()
        assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 30
        assert len(page["results"]) == 25 and "page=2" in page["next"] and page["previous"] is None
        assert page["results"][0]["actor"] == "carol" and page["results"][0]["data"] == {"i": 29}
        today = timezone.now().date()
        assert client.get("/api/v1/audit/", {"until": today - timedelta(days=1)}).json()["count"] == 0
        assert client.get("/api/v1/audit/", {"source": "system", "since": today}).json()["count"] >= 5

    def test_a_bad_filter_is_a_400_naming_it(self, bob):
        response = token_client(bob).get("/api/v1/audit/", {"since": "soon"})
        assert response.status_code == 400 and "since" in response.json()["errors"]

    @pytest.mark.parametrize("persona", ["alice", "carol"])
    def test_leads_and_viewers_get_403(self, persona, request):
        client = token_client(request.getfixturevalue(persona))
        for url in ("/api/v1/audit/", "/api/v1/audit/export.csv", "/api/v1/audit/export.json"):
            response = client.get(url)
            assert response.status_code == 403 and response.json()["code"] == "audit_forbidden"

    def test_exports_over_the_api_whatever_the_accept_header(self, dave):
        _events(2, action="demo.keep")
        client = token_client(dave)
        response = client.get("/api/v1/audit/export.csv", {"action": "demo"}, HTTP_ACCEPT="text/csv")
        assert response.status_code == 200 and len(list(csv.DictReader(io.StringIO(_body(response))))) == 2
        assert len(json.loads(_body(client.get("/api/v1/audit/export.json", {"action": "demo"})))) == 2


class NoSecretsInTheAuditTrailTests:
    def test_no_key_or_password_ever_reaches_the_audit_table_or_an_export(self, carol, dave):
        keys = []
        browser = CsrfClient(carol)
        html = browser.post("/accounts/tokens/", {"name": "ui"}).content.decode()
        keys.append(html.split('id="token-key" value="')[1].split('"')[0])
        keys.append(token_client(carol).post("/api/v1/tokens/", {"name": "api"}, format="json").json()["key"])
        out = StringIO()
        call_command("api_token", "carol", "--name", "cli", stdout=out)
        keys.append(out.getvalue().strip().splitlines()[-1])
        admin = token_client(dave, name="admin-token")
        pk = admin.post("/api/v1/service-accounts/", {"username": "ci", "role": "lead"}, format="json").json()["id"]
        keys.append(admin.post(f"/api/v1/service-accounts/{pk}/tokens/", {"name": "t"}, format="json").json()["key"])
        keys.append(
            CsrfClient(dave)
            .post(f"/accounts/service-accounts/{pk}/tokens/", {"name": "t2"}, page="/accounts/service-accounts/")
            .content.decode()
            .split('id="token-key" value="')[1]
            .split('"')[0]
        )
        from tests.conftest import PASSWORD

        assert len(set(keys)) == 5 and all(len(k) >= 40 for k in keys)
        table = json.dumps(list(AuditEvent.objects.values()), default=str)
        exports = _body(CsrfClient(dave).get("/audit/export.csv")) + _body(CsrfClient(dave).get("/audit/export.json"))
        api = json.dumps(token_client(dave).get("/api/v1/audit/", {"page_size": 100}).json())
        assert AuditEvent.objects.filter(action="api_token.create").count() >= 5
        for text in (table, exports, api):
            for key in keys:
                assert key not in text
            assert PASSWORD not in text

"""Who may do what is decided in one module, ``apps/accounts/permissions.py``.

No other module of ``apps/`` defines a role check (compares a role, reads ``is_superuser``, words a role refusal
of its own), and no template compares roles: a page asks its selector, which asks the permission module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "apps"
PERMISSION_MODULE = APPS / "accounts" / "permissions.py"

# What a role check written outside the permission module looks like in Python.
PYTHON_ROLE_CHECKS = {
    "compares a role": re.compile(
        r"\.role\s*(==|!=|\bin\b|\bnot\s+in\b)"  # user.role == ..., user.role in (...)
        r"|(==|!=)\s*[\w.]*\.role\b"  # ... == user.role
        r"|(==|!=)\s*Role\.[A-Z]+\b|\bRole\.[A-Z]+\s*(==|!=)"  # ... == Role.ADMIN
        r"|\brole\s*(==|!=)\s*[\"']"  # role == "admin"
    ),
    "defines a role check": re.compile(r"def\s+(has_role|roles_in|is_admin|_?require_(lead|admin|reviewer)\w*)\b"),
    "reads is_superuser": re.compile(r"\.is_superuser\b(?!\s*=[^=])"),
    "queries who holds a role": re.compile(r"\brole__in\b|environment_grants\.filter\([^)]*\brole\b"),
    "words a role refusal": re.compile(r"Only (ML leads|leads|reviewers|admins|viewers)\b"),
}
# What a template deciding by role looks like: an {% if %} or {% elif %} on a role or Django's own flags.
TEMPLATE_ROLE_CHECK = re.compile(
    r"{%-?\s*(el)?if\b[^%]*(\.role\b|\brole\s*(==|!=)|is_superuser|is_staff|has_role|is_admin)[^%]*%}"
)


def _python_files() -> list[Path]:
    return [p for p in APPS.rglob("*.py") if p != PERMISSION_MODULE and "migrations" not in p.parts]


def _templates() -> list[Path]:
    return list(APPS.rglob("templates/**/*.html"))


def python_violations(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        found += [f"{number}: {what}: {line.strip()}" for what, rule in PYTHON_ROLE_CHECKS.items() if rule.search(code)]
    return found


def template_violations(text: str) -> list[str]:
    return [match.group(0) for match in TEMPLATE_ROLE_CHECK.finditer(text)]


def test_no_module_but_the_permission_module_checks_roles():
    found = {
        str(path.relative_to(APPS.parent)): hits
        for path in _python_files()
        if (hits := python_violations(path.read_text()))
    }
    assert found == {}


def test_no_template_compares_roles():
    found = {
        str(path.relative_to(APPS.parent)): hits
        for path in _templates()
        if (hits := template_violations(path.read_text()))
    }
    assert found == {}


def test_the_scan_covers_the_apps():
    assert len(_python_files()) > 50 and len(_templates()) > 10
    assert PERMISSION_MODULE.exists() and python_violations(PERMISSION_MODULE.read_text())  # its checks are seen


@pytest.mark.parametrize(
    "line",
    [
        "if user.role == Role.ADMIN:",
        "allowed = actor.role in (Role.REVIEWER, Role.ADMIN)",
        "if before == Role.ADMIN:",
        "return role == 'admin'",
        "def _require_lead(actor, what, environment):",
        "def has_role(self, *roles):",
        "ok = user.is_active and user.is_superuser",
        "grants = user.environment_grants.filter(role__in=roles)",
        'raise ForbiddenError(f"Only ML leads and admins of {env} may deploy")',
    ],
)
def test_the_python_rules_catch_role_checks(line):
    assert python_violations(line)


@pytest.mark.parametrize(
    "line",
    [
        "user.is_superuser = False",
        "flags = {'is_superuser': True}",
        "require(actor, DEPLOY, environment=env)",
        "role = models.CharField(max_length=16, choices=Role.choices)",
    ],
)
def test_the_python_rules_let_other_code_be(line):
    assert not python_violations(line)


@pytest.mark.parametrize(
    "template",
    [
        "{% if user.role == 'reviewer' %}",
        "{% if user.is_superuser or x %}",
        '{% elif request.user.role != "admin" %}',
        "{% if value == row.user.role %} selected{% endif %}",
        "{% if user.is_staff %}",
    ],
)
def test_the_template_rule_catches_role_checks(template):
    assert template_violations(template)


def test_the_template_rule_lets_pages_read_their_permissions():
    assert not template_violations("{% if permissions.can_delete %}{{ user.get_role_display }} role-{{ user.role }}")


def test_one_refusal_wording_for_each_scope(db):
    from apps.accounts.models import User
    from apps.accounts.permissions import (
        DEPLOY,
        READ_AUDIT_TRAIL,
        SET_DRIFT_BASELINE,
        admin_action,
        environments_where,
        refusal,
    )
    from apps.deployments.models import EnvironmentGrant
    from apps.deployments.services import environment_ensure

    dev = environment_ensure(name="dev")[0]
    erin = User.objects.create(username="erin", role="viewer")
    EnvironmentGrant.objects.create(user=erin, environment=dev, role="reviewer")
    assert refusal(erin, DEPLOY, environment=dev) == (
        "Only ML leads and admins of dev may deploy; erin is reviewer, viewer there."
    )
    assert refusal(erin, SET_DRIFT_BASELINE) == (
        "Only ML leads and admins of at least one environment may set drift baselines; erin is viewer."
    )
    assert refusal(erin, READ_AUDIT_TRAIL) == "Only reviewers and admins may read the audit trail; erin is viewer."
    assert list(environments_where(erin, READ_AUDIT_TRAIL)) == []  # a grant is not the global role
    erin.is_active = False
    assert refusal(erin, admin_action("manage access")) == (
        "Only admins may manage access; erin holds no role (an inactive account)."
    )

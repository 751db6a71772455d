"""``.env.example`` lists every setting: each environment variable ``controlplane/settings.py`` reads is there,
and each one there is read (by settings.py, or by a library named below)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READERS = {"env_str", "env_bool", "env_int", "env_list", "env_secret"}
# Listed in .env.example but read by a library from the process environment, not by settings.py.
READ_ELSEWHERE = {
    "DATABRICKS_HOST": "MLflow's Databricks client",
    "DATABRICKS_TOKEN": "MLflow's Databricks client",
}


def _reads(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in READERS
    if isinstance(func, ast.Attribute):
        environ = isinstance(func.value, ast.Attribute) and func.value.attr == "environ"
        return func.attr == "getenv" or (func.attr == "get" and environ)
    return False


def settings_reads() -> set[str]:
    """The names settings.py reads; fails on a read whose name is not a literal (it could not be checked)."""
    tree = ast.parse((ROOT / "controlplane" / "settings.py").read_text())
    names, unreadable = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _reads(node):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
            else:
                unreadable.append(ast.unparse(node))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            unreadable.append(ast.unparse(node))
    assert not unreadable, f"settings.py reads variables whose names are not literal: {unreadable}"
    return names


def example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def test_the_reader_finds_what_settings_reads():
    names = settings_reads()
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "SCORING_TELEMETRY_SAMPLE_RATE", "TELEMETRY_AZURE_TABLE"} <= names


def test_every_setting_read_is_in_env_example():
    missing = sorted(settings_reads() - example_names())
    assert not missing, f".env.example lacks {missing}"


def test_every_name_in_env_example_is_read():
    unknown = sorted(example_names() - settings_reads() - set(READ_ELSEWHERE))
    assert not unknown, f".env.example lists settings nothing reads: {unknown}"

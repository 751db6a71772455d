from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.common.uris import mask_uri, mask_uris_in
from controlplane.env import env_bool, env_int, env_list, env_secret


class EnvTests:
    def test_booleans_accept_the_usual_spellings_and_refuse_others(self, monkeypatch):
        monkeypatch.setenv("X_FLAG", "Yes")
        assert env_bool("X_FLAG") is True
        monkeypatch.setenv("X_FLAG", "off")
        assert env_bool("X_FLAG", True) is False
        monkeypatch.setenv("X_FLAG", "maybe")
        with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
            env_bool("X_FLAG")

    def test_integers_fail_loudly(self, monkeypatch):
        monkeypatch.setenv("X_INT", "12")
        assert env_int("X_INT", 3) == 12
        monkeypatch.setenv("X_INT", "twelve")
        with pytest.raises(ImproperlyConfigured, match="X_INT"):
            env_int("X_INT", 3)

    def test_lists_split_on_commas(self, monkeypatch):
        monkeypatch.setenv("X_LIST", " a, b ,,c ")
        assert env_list("X_LIST") == ["a", "b", "c"]

    def test_secrets_can_come_from_a_file(self, monkeypatch, tmp_path):
        secret = tmp_path / "secret"
        secret.write_text("from-file\n")
        monkeypatch.setenv("X_SECRET", "from-env")
        assert env_secret("X_SECRET") == "from-env"
        monkeypatch.setenv("X_SECRET_FILE", str(secret))
        assert env_secret("X_SECRET") == "from-file"
        monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
        with pytest.raises(ImproperlyConfigured, match="X_SECRET_FILE"):
            env_secret("X_SECRET")


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("postgres://app:pa55@db:5432/x", "postgres://app:***@db:5432/x"),
        ("redis://:pa55@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://token@host/path", "https://***@host/path"),
        ("https://acct.blob.core.windows.net/c?sv=1&sig=abc", "https://acct.blob.core.windows.net/c?sv=1&sig=***"),
        ("sqlite:////var/mlflow.db", "sqlite:////var/mlflow.db"),
        ("databricks-uc", "databricks-uc"),
    ],
)
def test_uris_are_masked(uri, masked):
    assert mask_uri(uri) == masked


def test_uris_inside_messages_are_masked():
    text = "API request to http://u:topsecret@h:1/api failed; retry later"
    assert mask_uris_in(text) == "API request to http://u:***@h:1/api failed; retry later"

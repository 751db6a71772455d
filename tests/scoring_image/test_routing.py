"""The router's deterministic choices and its configuration file (pure functions of scoring/routing.py)."""

from __future__ import annotations

import pytest
from scoring.routing import ConfigError, EveryPercent, SmoothWeighted, parse_config


@pytest.mark.parametrize("weight", [1, 5, 20, 33, 50, 67, 99])
def test_every_hundred_picks_hold_each_weight_exactly(weight):
    picker = SmoothWeighted({"stable": 100 - weight, "canary": weight})
    for _ in range(3):
        picks = [picker.pick() for _ in range(100)]
        assert picks.count("canary") == weight


def test_a_zero_weight_is_never_picked_and_no_weight_picks_nothing():
    picker = SmoothWeighted({"stable": 100, "shadow": 0})
    assert {picker.pick() for _ in range(50)} == {"stable"}
    assert SmoothWeighted({"shadow": 0}).pick() is None


@pytest.mark.parametrize("percent", [0, 1, 25, 50, 99, 100])
def test_every_percent_takes_exactly_that_many_of_each_hundred(percent):
    gate = EveryPercent(percent)
    assert [sum(gate.take() for _ in range(100)) for _ in range(3)] == [percent] * 3


def test_a_configuration_is_read_with_its_digest():
    config = parse_config(
        b'{"backends": {"r3": "http://127.0.0.1:41001", "r4": "http://127.0.0.1:41002"},'
        b' "weights": {"r3": 80, "r4": 20}, "mirror": {"to": "r4", "percent": 50}}'
    )
    assert config.backends == {"r3": ("127.0.0.1", 41001), "r4": ("127.0.0.1", 41002)}
    assert (config.weights, config.mirror_to, config.mirror_percent) == ({"r3": 80, "r4": 20}, "r4", 50)
    assert len(config.digest) == 64 and config.as_dict()["mirror"] == {"to": "r4", "percent": 50}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[1]", "must be a JSON object"),
        (b'{"backend": {}}', "unknown keys: backend"),
        (b'{"backends": {"r1": "https://x:1"}}', "backends.r1 must look like http://HOST:PORT"),
        (b'{"backends": {"r1": "http://x:1"}, "weights": {"r2": 10}}', "weights.r2 names no backend"),
        (b'{"backends": {"r1": "http://x:1"}, "weights": {"r1": 101}}', "weights.r1 must be a whole number"),
        (b'{"backends": {"r1": "http://x:1"}, "mirror": {"to": "r9"}}', "mirror.to names no backend"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text)

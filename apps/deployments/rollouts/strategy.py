"""A rollout strategy: what a deploy request (or its environment's default) asks for, checked and completed with
defaults. Stored on the revision as ``Strategy.as_dict()`` so a resumed rollout follows the same plan.

Defaults are in the spirit of Flagger: success rate >= 99 %, p99 <= 500 ms over one-minute intervals, a couple of
failed checks tolerated before rolling back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = [
    "Strategy",
    "StrategyError",
    "STRATEGY_TYPES",
    "PROGRESSIVE",
    "strategy_parse",
    "strategy_of",
    "ALL_AT_ONCE",
    "CANARY",
    "BLUE_GREEN",
    "SHADOW",
]

ALL_AT_ONCE, CANARY, BLUE_GREEN, SHADOW = "all_at_once", "canary", "blue_green", "shadow"
STRATEGY_TYPES = (ALL_AT_ONCE, CANARY, BLUE_GREEN, SHADOW)
PROGRESSIVE = (CANARY, BLUE_GREEN, SHADOW)


class StrategyError(ValueError):
    """The strategy asked for is not valid; the message names the key and the rule."""


@dataclass(frozen=True)
class Strategy:
    type: str = ALL_AT_ONCE
    # canary: the candidate's percent of client traffic at each step, ascending, each below 100 (100 comes last).
    steps: tuple[int, ...] = (10, 25, 50)
    # every type but all_at_once: how long each step (an analysis interval) lasts.
    step_seconds: int = 60
    # blue_green and shadow: how many intervals of mirrored traffic must pass before the candidate takes over.
    intervals: int = 3
    # blue_green and shadow: percent of live requests mirrored to the candidate (answers discarded).
    mirror_percent: int = 100
    # the checks
    min_requests: int = 50  # per interval, on the candidate, before a verdict; fewer: wait (see max_wait_seconds)
    max_error_rate: float = 0.01  # share of the candidate's requests answered 5xx
    max_p99_ms: float = 500.0
    max_p50_ms: float | None = None
    max_drift: float | None = 0.25  # PSI of the candidate's inputs against the model's baseline, worst feature
    min_agreement: float | None = 0.99  # shadow and blue_green on mirrored traffic: share of equal predictions
    min_compared: int = 20  # mirrored requests sampled on both revisions before agreement is judged; fewer: skipped
    max_failed_checks: int = 2  # failed intervals tolerated; one more rolls back
    max_wait_seconds: int = 600  # an interval without min_requests for this long fails
    # blue_green: how long the old revision keeps running after the switch, so Roll back is instant.
    keep_warm_seconds: int = 300

    @property
    def progressive(self) -> bool:
        return self.type in PROGRESSIVE

    def weights(self) -> list[int]:
        """The candidate's percent of client traffic at each interval, in order (100 is the promotion, not listed)."""
        if self.type == CANARY:
            return list(self.steps)
        if self.type in (BLUE_GREEN, SHADOW):
            return [0] * self.intervals
        return []

    def mirror(self) -> int:
        return self.mirror_percent if self.type in (BLUE_GREEN, SHADOW) else 0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data


_INT_RANGES = {
    "step_seconds": (1, 86_400),
    "intervals": (1, 100),
    "mirror_percent": (1, 100),
    "min_requests": (0, 1_000_000),
    "min_compared": (1, 1_000_000),
    "max_failed_checks": (0, 100),
    "max_wait_seconds": (1, 86_400),
    "keep_warm_seconds": (0, 86_400),
}
_FLOAT_RANGES = {
    "max_error_rate": (0.0, 1.0),
    "max_p99_ms": (0.001, 3_600_000.0),
    "max_p50_ms": (0.001, 3_600_000.0),
    "max_drift": (0.0, 100.0),
    "min_agreement": (0.0, 1.0),
}
_NULLABLE = {"max_p50_ms", "max_drift", "min_agreement"}


def _number(key: str, value: object, *, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrategyError(f"strategy.{key} must be a number, not {value!r}.")
    if integer and (isinstance(value, float) and not value.is_integer()):
        raise StrategyError(f"strategy.{key} must be a whole number, not {value!r}.")
    low, high = (_INT_RANGES if integer else _FLOAT_RANGES)[key]
    if not low <= value <= high:
        raise StrategyError(f"strategy.{key} must be between {low:g} and {high:g}, not {value!r}.")
    return int(value) if integer else float(value)


def strategy_parse(data: object, *, default: dict | None = None) -> Strategy:
    """The strategy ``data`` asks for (a dict, or a type name), on top of ``default`` (the environment's), checked.
    Raises ``StrategyError`` naming the first problem."""
    base = dict(default or {})
    if data is None or data == {}:
        data = {}
    elif isinstance(data, str):
        data = {"type": data}
    elif not isinstance(data, dict):
        raise StrategyError('strategy must be an object such as {"type": "canary", "steps": [20, 50]}.')
    known = {f.name for f in fields(Strategy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StrategyError(f"strategy has unknown keys: {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
    if "type" in data and data.get("type") != base.get("type"):
        base = {k: v for k, v in base.items() if k != "type"}  # the environment's keys still count as defaults
    merged = {**base, **data}
    kind = merged.get("type", ALL_AT_ONCE)
    if kind not in STRATEGY_TYPES:
        raise StrategyError(f"strategy.type must be one of {', '.join(STRATEGY_TYPES)}, not {kind!r}.")
    values: dict[str, object] = {"type": kind}
    for key, value in merged.items():
        if key == "type":
            continue
        if key == "steps":
            if not isinstance(value, list | tuple) or not value:
                raise StrategyError("strategy.steps must be a non-empty list of percents, e.g. [10, 25, 50].")
            steps = [_step(v) for v in value]
            if steps != sorted(set(steps)):
                raise StrategyError(f"strategy.steps must rise strictly, each below 100, not {list(value)!r}.")
            values["steps"] = tuple(steps)
        elif value is None and key in _NULLABLE:
            values[key] = None
        else:
            values[key] = _number(key, value, integer=key in _INT_RANGES)
    return Strategy(**values)


def _step(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise StrategyError(f"strategy.steps are whole percents from 1 to 99 (100 is the promotion), not {value!r}.")
    return value


def strategy_of(stored: dict | None) -> Strategy:
    """A strategy stored on a revision (``as_dict``); revisions from before strategies are all at once."""
    if not stored:
        return Strategy()
    data = {k: v for k, v in stored.items() if k in {f.name for f in fields(Strategy)}}
    if "steps" in data:
        data["steps"] = tuple(data["steps"])
    return Strategy(**data)

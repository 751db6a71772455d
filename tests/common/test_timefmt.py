from datetime import UTC, datetime, timedelta

import pytest

from apps.common.timefmt import ago

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=59), "59 minutes ago"),
        (timedelta(hours=2, minutes=5), "2 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=15), "2 weeks ago"),
        (timedelta(days=400), "1 year ago"),
        (timedelta(seconds=-10), "just now"),
    ],
)
def test_relative_times(delta, text):
    assert ago(NOW - delta, NOW) == text


def test_a_time_well_in_the_future_is_shown_as_a_date():
    assert ago(NOW + timedelta(hours=3), NOW) == "2026-11-27 15:00"


def test_step_durations_are_shown_in_seconds_and_minutes():
    from apps.common.templatetags.ui import took

    assert took(NOW, NOW + timedelta(seconds=5.94)) == "5.9 s"
    assert took(NOW, NOW + timedelta(seconds=123)) == "2 min 3 s"
    assert took(NOW, None) == ""

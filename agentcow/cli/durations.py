"""Durations on the command line (``--older-than 2d``, ``--history-retention 30d``): a
count and a unit, repeated (``1h30m``), so that a shell needs no quoting."""

from __future__ import annotations

import re
from datetime import timedelta

from agentcow.cli.common import ExitCode, fail

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_PART = re.compile(r"(\d{1,6})([wdhms])")


def parse_duration(text: str, option: str) -> timedelta:
    """``text`` as a timedelta, or one line and exit 2 naming ``option``."""
    compact = text.strip().lower()
    if compact == "0":
        return timedelta(0)
    parts = _PART.findall(compact)
    if not parts or "".join(count + unit for count, unit in parts) != compact:
        fail(
            f"{option} takes a duration such as 30m, 12h, 7d or 1d12h (units w d h m s), "
            f"not {text!r}",
            ExitCode.USAGE,
        )
    total = timedelta(0)
    for count, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(count)})
    return total


def duration_text(value: timedelta) -> str:
    """``value`` as :func:`parse_duration` reads it (days, hours, minutes, seconds)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0"
    text = ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            text += f"{count}{unit}"
    return text

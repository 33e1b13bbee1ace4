"""The UTC day as the usage records and the daily limits name it ("2026-12-02").

Asked on every request; `strftime` on a fresh datetime costs microseconds, so the string is
made once per day number."""

from __future__ import annotations

import time
from functools import lru_cache

SECONDS_PER_DAY = 86400


def utc_day(now: float | None = None) -> str:
    return _day_name(int((time.time() if now is None else now) // SECONDS_PER_DAY))


@lru_cache(maxsize=4)
def _day_name(day_number: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_number * SECONDS_PER_DAY))

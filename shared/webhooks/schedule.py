"""What happens after an attempt: pure decisions (success, retry when, fail, disable), no I/O.

Retries follow `webhook_retry_schedule_s` (one delay per retry, ±`webhook_retry_jitter`), then the
delivery fails. A 429/503's `Retry-After` replaces the schedule's delay for that step, clamped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from shared.settings import Settings

HONOURS_RETRY_AFTER = frozenset({429, 503})


class Verdict(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"  # the schedule is exhausted
    GONE = "gone"  # 410: the receiver asks us to stop; the endpoint is disabled


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay_s: float | None = None  # for RETRY
    step: int = 0  # the schedule position after this attempt


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    r = rng or random
    return delay * (1 + r.uniform(-jitter, jitter))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None when absent/garbage."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def decide(
    settings: Settings,
    *,
    step: int,
    status_code: int | None,
    retry_after: str | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """The verdict on one attempt. `step` is the number of retries already scheduled for this delivery."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(Verdict.SUCCEEDED, step=step)
    if status_code == 410:
        return Decision(Verdict.GONE, step=step)
    schedule = settings.webhook_retry_schedule_s
    if step >= len(schedule):
        return Decision(Verdict.FAILED, step=step)
    delay = jittered(schedule[step], settings.webhook_retry_jitter, rng)
    if status_code in HONOURS_RETRY_AFTER:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            delay = min(max(asked, settings.webhook_retry_after_min_s), settings.webhook_retry_after_max_s)
    return Decision(Verdict.RETRY, delay_s=delay, step=step + 1)

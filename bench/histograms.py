"""A Prometheus histogram of a running process, read from its `/metrics` before and after a measured run.

Used for the placement group commit's batch sizes (`panelflow_placement_batch_size`): how many orders one
placement statement carries under the benchmark's load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending, +Inf last
    count: float
    total: float


async def scrape(url: str, name: str) -> Histogram:
    """The histogram `name` (summed over its label sets) from the metrics at `url`."""
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
        text = await r.text()
    cumulative: dict[float, float] = {}
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == name + "_bucket":
                bound = float(sample.labels["le"])
                cumulative[bound] = cumulative.get(bound, 0.0) + sample.value
            elif sample.name == name + "_count":
                count += sample.value
            elif sample.name == name + "_sum":
                total += sample.value
    return Histogram(tuple(sorted(cumulative.items())), count, total)


def _label(low: float, high: float) -> str:
    if math.isinf(high):
        return f">{low:g}"
    first = math.floor(low) + 1
    return f"{high:g}" if first >= high else f"{first}-{high:g}"


def distribution(before: Histogram, after: Histogram) -> dict[str, Any]:
    """What was observed between the two scrapes: the count, the mean and the count per bucket range
    (`"1"`, `"2"`, `"3-4"`, …, `">512"`), plus the share of observations in each."""
    count = after.count - before.count
    earlier = dict(before.buckets)
    ranges: dict[str, int] = {}
    low, previous = 0.0, 0.0
    for bound, cumulative in after.buckets:
        upto = cumulative - earlier.get(bound, 0.0)
        ranges[_label(low, bound)] = int(upto - previous)
        low, previous = bound, upto
    return {
        "count": int(count),
        "mean": round((after.total - before.total) / count, 2) if count else 0.0,
        "buckets": ranges,
        "share": {k: round(v / count, 3) for k, v in ranges.items()} if count else {},
    }

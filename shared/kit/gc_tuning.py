"""The cyclic garbage collector of a long-running process: the start-up heap frozen, collections made rarer.

Python's default thresholds (700, 10, 10) run a young collection every 700 net container allocations; a
request or a delivery allocates hundreds (records, dicts, coroutines, futures), and every full collection walks
the tens of thousands of objects the imports left behind. Under load that was 4-10 % of each process's user CPU
(docs/benchmarks.md). The trade is memory: cycles (few in this code: most garbage goes by reference counting)
live until a rarer collection finds them, and frozen start-up objects are never collected. The benchmark
reports each process's RSS.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

# The older generations' thresholds (Python's: 10, 10) with the raised young one: a full collection then
# comes once per 50 x 100 young ones.
OLDER_THRESHOLDS = (50, 100)


@dataclass(frozen=True)
class GcTuning:
    thresholds: tuple[int, int, int]
    frozen: int  # objects moved to the permanent generation


def tune_gc(young_threshold: int) -> GcTuning | None:
    """Freeze what exists now and raise the thresholds; `young_threshold` 0 leaves Python's collector as it is.

    Call once the process has started (imports, settings, application built), before it serves.
    """
    if young_threshold <= 0:
        return None
    gc.collect()  # what start-up left as garbage goes now, not frozen forever
    gc.freeze()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)
    t0, t1, t2 = gc.get_threshold()
    return GcTuning((t0, t1, t2), gc.get_freeze_count())

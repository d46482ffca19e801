"""The fault schedule: every class the asked number of times, spread over the run, the same for the same seed."""

from __future__ import annotations

from collections import Counter

from chaos.nemesis import CLASSES, KILLS, MAX_DOWN_S, MIN_DOWN_S, schedule


def test_a_ten_minute_run_injects_every_class_three_times_in_order_of_time() -> None:
    plan = schedule(600, seed=7)

    assert Counter(p.fault for p in plan) == dict.fromkeys(CLASSES, 3)
    times = [p.at_s for p in plan]
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < 600
    for p in plan:
        if p.fault in KILLS:
            assert p.down_s == 0
        else:
            assert MIN_DOWN_S <= p.down_s <= MAX_DOWN_S


def test_the_seed_decides_the_schedule() -> None:
    assert schedule(600, seed=7) == schedule(600, seed=7)
    assert schedule(600, seed=7) != schedule(600, seed=8)


def test_a_short_run_still_injects_each_class_once() -> None:
    assert Counter(p.fault for p in schedule(60, seed=1)) == dict.fromkeys(CLASSES, 1)

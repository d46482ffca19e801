"""The group commit itself, on a real event loop: batching, per-item outcomes, failures, shutdown, cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import time

import asyncpg
import pytest
import structlog

from shared.kit.group_commit import GroupCommit, Stopped, no_results
from shared.logging import context_without_message


class Gate:
    """A commit that records its batches and, while closed, holds every batch until opened."""

    def __init__(self, *, closed: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.open = asyncio.Event()
        self.entered = asyncio.Event()
        self.running = 0
        self.most_running = 0
        if not closed:
            self.open.set()

    async def commit(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.entered.set()
        try:
            await self.open.wait()
            await asyncio.sleep(0)
        finally:
            self.running -= 1
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_each_caller_gets_its_own_item_s_result_or_error() -> None:
    gate = Gate()
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=100)
    results = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert results[0::2] == [0, 20, 40]
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3", "odd 5"]
    assert gate.batches == [[0, 1, 2, 3, 4, 5]]  # submitted in one loop turn: one batch


async def test_batches_grow_up_to_the_limit_while_a_slot_is_busy() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=4, concurrency=1)
    first = asyncio.create_task(group.submit(0))
    await gate.entered.wait()  # the lone item went at once
    rest = [asyncio.create_task(group.submit(i)) for i in range(2, 22, 2)]
    await _turns()
    assert group.waiting == 10
    assert group.in_flight == 1
    gate.open.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 22, 2)]
    assert gate.batches == [[0], [2, 4, 6, 8], [10, 12, 14, 16], [18, 20]]
    assert gate.most_running == 1


async def test_concurrency_bounds_the_batches_in_flight() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=2, concurrency=3)
    callers = []
    for i in range(0, 40, 2):
        callers.append(asyncio.create_task(group.submit(i)))
        await asyncio.sleep(0)
    await _turns()
    assert group.in_flight == 3
    gate.open.set()
    assert await asyncio.gather(*callers) == [i * 10 for i in range(0, 40, 2)]
    assert gate.most_running == 3
    assert sorted(i for batch in gate.batches for i in batch) == list(range(0, 40, 2))
    assert max(len(b) for b in gate.batches) == 2


async def test_without_a_limit_every_batch_starts_at_once() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=1, concurrency=None)
    callers = [asyncio.create_task(group.submit(i)) for i in range(0, 20, 2)]
    await _turns()
    assert group.in_flight == 10
    gate.open.set()
    await asyncio.gather(*callers)


async def test_a_failing_batch_fails_only_its_own_callers() -> None:
    async def commit(items: list[int]) -> list[int]:
        await _turns()
        if 7 in items:
            raise asyncpg.PostgresConnectionError("database gone")
        return items

    group: GroupCommit[int, int] = GroupCommit(commit, max_size=5, concurrency=4)
    results = await asyncio.gather(*(group.submit(i) for i in range(20)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, asyncpg.PostgresConnectionError)]
    assert failed == [5, 6, 7, 8, 9]  # the batch holding 7, and nobody else
    assert [r for i, r in enumerate(results) if i not in failed] == [i for i in range(20) if i not in failed]


async def test_retry_alone_lets_a_bad_item_fail_alone() -> None:
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        if 13 in items:
            raise ValueError("unlucky")
        await _turns()
        written.append(items)

    group: GroupCommit[int, None] = GroupCommit(no_results(write), max_size=8, retry_alone=True)
    results = await asyncio.gather(*(group.submit(i) for i in range(20)), return_exceptions=True)
    await group.close()
    assert [type(r) for r in results].count(ValueError) == 1
    assert isinstance(results[13], ValueError)
    assert sorted(i for batch in written for i in batch) == [i for i in range(20) if i != 13]
    assert max(len(batch) for batch in written) == 8  # batches form (and are capped)
    assert len(written) < 20


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("retry_alone", [False, True])
async def test_callers_see_the_commit_s_error(n: int, retry_alone: bool) -> None:
    async def write(_items: list[int]) -> None:
        raise asyncpg.PostgresConnectionError("database gone")

    group: GroupCommit[int, None] = GroupCommit(no_results(write), max_size=10, retry_alone=retry_alone)
    results = await asyncio.gather(*(group.submit(i) for i in range(n)), return_exceptions=True)
    assert all(isinstance(r, asyncpg.PostgresConnectionError) for r in results)


async def test_a_commit_that_miscounts_its_outcomes_fails_its_callers() -> None:
    async def commit(items: list[int]) -> list[int]:
        return items[1:]

    group: GroupCommit[int, int] = GroupCommit(commit, max_size=10)
    results = await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "2 outcomes for 3 items" in str(r) for r in results)


async def test_a_lone_item_is_committed_at_once() -> None:
    written: list[list[str]] = []

    async def write(items: list[str]) -> None:
        written.append(items)

    group: GroupCommit[str, None] = GroupCommit(no_results(write), max_size=100)
    await asyncio.wait_for(group.submit("alone"), 0.5)
    assert written == [["alone"]]


async def test_linger_gathers_items_and_a_full_batch_does_not_wait() -> None:
    gate = Gate()
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=4, concurrency=None, linger_s=0.3)
    started = time.monotonic()
    early = asyncio.create_task(group.submit(0))
    await _turns()
    late = asyncio.create_task(group.submit(2))
    assert await asyncio.gather(early, late) == [0, 20]
    assert time.monotonic() - started >= 0.3
    assert gate.batches == [[0, 2]]  # the linger let the second join the first

    slow: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=4, concurrency=None, linger_s=60)
    assert await asyncio.wait_for(asyncio.gather(*(slow.submit(i) for i in (4, 6, 8, 10))), 1) == [40, 60, 80, 100]


async def test_a_busy_key_waits_for_the_next_batch() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=10, concurrency=4, exclusive=lambda i: i // 100)
    first = asyncio.create_task(group.submit(100))
    await gate.entered.wait()
    others = [asyncio.create_task(group.submit(i)) for i in (102, 200, 104, 300)]
    await _turns()
    # Key 1 is in flight: 102 and 104 are held back while 200 and 300 go in a batch of their own.
    assert gate.batches == [[100], [200, 300]]
    gate.open.set()
    assert await asyncio.gather(first, *others) == [1000, 1020, 2000, 1040, 3000]
    assert gate.batches == [[100], [200, 300], [102, 104]]


async def test_close_commits_everything_waiting_and_in_flight() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=3, concurrency=1, linger_s=60)
    callers = [asyncio.create_task(group.submit(i)) for i in range(0, 20, 2)]
    await _turns()
    assert gate.batches == [[0, 2, 4]]  # a full batch did not linger; the rest lingers, or waits for the slot
    closing = asyncio.create_task(group.close())
    await _turns()
    assert not closing.done()  # a batch is still in flight
    gate.open.set()
    await asyncio.wait_for(closing, 1)
    assert all(c.done() for c in callers)
    assert [c.result() for c in callers] == [i * 10 for i in range(0, 20, 2)]
    assert group.waiting == 0
    assert group.in_flight == 0


async def test_a_cancelled_caller_does_not_lose_the_others_results() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=10, concurrency=1)
    occupant = await _occupy_the_slot(group, gate)
    callers = {i: asyncio.create_task(group.submit(i)) for i in (2, 4, 6)}
    await _turns()
    callers[4].cancel()
    gate.open.set()
    assert await occupant == 1000
    assert await callers[2] == 20
    assert await callers[6] == 60
    with pytest.raises(asyncio.CancelledError):
        await callers[4]
    assert [2, 4, 6] in gate.batches  # without drop_abandoned its item is committed all the same


async def test_drop_abandoned_leaves_a_cancelled_caller_s_item_out() -> None:
    gate = Gate(closed=True)
    group: GroupCommit[int, int] = GroupCommit(gate.commit, max_size=10, concurrency=1, drop_abandoned=True)
    occupant = await _occupy_the_slot(group, gate)
    callers = {i: asyncio.create_task(group.submit(i)) for i in (2, 4, 6)}
    await _turns()
    callers[4].cancel()
    gate.open.set()
    assert await occupant == 1000
    assert await callers[2] == 20
    assert await callers[6] == 60
    assert [2, 6] in gate.batches
    assert all(4 not in b for b in gate.batches)


async def test_a_stopped_batch_fails_its_callers_and_the_waiting_ones() -> None:
    gate = Gate(closed=True)
    batch_tasks: list[asyncio.Task[object]] = []

    async def commit(items: list[int]) -> list[int | BaseException]:
        task = asyncio.current_task()
        assert task is not None
        batch_tasks.append(task)
        return await gate.commit(items)

    group: GroupCommit[int, int] = GroupCommit(commit, max_size=2, concurrency=1)
    callers = [asyncio.create_task(group.submit(i)) for i in (0, 2, 4)]
    await gate.entered.wait()
    batch_tasks[0].cancel()  # as the event loop's shutdown does
    results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True), 1)
    assert all(isinstance(r, Stopped) for r in results), results
    with pytest.raises(Stopped):
        await group.submit(6)
    assert group.waiting == 0


async def test_on_batch_reports_each_committed_batch() -> None:
    seen: list[tuple[int, float]] = []
    group: GroupCommit[int, int] = GroupCommit(
        Gate().commit, max_size=3, on_batch=lambda size, seconds: seen.append((size, seconds))
    )
    await asyncio.gather(*(group.submit(i) for i in range(0, 14, 2)))
    assert [size for size, _ in seen] == [3, 3, 1]
    assert all(seconds >= 0 for _, seconds in seen)


async def test_a_batch_is_committed_without_any_one_message_s_log_fields() -> None:
    seen: list[dict[str, object]] = []

    async def write(items: list[int]) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    group: GroupCommit[int, None] = GroupCommit(no_results(write), max_size=10, context=context_without_message)

    async def one(n: int) -> None:
        structlog.contextvars.bind_contextvars(correlation_id=f"c-{n}", event_id=f"e-{n}", process="webhooks")
        await group.submit(n)

    await asyncio.gather(*(asyncio.create_task(one(n)) for n in range(3)))
    assert seen
    assert all("correlation_id" not in c and "event_id" not in c for c in seen), seen
    assert all(c.get("process") == "webhooks" for c in seen), seen  # the process's own fields stay


async def test_by_default_a_batch_runs_in_the_context_the_group_commit_was_built_in() -> None:
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="nobody")
    owner.set("builder")
    seen: list[str] = []

    async def write(items: list[int]) -> None:
        seen.append(owner.get())

    group: GroupCommit[int, None] = GroupCommit(no_results(write), max_size=10)

    async def caller(n: int) -> None:
        owner.set(f"caller-{n}")
        await group.submit(n)

    await asyncio.gather(*(asyncio.create_task(caller(n)) for n in range(3)))
    assert seen == ["builder"]


async def _occupy_the_slot(group: GroupCommit[int, int], gate: Gate) -> asyncio.Task[int]:
    """A batch in flight (held by the closed gate), so that items submitted next wait for the slot."""
    occupant = asyncio.create_task(group.submit(100))
    await gate.entered.wait()
    return occupant


async def _turns(n: int = 50) -> None:
    """Lets the event loop run this many turns: enough for every batch that can start to take its items."""
    for _ in range(n):
        await asyncio.sleep(0)

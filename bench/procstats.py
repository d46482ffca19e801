"""What the benchmarks' processes cost the machine: CPU seconds and peak resident memory, read from /proc.

Groups: each named root pid with its descendants (the api's children with PANELFLOW_API_PROCESSES), Postgres
and RabbitMQ. CPU of Postgres counts every Postgres process (exited backends through the postmaster's
cutime), so on a shared machine it includes whatever else uses the server meanwhile; its memory counts only
the backends connected to the benchmark's database (told apart by their process title), summed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of one process and of its children that exited (Postgres backends, api children), 0 when
    it is gone: utime + stime + cutime + cstime."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS


def _process_table() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
                table.append((int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]))
    return table


def _is_rabbitmq(name: str) -> bool:
    return name in ("beam.smp", "erl_child_setup")


def _owners(roots: dict[str, int], table: list[tuple[int, int, str]]) -> dict[int, str]:
    owner: dict[int, str] = {pid: name for name, pid in roots.items()}
    for _ in range(3):  # children and theirs
        owner |= {pid: owner[parent] for pid, parent, _ in table if parent in owner and pid not in owner}
    return owner


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all but idle and iowait), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(fields[9])
    return inodes


def listener(port: int, server: str) -> int | None:
    """The pid of the local `server` ("postgres", "rabbitmq") listening on `port`: the postmaster or beam.smp
    whose process tree is that server; None when no such process of this machine listens there."""
    inodes = _listening_inodes(port)
    table = _process_table()
    found: dict[int, int] = {}
    for pid, parent, name in table:
        if not (name.startswith("postgres") if server == "postgres" else _is_rabbitmq(name)):
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        found[pid] = parent
                        break
    roots = [pid for pid, parent in found.items() if parent not in found]
    return roots[0] if roots else None


def cpu_snapshot(roots: dict[str, int], servers: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds used so far by each named process tree, by Postgres, by RabbitMQ, by wrk (the load
    generator), by this benchmark process, and by the whole machine (`_machine`, from which `cpu_per_unit`
    derives `other`). Call it while no child of this process but wrk exits (the measured children run on).

    `servers`: the root pids of the Postgres and RabbitMQ the benchmark uses (`listener`): only their
    process trees count as "postgres" and "rabbitmq" (other servers on the machine, such as tests' private
    ones, go to `other`); without them every Postgres and RabbitMQ process of the machine counts."""
    servers = servers or {}
    table = _process_table()
    owner = _owners({**roots, **servers}, table)
    totals = dict.fromkeys([*roots, "postgres", "rabbitmq", "wrk"], 0.0)
    me = os.getpid()
    for pid, parent, name in table:
        group = (
            owner.get(pid) if pid in owner
            else "postgres" if "postgres" not in servers and name.startswith("postgres")
            else "rabbitmq" if "rabbitmq" not in servers and _is_rabbitmq(name)
            else "wrk" if name == "wrk" and parent == me
            else None
        )  # fmt: skip
        if group is not None:
            totals[group] += _cpu_seconds(pid)
    # wrk runs as this process's child: once it exited, its CPU is in our children's times.
    mine = os.times()
    totals["wrk"] += mine.children_user + mine.children_system
    totals["bench"] = mine.user + mine.system
    totals["_machine"] = _machine_busy_seconds()
    return totals


def kernel_seconds(roots: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(user, kernel) CPU seconds used so far by each named process tree (as in `cpu_snapshot`)."""
    table = _process_table()
    owner = _owners(roots, table)
    split = dict.fromkeys(roots, (0.0, 0.0))
    for pid, group in owner.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        user, kernel = split[group]
        ticks = [int(f) for f in fields[11:15]]  # utime, stime, cutime, cstime
        split[group] = (user + (ticks[0] + ticks[2]) / _CLOCK_TICKS, kernel + (ticks[1] + ticks[3]) / _CLOCK_TICKS)
    return split


def kernel_share(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """The share of each tree's CPU over a run that was spent in the kernel (system calls, the network stack)."""
    shares = {}
    for group, (user, kernel) in after.items():
        du, dk = user - before[group][0], kernel - before[group][1]
        shares[group] = round(dk / (du + dk), 3) if du + dk > 0 else 0.0
    return shares


def cpu_per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """Microseconds of CPU per unit (request, order id, delivery), by process group, over one measured run;
    `other` is the machine's busy CPU that no group accounts for (whatever else runs on the machine: a large
    `other` means a busy machine, whose figures are less reliable)."""
    spent = {group: after[group] - before[group] for group in before}
    machine = spent.pop("_machine", None)
    if machine is not None:
        spent["other"] = max(0.0, machine - sum(spent.values()))
    if not spent.get("wrk"):
        spent.pop("wrk", None)  # a benchmark without wrk
    return {group: round(seconds / max(units, 1) * 1e6, 1) for group, seconds in spent.items()}


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (Postgres's shared buffers) divided among the processes using them."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _backend_database(pid: int) -> str | None:
    """The database of a Postgres backend, from its process title `postgres: <user> <database> <host> <state>`."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    parts = title.split()
    if not parts or parts[0] != "postgres:":
        return None
    # With a cluster name (Debian: `postgres: 15/main: <user> <database> …`) it comes first.
    for i, part in enumerate(parts[2:], start=2):
        if "(" in part or part == "[local]":
            return parts[i - 1]
    return None


class RssSampler:
    """Samples resident memory every `interval` seconds while running; `peaks()` gives, per group, the highest
    sum over its processes seen at one moment (in MB), and for Postgres also the largest backend and the sum of
    the backends' proportional set sizes (their shared buffers counted once)."""

    def __init__(
        self, roots: dict[str, int], database: str | None, interval: float = 0.25, rabbitmq: int | None = None
    ) -> None:
        """`rabbitmq`: the broker's root pid (`listener`); without it every RabbitMQ process counts."""
        self._roots = roots
        self._rabbitmq = rabbitmq
        self._database = database
        self._interval = interval
        self._peak: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        table = _process_table()
        broker = {"rabbitmq": self._rabbitmq} if self._rabbitmq is not None else {}
        owner = _owners({**self._roots, **broker}, table)
        now: dict[str, float] = dict.fromkeys([*self._roots, "rabbitmq"], 0.0)
        backends: list[int] = []
        for pid, _, name in table:
            if pid in owner:
                now[owner[pid]] += _rss_bytes(pid)
            elif not broker and _is_rabbitmq(name):
                now["rabbitmq"] += _rss_bytes(pid)
            elif name.startswith("postgres") and self._database and _backend_database(pid) == self._database:
                backends.append(pid)
        if self._database:
            rss = [_rss_bytes(pid) for pid in backends]
            now["postgres_backends_sum"] = float(sum(rss))
            now["postgres_backend_max"] = float(max(rss, default=0))
            now["postgres_backends_pss_sum"] = float(sum(_pss_bytes(pid) for pid in backends))
            now["postgres_backends"] = float(len(backends)) * MB  # a count, stored scaled so peaks() keeps it
        for group, value in now.items():
            self._peak[group] = max(self._peak.get(group, 0.0), value)

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self._sample)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sample()
        return self.peaks()

    def peaks(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for group, value in self._peak.items():
            result[group] = int(value / MB) if group == "postgres_backends" else round(value / MB, 1)
        return result

"""Where a py-spy flame graph (SVG) says the CPU went: samples per function (self time) and per package.

py-spy samples only threads that are running (not waiting in epoll), so a function's share of the samples is
its share of the process's CPU; times the process's CPU per unit it gives the function's µs per unit.
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(
    r'<g><title>(?P<title>.*?) \((?P<samples>[\d,]+) samples?, [\d.]+%\)</title>'
    r'<rect x="[^"]*" y="(?P<y>[\d.]+)"[^>]*?fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)  # fmt: skip
_LOCATION = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
# Leaf frames in the C library that are system calls: the kernel's time, or the wait for a core after it.
SYSCALLS = frozenset(
    ["write", "writev", "read", "readv", "send", "sendto", "sendmsg", "recv", "recvfrom", "recvmsg", "epoll_wait",
     "epoll_pwait", "epoll_ctl", "syscall", "getrandom", "getpid", "futex", "accept4", "close", "connect"]
)  # fmt: skip


@dataclass(frozen=True)
class Frame:
    title: str
    y: float
    x: int
    w: int


def frames(svg: str) -> list[Frame]:
    return [
        Frame(html.unescape(m["title"]), float(m["y"]), int(m["x"]), int(m["w"]))
        for m in _FRAME.finditer(svg)
        if m["title"] != "all"
    ]


def self_samples(found: list[Frame]) -> Counter[str]:
    """Samples per frame title spent in the frame itself (its width less its children's)."""
    by_depth: dict[float, list[Frame]] = {}
    for f in found:
        by_depth.setdefault(f.y, []).append(f)
    for row in by_depth.values():
        row.sort(key=lambda f: f.x)
    starts = {y: [f.x for f in row] for y, row in by_depth.items()}
    depths = sorted(by_depth)
    step = min((b - a for a, b in itertools.pairwise(depths)), default=16.0)
    own = {id(f): f.w for f in found}
    for f in found:
        parents = by_depth.get(f.y - step) if depths[0] < depths[-1] else None
        if not parents:
            continue
        i = bisect.bisect_right(starts[f.y - step], f.x) - 1
        if i >= 0 and parents[i].x <= f.x < parents[i].x + parents[i].w:
            own[id(parents[i])] -= f.w
    totals: Counter[str] = Counter()
    for f in found:
        totals[f.title] += own[id(f)]
    return totals


# C sources of the extensions on the hot paths (py-spy --native names their frames by source file).
_C_SOURCES = {
    "loop.c": "uvloop", "protocol.c": "asyncpg", "pgproto.c": "asyncpg", "recordobj.c": "asyncpg",
    "_helpers_c.c": "aiohttp", "_http_parser.c": "aiohttp", "_http_writer.c": "aiohttp", "_multidict.c": "multidict",
    "_quoting_c.c": "yarl", "_hashopenssl.c": "hashlib (OpenSSL)", "_json.c": "json (C)",
    "_asynciomodule.c": "asyncio (C)",
}  # fmt: skip


def package(where: str) -> str:
    """What a frame's location belongs to: our modules by area (`shared.ingress`), libraries and standard modules
    by top-level name, C extensions by their library, the interpreter itself, the C library."""
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    name = Path(path).name
    if name in _C_SOURCES:
        return _C_SOURCES[name]
    if ".so" in name:
        extension = name.split(".", 1)[0] + ".c"  # e.g. loop.cpython-311-x86_64-linux-gnu.so
        if extension in _C_SOURCES:
            return _C_SOURCES[extension]
        if name.startswith(("libpython", "python")):
            return "python (interpreter)"
        return "hashlib (OpenSSL)" if name.startswith("libcrypto") else name.split(".so", 1)[0]
    if name.endswith((".c", ".h")):
        return "python (interpreter)"
    if path == "<string>":
        return "dataclasses (generated __init__)"
    if path.startswith("<frozen "):
        return path.removeprefix("<frozen ").removesuffix(">")
    if "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[1]
    parts = path.split("/")
    if parts[0] in ("shared", "services", "bench") and len(parts) > 1:
        return parts[0] + "." + parts[1].removesuffix(".py")
    return parts[0].removesuffix(".py") or "?"


def summary(svg_path: Path, top: int = 20) -> dict[str, Any]:
    """Samples; the share of them in a system call (`syscall_share`); and of the others (user-space CPU) the
    top functions by self samples and every package's share (≥ 0.5 %), as fractions of the others.

    py-spy counts a thread that is runnable as busy, so a sample in `write` may be the kernel's work or a wait
    for a core after the call (on a loaded machine, mostly the latter): system calls are split off, and the
    process's kernel CPU (its stime) stands for them instead (bench.profile)."""
    found = frames(svg_path.read_text(errors="replace"))
    own = self_samples(found)
    total = sum(own.values())
    if not total:
        return {"samples": 0}
    by_function: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    in_syscalls = 0
    for title, n in own.items():
        m = _LOCATION.match(title)
        name, where = (m["name"], m["where"]) if m else (title, "")
        if name in SYSCALLS and where.startswith("libc"):
            in_syscalls += n
            continue
        location = where.rsplit(":", 1)[0]
        by_function[f"{name} ({location})" if location else name] += n
        by_package[package(where)] += n
    user = max(total - in_syscalls, 1)
    return {
        "samples": total,
        "syscall_share": round(in_syscalls / total, 4),
        "functions": [[name, round(n / user, 4)] for name, n in by_function.most_common(top) if n],
        "packages": [[name, round(n / user, 4)] for name, n in by_package.most_common() if n / user >= 0.005],
    }

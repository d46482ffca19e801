"""Run panelflow's processes together for development and demos (`make run`, `make up`, `make down`).

`python -m shared.cli.stack run`   all processes in the foreground, output prefixed by process name (and kept in
                                   `.run/<name>.log`); Ctrl-C or SIGTERM stops them all. One that dies is started
                                   again (the others keep running), as an orchestrator would: after 0.5 s, doubling
                                   to 30 s while it keeps dying within `FAST_CRASH_S`; after `FAST_CRASHES` such
                                   deaths in a row the stack gives up and stops, saying which process and why.
                                   Once the api answers it prints how to call it and places one demo order itself,
                                   printing each status it passes through (`--no-demo-order` leaves that out).
`python -m shared.cli.stack up`    the same in the background; returns once the api answers `/healthz`, then
                                   writes `.run/env` (PANELFLOW_API_URL + the demo lines of `.run/demo.env`).
`python -m shared.cli.stack down`  stops the background stack.

The stack is the local demo: besides the processes it starts the example webhook receiver with the demo
webhook's secret (from `.run/demo.env`, written by `panelflow demo seed`), and gives every process the settings
that let webhooks reach it, and the worker reach the provider simulator, over plain http on 127.0.0.1
(`shared.demo.local_webhook_env`, `local_upstream_env`; never code defaults).

A new process joins the stack by adding one line to `PROCESSES`; a line whose package has no `__main__` yet
is skipped, so the list can name processes before they land.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from shared.cli.demo_order import DemoOrderError, place_and_follow
from shared.demo import local_upstream_env, local_webhook_env
from shared.settings import Settings

RUN_DIR = Path(".run")
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 60.0
# A process that dies is restarted after RESTART_BASE_S, doubling up to RESTART_MAX_S while it keeps dying
# within FAST_CRASH_S of its start; FAST_CRASHES such deaths in a row and the stack gives up.
RESTART_BASE_S = 0.5
RESTART_MAX_S = 30.0
FAST_CRASH_S = 10.0
FAST_CRASHES = 5


@dataclass(frozen=True)
class Process:
    name: str
    module: str
    args: tuple[str, ...] = ()


RECEIVER = "receiver"
PROCESSES = (
    Process("api", "services.api"),
    Process("worker", "services.worker"),
    Process("webhooks", "services.webhooks"),
    Process("provider-sim", "services.provider_sim"),
    Process(RECEIVER, "shared.webhooks.receiver_example"),
)


def _runnable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available(settings: Settings, demo: dict[str, str]) -> list[Process]:
    """The processes to start; the receiver with the demo webhook's port and secret, or not at all without one."""
    found = []
    for process in PROCESSES:
        if process.name == RECEIVER:
            secret = demo.get("PANELFLOW_DEMO_WEBHOOK_SECRET")
            if not secret or not _runnable(process.module):
                continue
            # A file only we can read, not an argument: arguments show in `ps`.
            RUN_DIR.mkdir(mode=0o700, exist_ok=True)
            secret_file = RUN_DIR / "receiver-secret"
            secret_file.touch(mode=0o600)
            secret_file.chmod(0o600)
            secret_file.write_text(secret + "\n")
            process = Process(
                process.name,
                process.module,
                ("--port", str(settings.demo_webhook_port), "--secret-file", str(secret_file)),
            )
        elif not _runnable(process.module + ".__main__"):
            continue
        found.append(process)
    return found


def api_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own http URL
            return bool(resp.status == 200)
    except OSError:
        return False


def read_env(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip():
                values[name.strip()] = value.strip()
    return values


def write_env(settings: Settings) -> dict[str, str]:
    """`.run/env`: the api URL and the demo's ids and key, as KEY=value lines."""
    values = {"PANELFLOW_API_URL": api_url(settings), **read_env(RUN_DIR / "demo.env")}
    RUN_DIR.mkdir(exist_ok=True)
    (RUN_DIR / "env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return values


def banner(values: dict[str, str], *, background: bool) -> str:
    url = values["PANELFLOW_API_URL"] + "/api/v2"
    key = values.get("PANELFLOW_DEMO_KEY", "<key: panelflow key create --account ID>")
    service = values.get("PANELFLOW_DEMO_SERVICE", "<service id>")
    stop = "make down" if background else "Ctrl-C"
    hook = values.get("PANELFLOW_DEMO_WEBHOOK_URL")
    where = ".run/receiver.log" if background else "the lines prefixed 'receiver'"
    webhook = (
        f"  webhook:       {values.get('PANELFLOW_DEMO_WEBHOOK')} -> {hook}, all events, signed;\n"
        f"                 the example receiver verifies each delivery and prints it ({where})\n"
        if hook
        else "  webhook:       none (run `panelflow demo seed` to register the demo receiver)\n"
    )
    return f"""
panelflow is running: {url}
  demo key:      {key}
  demo service:  {service} (type Default)
{webhook}  place an order:
    curl -s {url} -d key={key} -d action=add -d service={service} \\
         -d link=https://example.com/post/1 -d quantity=100 -d request_id=demo-$(date +%s)
  its status:    curl -s {url} -d key={key} -d action=status -d order=<the order id>
  balance:       curl -s {url} -d key={key} -d action=balance
  logs in .run/*.log; stop with {stop}
"""


# --- foreground -------------------------------------------------------------------------------------------------


class Stack:
    def __init__(
        self, processes: list[Process], settings: Settings, *, show_banner: bool, demo_order: bool = False
    ) -> None:
        self.processes = processes
        self.settings = settings
        self.show_banner = show_banner
        self.demo_order = demo_order
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self.width = max(len(p.name) for p in processes)
        self.stopping = asyncio.Event()
        self.gave_up = asyncio.Event()
        self._env: dict[str, str] = {}
        self._pumps: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        # A local development stack: development keys unless the caller says otherwise (make sets it too).
        self._env = local_upstream_env(
            local_webhook_env({"PANELFLOW_ENV": "development", **os.environ, "PYTHONUNBUFFERED": "1"})
        )
        for process in self.processes:
            await self._start(process)
        self._say(f"started {', '.join(f'{n} (pid {c.pid})' for n, c in self.children.items())}")
        keepers = [asyncio.create_task(self._keep_running(process)) for process in self.processes]
        banner_task = asyncio.create_task(self._banner()) if self.show_banner or self.demo_order else None
        stop = asyncio.create_task(self.stopping.wait())
        gave_up = asyncio.create_task(self.gave_up.wait())
        await asyncio.wait([stop, gave_up], return_when=asyncio.FIRST_COMPLETED)
        status = 1 if self.gave_up.is_set() else 0
        if banner_task is not None:
            banner_task.cancel()
        await self._stop_all()
        for task in (stop, gave_up, *keepers):
            task.cancel()
        await asyncio.gather(*self._pumps, *keepers, return_exceptions=True)
        return status

    async def _start(self, process: Process) -> asyncio.subprocess.Process:
        # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", process.module, *process.args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self._env, start_new_session=True,
        )  # fmt: skip
        self.children[process.name] = child
        (RUN_DIR / f"{process.name}.pid").write_text(f"{child.pid}\n")
        self._pumps.append(asyncio.create_task(self._pump(process.name, child)))
        return child

    async def _keep_running(self, process: Process) -> None:
        """Restart `process` whenever it dies on its own, as an orchestrator would; give up on a crash loop."""
        name = process.name
        fast_crashes = 0
        while True:
            child = self.children[name]
            started = time.monotonic()
            code = await child.wait()
            if self.stopping.is_set():
                return
            fast_crashes = fast_crashes + 1 if time.monotonic() - started < FAST_CRASH_S else 0
            if fast_crashes >= FAST_CRASHES:
                self._say(
                    f"{name} exited with status {code}, {fast_crashes} times in a row within {FAST_CRASH_S:.0f} s"
                    f" of starting: giving up and stopping the stack (its output: .run/{name}.log)"
                )
                self.gave_up.set()
                return
            delay = min(RESTART_MAX_S, RESTART_BASE_S * 2 ** max(0, fast_crashes - 1))
            self._say(f"{name} exited with status {code}: restarting it in {delay:g} s (its output: .run/{name}.log)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            child = await self._start(process)
            if self.stopping.is_set():  # stopped while it was starting: _stop_all may not have seen it
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
                return
            self._say(f"{name} restarted (pid {child.pid})")

    async def _stop_all(self) -> None:
        self.stopping.set()
        for child in self.children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, child in self.children.items():
            try:
                await asyncio.wait_for(child.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                self._say(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
            with contextlib.suppress(FileNotFoundError):
                (RUN_DIR / f"{name}.pid").unlink()
        self._say("stopped")

    async def _pump(self, name: str, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        prefix = f"{name:<{self.width}} | "
        with (RUN_DIR / f"{name}.log").open("a") as log:
            async for raw in child.stdout:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    async def _banner(self) -> None:
        health = api_url(self.settings) + "/healthz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if await asyncio.to_thread(_answers, health):
                values = write_env(self.settings)
                if self.show_banner:
                    print(banner(values, background=False), flush=True)
                if self.demo_order:
                    await self._demo_order(values)
                return
            await asyncio.sleep(0.3)
        self._say(f"the api did not answer {health} within {READY_TIMEOUT_S:.0f} s")

    async def _demo_order(self, values: dict[str, str]) -> None:
        key, service = values.get("PANELFLOW_DEMO_KEY"), values.get("PANELFLOW_DEMO_SERVICE")
        if not key or not service:
            self._say("no demo key in .run/demo.env (run `panelflow demo seed`): no demo order placed")
            return
        try:
            await place_and_follow(values["PANELFLOW_API_URL"] + "/api/v2", key, service, self._say)
        except (DemoOrderError, OSError, TimeoutError, ValueError, KeyError) as exc:
            self._say(f"demo order: {exc!r}")

    def _say(self, text: str) -> None:
        print(f"{'stack':<{self.width}} | {text}", flush=True)


# --- background -------------------------------------------------------------------------------------------------


def _running_pid() -> int | None:
    path = RUN_DIR / "stack.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def up(settings: Settings) -> int:
    health = api_url(settings) + "/healthz"
    pid = _running_pid()
    if pid is None:
        RUN_DIR.mkdir(exist_ok=True)
        with (RUN_DIR / "stack.log").open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "shared.cli.stack", "run", "--no-banner", "--no-demo-order"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        pid = child.pid
        (RUN_DIR / "stack.pid").write_text(f"{pid}\n")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(health):
            if child.poll() is not None or time.monotonic() > deadline:
                tail = (RUN_DIR / "stack.log").read_text(errors="replace")[-3000:]
                print(f"{tail}\nstack: the api did not come up (log: .run/stack.log)", file=sys.stderr)
                down()
                return 1
            time.sleep(0.2)
    elif not _answers(health):
        print(f"stack: a stack runs (pid {pid}) but {health} does not answer; `make down` first", file=sys.stderr)
        return 1
    print(banner(write_env(settings), background=True))
    return 0


def down() -> int:
    pid = _running_pid()
    if pid is None:
        print("stack: not running")
        (RUN_DIR / "stack.pid").unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        print(f"stack: pid {pid} did not stop: killing its process group", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    (RUN_DIR / "stack.pid").unlink(missing_ok=True)
    print("stack: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.cli.stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "up", "down"))
    parser.add_argument("--no-banner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-demo-order", action="store_true", help="run: do not place the demo order")
    args = parser.parse_args(argv)
    if args.action == "down":
        return down()
    settings = Settings()
    if args.action == "up":
        return up(settings)
    pid = _running_pid()
    if pid is not None and pid != os.getpid() and not args.no_banner:
        print(f"stack: already running in the background (pid {pid}); `make down` first", file=sys.stderr)
        return 1
    processes = available(settings, read_env(RUN_DIR / "demo.env"))
    RUN_DIR.mkdir(exist_ok=True)
    missing = [p.name for p in PROCESSES if p.name not in {q.name for q in processes}]
    if missing:
        print(f"stack: skipped (not built yet, or no demo webhook in .run/demo.env): {', '.join(missing)}", flush=True)
    stack = Stack(processes, settings, show_banner=not args.no_banner, demo_order=not args.no_demo_order)
    return asyncio.run(stack.run())


if __name__ == "__main__":
    sys.exit(main())

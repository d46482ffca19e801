"""Private RabbitMQ and Postgres instances owned by one test, for outages and restarts.

The machine's shared services are used by other engineers and CI at the same time, so a test that needs a
broker or database to go away starts its own on free ports in a temp dir, stops and starts it at will, and
removes it afterwards (also when the test fails; an `atexit` hook catches an interrupted session).

    async with PrivateRabbit() as rabbit:          # or the `private_rabbit` fixture
        settings = settings.model_copy(update={"amqp_url": rabbit.url})
        await rabbit.stop()                         # graceful; `kill()` for a crash
        await rabbit.start()                        # same port, same data dir: durable queues survive

    async with PrivatePostgres() as pg:             # or the `private_postgres` fixture
        url = pg.database_url("panelflow")
        await pg.stop(mode="immediate")
        await pg.start()

    async with PrivateRedis() as redis:             # or the `private_redis` fixture
        settings = settings.model_copy(update={"redis_url": redis.url})
        await redis.kill()                          # down (no persistence: it comes back empty)
        await redis.start()                         # same port

Each skips the test with a clear message when the server binaries are not installed (outside a pytest run,
e.g. `make chaos`, it raises RuntimeError instead). Import the fixtures into a conftest to use them:
`from tests.support.private_services import private_rabbit  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import asyncpg
import pytest

from shared.messaging.connection import connect as connect_amqp
from tests.support.processes import free_port

RABBIT_BIN_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin")
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"

# Everything still running at interpreter exit is killed (a Ctrl-C'd session must not leak servers).
_live: set[PrivateRabbit | PrivatePostgres | PrivateRedis] = set()


def _unavailable(message: str) -> NoReturn:
    """Skip the test that needs a missing server; outside pytest (the chaos harness) it is an error."""
    if os.environ.get("PYTEST_CURRENT_TEST"):
        pytest.skip(message)
    raise RuntimeError(message)


@atexit.register
def _kill_leftovers() -> None:
    for service in list(_live):
        with contextlib.suppress(Exception):
            service.kill_now()
        shutil.rmtree(service.dir, ignore_errors=True)


def _rabbit_server() -> Path | None:
    for directory in RABBIT_BIN_DIRS:
        candidate = Path(directory) / "rabbitmq-server"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _postgres_bin_dir() -> Path | None:
    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for directory in sorted(glob.glob(POSTGRES_BIN_GLOB), key=version, reverse=True):
        if os.access(Path(directory) / "pg_ctl", os.X_OK) and os.access(Path(directory) / "initdb", os.X_OK):
            return Path(directory)
    return None


class _OwnedService:
    """A server process the test owns: `async with` starts it (cleaning up a failed start) and closes it."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class PrivateRabbit(_OwnedService):
    """A single RabbitMQ node of our own: `pf<rand>@localhost` on a free AMQP port, data in a temp dir."""

    def __init__(self, start_timeout: float = 90.0) -> None:
        server = _rabbit_server()
        if server is None:
            _unavailable(f"rabbitmq-server not found in {', '.join(RABBIT_BIN_DIRS)}: cannot run a private broker")
        self.server = server
        self.start_timeout = start_timeout
        self.node = f"pf{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pf-rabbit-"))
        self.proc: asyncio.subprocess.Process | None = None
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nlog.console = false\nlog.file.level = info\n"
        )
        # Our own (empty) env file: the system one pins NODENAME to the shared node.
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / f"{self.node}.log"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.dir),  # the Erlang cookie is created here, not in the caller's home
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start the node (again) and return once it accepts AMQP connections."""
        if self.running():
            return
        with (self.dir / "stdout.log").open("ab") as out:
            # Its own session: stop() signals the whole group (the wrapper script and the Erlang VM).
            self.proc = await asyncio.create_subprocess_exec(
                str(self.server), cwd=self.dir, env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"private rabbitmq exited early:\n{self.diagnostics()}")
            try:
                connection = await connect_amqp(self.url, timeout=2)
            except Exception:  # not listening yet, or booting
                await asyncio.sleep(0.25)
                continue
            await connection.close()
            return
        await self.kill()
        raise TimeoutError(f"private rabbitmq did not accept AMQP within {self.start_timeout}s:\n{self.diagnostics()}")

    async def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM: the node stops cleanly, like `rabbitmqctl stop`)."""
        # Signals, not `rabbitmqctl`: a wrong node name there would stop the machine's shared broker.
        await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """A crash: SIGKILL the Erlang VM without any shutdown."""
        await self._signal(signal.SIGKILL, 10.0)

    async def _signal(self, sig: signal.Signals, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        # The VM may outlive the wrapper script for a moment; nothing of the group may survive a stop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self._wait_port_free()

    async def _wait_port_free(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return
            writer.close()
            await asyncio.sleep(0.1)

    def kill_now(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        await self.kill()
        _live.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self) -> str:
        parts = []
        for path in (self.dir / "stdout.log", self.log_path):
            if path.exists():
                parts.append(f"--- {path}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


class PrivatePostgres(_OwnedService):
    """A Postgres cluster of our own: `initdb` into a temp dir (trust auth), a free port, a socket dir of its own."""

    def __init__(self, start_timeout: float = 60.0, server_settings: dict[str, str] | None = None) -> None:
        """`server_settings`: extra `-c name=value` options, e.g. {"shared_preload_libraries": "pg_stat_statements"}."""
        bin_dir = _postgres_bin_dir()
        if bin_dir is None:
            _unavailable(f"initdb/pg_ctl not found under {POSTGRES_BIN_GLOB}: cannot run a private Postgres")
        self.bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.server_settings = dict(server_settings or {})
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pf-postgres-"))
        self.data = self.dir / "data"
        self.initialised = False
        self._started = False

    def database_url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    @property
    def log_path(self) -> Path:
        return self.dir / "postgres.log"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        # Postgres refuses to run as root: run its tools as the postgres user, who owns the temp dir.
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                _unavailable("running as root without runuser: cannot start a private Postgres")
            command = [runuser, "-u", "postgres", "--", *command]
        return command

    async def _run(self, tool: str, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self._command(tool, *args),
            cwd=self.dir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{text}\n{self.diagnostics()}")
        return text

    def _prepare_dir(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)

    async def start(self) -> None:
        """initdb on first use, then start the server and wait until it accepts connections."""
        if not self.initialised:
            self._prepare_dir()
            await self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            self.initialised = True
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.server_settings.items())
        _live.add(self)
        self._started = True
        await self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w",
            "-t", str(int(self.start_timeout)), "start",
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=2)
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clean shutdown) or `immediate` (like a crash; recovery on next start)."""
        if not self._started:
            return
        await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        self._started = False

    def kill_now(self) -> None:
        if self._started:
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
                timeout=30,
            )
            self._started = False

    async def close(self) -> None:
        await self.stop(mode="immediate")
        _live.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self) -> str:
        if self.log_path.exists():
            return f"--- {self.log_path}\n{self.log_path.read_text(errors='replace')[-3000:]}"
        return ""


class PrivateRedis(_OwnedService):
    """A Redis server of our own on a free port, without persistence (a restart comes back empty)."""

    def __init__(self, start_timeout: float = 20.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            _unavailable("redis-server not found on PATH: cannot run a private Redis")
        self.server = server
        self.start_timeout = start_timeout
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pf-redis-"))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start the server (again, on the same port) and return once it answers PING."""
        if self.running():
            return
        with (self.dir / "redis.log").open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--daemonize", "no",
                cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"private redis exited early:\n{self.diagnostics()}")
            if await self._pong():
                return
            await asyncio.sleep(0.1)
        await self.kill()
        raise TimeoutError(f"private redis did not answer PING within {self.start_timeout}s:\n{self.diagnostics()}")

    async def _pong(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM)."""
        await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """A crash: SIGKILL."""
        await self._signal(signal.SIGKILL, 10.0)

    async def _signal(self, sig: signal.Signals, timeout: float) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    def kill_now(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def close(self) -> None:
        await self.kill()
        _live.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self) -> str:
        log = self.dir / "redis.log"
        return f"--- {log}\n{log.read_text(errors='replace')[-3000:]}" if log.exists() else ""


@pytest.fixture
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    """A private RabbitMQ node for this test, started; removed afterwards."""
    async with PrivateRabbit() as rabbit:
        yield rabbit


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A private Postgres cluster for this test, started; removed afterwards."""
    async with PrivatePostgres() as pg:
        yield pg


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    """A private Redis server for this test, started; removed afterwards."""
    async with PrivateRedis() as redis:
        yield redis

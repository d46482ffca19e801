"""The stack under test: private Postgres, RabbitMQ and Redis, two replicas each of api, worker and webhooks
dispatcher on ports of their own, the provider simulator, and a supervisor that restarts what died.

Dependencies are private instances on free ports (tests/support/private_services.py) because the run stops and
restarts them; the machine's shared services are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.fernet import Fernet

from shared.auth.keys import generate_key, hash_key, key_prefix
from shared.catalog.providers import add_provider
from shared.crypto.secretbox import provider_key_box
from shared.db import accounts, catalog, keys
from shared.db.migrate import migrate
from shared.db.pool import connect
from shared.settings import Settings
from tests.support.private_services import PrivatePostgres, PrivateRabbit, PrivateRedis
from tests.support.processes import ManagedProcess, free_port, settings_env
from tests.support.sim import SimControl

SIM_KEY = "chaos-sim-key"
KINDS = ("api", "worker", "webhooks")
REPLICAS = 2
RESTART_DELAY_S = 1.0
# The liveness probe of deploy/k8s, a little quicker: /healthz every 5 s, 2 s timeout, killed after 3 failures.
LIVENESS_PERIOD_S = 5.0
LIVENESS_TIMEOUT_S = 2.0
LIVENESS_FAILURES = 3
LIVENESS_GRACE_S = 15.0
BALANCE = Decimal("100000")  # each account's opening balance
# Short schedules so that an outage of a few seconds is healed within the run's quiescence window.
TUNING: dict[str, Any] = {
    "log_level": "INFO",
    "db_pool_max": 8,
    "rate_limit_ip_per_min": 1_000_000,
    "rate_limit_key_default_per_min": 1_000_000,
    "rate_limit_tier_per_min": {"standard": 1_000_000},
    "upstream_timeout_s": 5.0,
    "upstream_connect_timeout_s": 2.0,
    "upstream_breaker_reset_s": 5.0,
    "worker_submitting_timeout_s": 20.0,
    "worker_submit_grace_s": 5.0,
    "worker_retry_base_s": 1.0,
    "worker_retry_max_s": 5.0,
    "worker_poll_min_s": 1.0,
    "worker_poll_age_factor": 0.05,
    "worker_poll_idle_s": 0.2,
    "worker_poll_lease_s": 15.0,
    "worker_sweep_s": 2.0,
    "webhook_retry_schedule_s": [1.0, 2.0, 4.0] + [8.0] * 15,
    "webhook_timeout_s": 5.0,
    "webhook_lease_s": 15.0,
    # Everything runs on 127.0.0.1 over plain http: the simulator and the receiver are let through by name.
    "webhooks_allow_http": True,
    "webhooks_allowed_networks": "127.0.0.1/32",
    "upstream_allow_http": True,
    "upstream_allowed_networks": "127.0.0.1/32",
    "sim_pending_s": 0.5,
    "sim_completion_s": 3.0,
    "sim_outcome_mix": {"completed": 0.7, "partial": 0.15, "canceled": 0.15},
}


@dataclass
class Member:
    """One process of the stack: its kind, replica number, and the ports it serves."""

    kind: str
    index: int
    process: ManagedProcess
    health_url: str
    api_url: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"


@dataclass
class Account:
    id: int
    key: str
    secret: str = ""  # the webhook secret `webhook.add` returned


@dataclass
class Stack:
    """Everything the run starts, owned here and stopped by `close()`."""

    run_dir: Path
    seed: int
    # The simulator honours request ids and the provider is marked so (where this version has the setting).
    idempotent: bool = True
    postgres: PrivatePostgres = field(default_factory=PrivatePostgres)
    rabbit: PrivateRabbit = field(default_factory=PrivateRabbit)
    redis: PrivateRedis = field(default_factory=PrivateRedis)
    members: list[Member] = field(default_factory=list)
    sim: ManagedProcess | None = None
    sim_control: SimControl | None = None
    service_id: int = 0
    provider_id: int = 0
    accounts: list[Account] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    # Exits nobody asked for (not our kill -9): name, exit code, seconds into the run.
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    intended: set[str] = field(default_factory=set)
    # Members killed because their liveness probe kept failing: name, seconds into the run.
    liveness_kills: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    keys: tuple[str, str] = field(
        default_factory=lambda: (Fernet.generate_key().decode(), Fernet.generate_key().decode())
    )
    _supervisor: asyncio.Task[None] | None = None

    @property
    def database_url(self) -> str:
        return self.postgres.database_url("panelflow")

    def settings(self) -> Settings:
        # Keys of this run only, as production has them (no development fallback).
        return Settings(
            webhook_secret_key=self.keys[0],
            provider_key_encryption_key=self.keys[1],
            database_url=self.database_url,
            amqp_url=self.rabbit.url,
            amqp_prefix="chaos",
            redis_url=self.redis.url,
            sim_key=SIM_KEY,
            sim_seed=self.seed,
            **TUNING,
        )

    def api_urls(self) -> list[str]:
        return [m.api_url for m in self.members if m.api_url is not None]

    async def start(self, accounts_n: int) -> None:
        await asyncio.gather(self.postgres.start(), self.rabbit.start(), self.redis.start())
        settings = self.settings()
        conn = await connect(settings.model_copy(update={"database_url": self.postgres.url}))
        try:
            await conn.execute("CREATE DATABASE panelflow")
        finally:
            await conn.close()
        sim_port = free_port()
        self.sim = ManagedProcess(
            "services.provider_sim",
            settings_env(settings, sim_port=sim_port, metrics_port_sim=free_port(), sim_idempotent=self.idempotent),
            self.run_dir / "provider-sim.log",
        ).start()
        self.sim_control = SimControl(f"http://127.0.0.1:{sim_port}", SIM_KEY)
        await self.sim.wait_http(self.sim_control.base_url + "/healthz")
        await self._seed(settings, accounts_n)
        for kind in KINDS:
            for index in range(REPLICAS):
                self.members.append(self._member(settings, kind, index))
        for member in self.members:
            member.process.start()
            member.started = time.monotonic()
        for member in self.members:
            await member.process.wait_http(member.health_url, timeout=60)
        self._supervisor = asyncio.create_task(self._supervise())

    def _member(self, settings: Settings, kind: str, index: int) -> Member:
        port = free_port()
        log = self.run_dir / f"{kind}-{index}.log"
        if kind == "api":
            env = settings_env(settings, api_port=port)
            return Member(
                kind,
                index,
                ManagedProcess("services.api", env, log),
                f"http://127.0.0.1:{port}/healthz",
                api_url=f"http://127.0.0.1:{port}/api/v2",
            )
        setting = "metrics_port_worker" if kind == "worker" else "metrics_port_webhooks"
        env = settings_env(settings, **{setting: port})
        return Member(kind, index, ManagedProcess(f"services.{kind}", env, log), f"http://127.0.0.1:{port}/healthz")

    async def _seed(self, settings: Settings, accounts_n: int) -> None:
        assert self.sim_control is not None
        conn = await connect(settings)
        try:
            await migrate(conn)
            self.provider_id = await add_provider(
                conn,
                provider_key_box(settings),
                name="chaos-sim",
                url=self.sim_control.api_url,
                api_key=SIM_KEY,
                idempotent=self.idempotent,
            )
            self.service_id = await catalog.add_service(
                conn,
                name="Chaos followers",
                type="Default",
                rate=Decimal("0.9"),
                min_quantity=50,
                max_quantity=10_000,
                refill=True,
                cancel=True,
                provider_id=self.provider_id,
                provider_service_id="1",
            )
            for n in range(accounts_n):
                account_id = await accounts.create_account(conn, email=f"chaos-{n}@example.test", balance=BALANCE)
                key = generate_key()
                await keys.insert_key(
                    conn,
                    account_id=account_id,
                    key_hash=hash_key(key),
                    prefix=key_prefix(key),
                    scopes=["read", "orders", "webhooks"],
                )
                self.accounts.append(Account(account_id, key))
        finally:
            await conn.close()

    async def subscribe(self, receiver_url: str) -> None:
        """One webhook per account, all events, registered through the API as a reseller does."""
        api = self.api_urls()[0]
        async with aiohttp.ClientSession() as session:
            for account in self.accounts:
                form = {"key": account.key, "action": "webhook.add", "url": f"{receiver_url}/hook/{account.id}"}
                async with session.post(api, data=form) as resp:
                    body = await resp.json()
                if resp.status != 200 or "secret" not in body:
                    raise RuntimeError(f"webhook.add for account {account.id}: {resp.status} {body}")
                account.secret = body["secret"]

    # --- the supervisor ------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Restart every member that is not running, as an orchestrator would (after a short delay), and kill the
        one whose liveness probe (`/healthz`) failed LIVENESS_FAILURES times in a row, as Kubernetes would."""
        probes = asyncio.create_task(self._probe_liveness())
        try:
            await self._restart_dead()
        finally:
            probes.cancel()

    async def _probe_liveness(self) -> None:
        failures: Counter[str] = Counter()
        async with aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(LIVENESS_PERIOD_S)
                for member in self.members:
                    if not member.process.alive() or time.monotonic() - member.started < LIVENESS_GRACE_S:
                        failures[member.name] = 0
                        continue
                    try:
                        timeout = aiohttp.ClientTimeout(total=LIVENESS_TIMEOUT_S)
                        async with session.get(member.health_url, timeout=timeout) as resp:
                            ok = resp.status == 200
                    except (aiohttp.ClientError, TimeoutError):
                        ok = False
                    failures[member.name] = 0 if ok else failures[member.name] + 1
                    if failures[member.name] >= LIVENESS_FAILURES:
                        self.liveness_kills.append({"process": member.name, "at_s": self.elapsed()})
                        self.kill(member)
                        failures[member.name] = 0

    async def _restart_dead(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for member in self.members:
                if member.process.alive():
                    continue
                proc = member.process.proc
                code = proc.returncode if proc is not None else None
                if member.name in self.intended:
                    self.intended.discard(member.name)
                else:
                    self.unexpected_exits.append({"process": member.name, "exit_code": code, "at_s": self.elapsed()})
                await asyncio.sleep(RESTART_DELAY_S)
                member.process.start()
                member.started = time.monotonic()
                self.restarts[member.kind] += 1

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started_at, 1)

    def kill(self, member: Member) -> None:
        """kill -9 one member; the supervisor brings it back."""
        self.intended.add(member.name)
        member.process.kill()

    async def all_healthy(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            for member in self.members:
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(member.health_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                            if resp.status == 200:
                                break
                    if time.monotonic() > deadline:
                        return False
                    await asyncio.sleep(0.5)
        return True

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for member in self.members:
            member.process.stop(timeout=15)
        if self.sim is not None:
            self.sim.stop(timeout=10)
        for service in (self.redis, self.rabbit, self.postgres):
            with contextlib.suppress(Exception):
                await service.close()

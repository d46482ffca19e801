"""The demo seed: one reseller account with money, an API key, and a small catalog. Idempotent.

Keys are stored hashed, so the caller keeps the demo key itself (the CLI: in `.run/demo-key`, mode 0600) and
hands it back on the next seed, which reuses it while it still works and makes a new one otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.auth.keys import SCOPES, generate_key, hash_key, key_prefix
from shared.db import accounts, catalog, keys
from shared.db.types import Conn
from shared.settings import Settings

DEMO_EMAIL = "demo@panelflow.local"
# Re-seeding tops the demo account back up to this, so a demo that spent its money works again.
DEMO_BALANCE = Decimal("1000")
DEMO_CATEGORY = "Demo"


@dataclass(frozen=True)
class DemoService:
    name: str
    type: str
    rate: Decimal
    min_quantity: int
    max_quantity: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False


# The first one is the Default-type service `make run` / `make up` advertise.
CATALOG = (
    DemoService("Demo followers", "Default", Decimal("0.90"), 10, 100_000, refill=True, cancel=True, dripfeed=True),
    DemoService("Demo likes package", "Package", Decimal("2.50"), 1, 1),
    DemoService("Demo custom comments", "Custom Comments", Decimal("12.00"), 1, 1_000, cancel=True),
    DemoService("Demo mentions", "Mentions", Decimal("3.20"), 100, 50_000),
    DemoService("Demo poll votes", "Poll", Decimal("1.10"), 50, 20_000, cancel=True),
    DemoService("Demo subscriptions", "Subscriptions", Decimal("0.60"), 50, 5_000),
)


@dataclass(frozen=True)
class DemoSeed:
    account_id: int
    key: str
    key_created: bool
    default_service_id: int
    service_ids: dict[str, int]


async def seed(conn: Conn, settings: Settings, *, known_key: str | None = None) -> DemoSeed:
    """Create what is missing of the demo, top its balance back up, and return its ids and key."""
    account_id = await _account(conn, settings)
    service_ids = {}
    for service in CATALOG:
        service_ids[service.name] = await _service(conn, service)
    key, created = await _key(conn, account_id, known_key)
    return DemoSeed(account_id, key, created, service_ids[CATALOG[0].name], service_ids)


async def _account(conn: Conn, settings: Settings) -> int:
    row = await accounts.find_account_by_email(conn, DEMO_EMAIL)
    if row is None:
        return await accounts.create_account(
            conn, email=DEMO_EMAIL, balance=DEMO_BALANCE, tier="standard", currency=settings.currency
        )
    if row.balance < DEMO_BALANCE:
        await accounts.topup(conn, account_id=row.id, amount=DEMO_BALANCE - row.balance, memo="demo seed top-up")
    if row.status != "active":
        await accounts.set_status(conn, account_id=row.id, status="active")
    return row.id


async def _service(conn: Conn, service: DemoService) -> int:
    row = await catalog.find_service(conn, name=service.name, category=DEMO_CATEGORY)
    if row is not None:
        return row.id
    return await catalog.add_service(
        conn,
        name=service.name,
        type=service.type,
        category=DEMO_CATEGORY,
        rate=service.rate,
        min_quantity=service.min_quantity,
        max_quantity=service.max_quantity,
        refill=service.refill,
        cancel=service.cancel,
        dripfeed=service.dripfeed,
    )


async def _key(conn: Conn, account_id: int, known_key: str | None) -> tuple[str, bool]:
    if known_key:
        record = await keys.find_by_hash(conn, hash_key(known_key))
        if record is not None and record.account_id == account_id and not record.revoked:
            return known_key, False
    key = generate_key()
    await keys.insert_key(
        conn, account_id=account_id, key_hash=hash_key(key), prefix=key_prefix(key), scopes=list(SCOPES)
    )
    return key, True

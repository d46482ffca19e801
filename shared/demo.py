"""The demo seed: one reseller account with money, an API key, a small catalog bought from the provider
simulator, and a webhook to the local demo receiver. Idempotent.

Keys are stored hashed, so the caller keeps the demo key itself (the CLI: in `.run/demo-key`, mode 0600) and
hands it back on the next seed, which reuses it while it still works and makes a new one otherwise.

The demo webhook goes to plain http on 127.0.0.1 (`demo_webhook_host`), and so does the simulator the demo
catalog is bought from; the SSRF guard refuses both by default. Only the demo (the seed and the `make run` stack)
relaxes that, with `local_webhook_settings` / `local_webhook_env` / `local_upstream_env`; the defaults stay strict.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.auth.keys import SCOPES, generate_key, hash_key, key_prefix
from shared.catalog import providers
from shared.crypto.secretbox import provider_key_box
from shared.db import accounts, catalog, keys
from shared.db import webhooks as webhooks_db
from shared.db.types import Conn
from shared.net.guard import AddressGuard
from shared.settings import Settings
from shared.webhooks import endpoints
from shared.webhooks.secretbox import SecretBox, SecretBoxError

DEMO_EMAIL = "demo@panelflow.local"
# Re-seeding tops the demo account back up to this, so a demo that spent its money works again.
DEMO_BALANCE = Decimal("1000")
DEMO_CATEGORY = "Demo"
D = Decimal


@dataclass(frozen=True)
class DemoService:
    name: str
    type: str
    rate: Decimal  # our sell price
    min_quantity: int
    max_quantity: int
    sim_service: str  # the provider simulator's service it is bought from (services/provider_sim/state.py)
    cost_rate: Decimal
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False


# Bought from the provider simulator (`python -m services.provider_sim`, which the stack starts), within its
# services' min/max. The first one is the Default-type service `make run` / `make up` advertise.
CATALOG = (
    DemoService(
        "Demo followers", "Default", D("1.20"), 50, 10_000, "1", D("0.90"), refill=True, cancel=True, dripfeed=True
    ),
    DemoService("Demo verified package", "Package", D("15.00"), 1, 1, "3", D("12.50")),
    DemoService("Demo custom comments", "Custom Comments", D("6.00"), 5, 1_000, "4", D("4.20"), cancel=True),
    DemoService("Demo keyword traffic", "SEO", D("1.60"), 100, 100_000, "5", D("1.10")),
    DemoService("Demo mentions list", "Mentions Custom List", D("3.00"), 10, 5_000, "6", D("2.00")),
    DemoService("Demo auto likes", "Subscriptions", D("0.60"), 50, 10_000, "7", D("0.40")),
)  # fmt: skip
SIM_PROVIDER = "simulator"

DEMO_WEBHOOK_PATH = "/demo-webhooks"
# Plain http to this one address (the local stack's receiver, `demo_webhook_host`'s default) is what the demo needs
# on top of the user's settings. A receiver elsewhere (the compose stack's) needs its network allowed in them.
DEMO_WEBHOOK_NETWORK = "127.0.0.1/32"


@dataclass(frozen=True)
class DemoSeed:
    account_id: int
    key: str
    key_created: bool
    default_service_id: int
    service_ids: dict[str, int]
    webhook_id: int
    webhook_url: str
    webhook_secret: str


def demo_webhook_url(settings: Settings) -> str:
    return f"http://{settings.demo_webhook_host}:{settings.demo_webhook_port}{DEMO_WEBHOOK_PATH}"


def _with_local_network(networks: str) -> str:
    names = [n.strip() for n in networks.split(",") if n.strip()]
    if DEMO_WEBHOOK_NETWORK not in names:
        names.append(DEMO_WEBHOOK_NETWORK)
    return ",".join(names)


def local_webhook_settings(settings: Settings) -> Settings:
    """These settings plus what the demo's local receiver needs (added to, not replacing, allowed networks)."""
    return settings.model_copy(
        update={
            "webhooks_allow_http": True,
            "webhooks_allowed_networks": _with_local_network(settings.webhooks_allowed_networks),
        }
    )


def local_webhook_env(environ: dict[str, str]) -> dict[str, str]:
    """The same, for the environment of the demo stack's processes."""
    return {
        **environ,
        "PANELFLOW_WEBHOOKS_ALLOW_HTTP": "true",
        "PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS": _with_local_network(
            environ.get("PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS", "")
        ),
    }


def local_upstream_env(environ: dict[str, str]) -> dict[str, str]:
    """What the local stack's worker needs to call the provider simulator: plain http to 127.0.0.1 (added to,
    not replacing, allowed networks)."""
    return {
        **environ,
        "PANELFLOW_UPSTREAM_ALLOW_HTTP": "true",
        "PANELFLOW_UPSTREAM_ALLOWED_NETWORKS": _with_local_network(
            environ.get("PANELFLOW_UPSTREAM_ALLOWED_NETWORKS", "")
        ),
    }


async def seed(conn: Conn, settings: Settings, *, known_key: str | None = None) -> DemoSeed:
    """Create what is missing of the demo, top its balance back up, and return its ids and key."""
    account_id = await _account(conn, settings)
    provider_id = await providers.upsert_provider(
        conn,
        provider_key_box(settings),
        name=SIM_PROVIDER,
        url=f"http://{settings.sim_host}:{settings.sim_port}/api/v2",
        api_key=settings.sim_key,
        idempotent=settings.sim_idempotent,  # the simulator honours request_id unless told otherwise
    )
    service_ids = {}
    for service in CATALOG:
        service_ids[service.name] = await _service(conn, service, provider_id)
    key, created = await _key(conn, account_id, known_key)
    webhook_id, secret = await _webhook(conn, settings, account_id)
    return DemoSeed(
        account_id,
        key,
        created,
        service_ids[CATALOG[0].name],
        service_ids,
        webhook_id,
        demo_webhook_url(settings),
        secret,
    )


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


async def _service(conn: Conn, service: DemoService, provider_id: int) -> int:
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
        cost_rate=service.cost_rate,
        provider_id=provider_id,
        provider_service_id=service.sim_service,
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


async def _webhook(conn: Conn, settings: Settings, account_id: int) -> tuple[int, str]:
    """The demo account's webhook to the local receiver (all events), and its secret for the receiver."""
    local = local_webhook_settings(settings)
    url = demo_webhook_url(settings)
    box = SecretBox(local)
    for endpoint in await webhooks_db.list_endpoints(conn, account_id):
        if not endpoint.url.endswith(DEMO_WEBHOOK_PATH):
            continue
        if endpoint.url == url:
            try:
                secret = box.decrypt(endpoint.secret_enc)
            except SecretBoxError:
                pass  # PANELFLOW_WEBHOOK_SECRET_KEY changed since: register it anew below
            else:
                if not endpoint.enabled:
                    await webhooks_db.enable_endpoint(conn, endpoint.id)
                return endpoint.id, secret
        # A demo receiver on another port (the setting changed) would only collect failing deliveries.
        await webhooks_db.delete_endpoint(conn, endpoint.id, account_id)
    return await endpoints.add_endpoint(
        conn, local, AddressGuard(local.webhooks_allowed_networks), box, account_id=account_id, url=url, events=None
    )

"""SQL of API keys. Lookups go by the key's SHA-256; the key itself never reaches the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.db.types import Conn


@dataclass(frozen=True)
class KeyRecord:
    key_id: int
    key_hash: bytes
    account_id: int
    account_status: str
    tier: str
    currency: str
    scopes: frozenset[str]
    allow_ips: tuple[str, ...] | None
    rate_limit_per_min: int | None
    revoked: bool
    profile: str = "strict"


async def insert_key(
    conn: Conn,
    *,
    account_id: int,
    key_hash: bytes,
    prefix: str,
    scopes: list[str],
    allow_ips: list[str] | None = None,
    rate_limit_per_min: int | None = None,
    profile: str = "strict",
) -> int:
    key_id: int = await conn.fetchval(
        """
        INSERT INTO api_keys (account_id, key_hash, prefix, scopes, allow_ips, rate_limit_per_min, profile)
        VALUES ($1, $2, $3, $4, $5::cidr[], $6, $7) RETURNING id
        """,
        account_id,
        key_hash,
        prefix,
        scopes,
        allow_ips,
        rate_limit_per_min,
        profile,
    )
    await conn.execute("SELECT pg_notify('panelflow_auth', $1)", f"account:{account_id}")
    return key_id


async def revoke_key(conn: Conn, *, prefix: str) -> bool:
    account_id = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL RETURNING account_id",
        prefix,
    )
    if account_id is None:
        return False
    await conn.execute("SELECT pg_notify('panelflow_auth', $1)", f"account:{account_id}")
    return True


async def find_by_hash(conn: Conn, key_hash: bytes) -> KeyRecord | None:
    row = await conn.fetchrow(
        """
        SELECT k.id, k.key_hash, k.account_id, a.status, a.tier, a.currency, k.scopes,
               k.allow_ips::text[] AS allow_ips, k.rate_limit_per_min, k.revoked_at IS NOT NULL AS revoked,
               k.profile
        FROM api_keys k JOIN accounts a ON a.id = k.account_id
        WHERE k.key_hash = $1
        """,
        key_hash,
    )
    if row is None:
        return None
    return KeyRecord(
        key_id=row["id"],
        key_hash=bytes(row["key_hash"]),
        account_id=row["account_id"],
        account_status=row["status"],
        tier=row["tier"],
        currency=row["currency"],
        scopes=frozenset(row["scopes"]),
        allow_ips=tuple(row["allow_ips"]) if row["allow_ips"] is not None else None,
        rate_limit_per_min=row["rate_limit_per_min"],
        revoked=row["revoked"],
        profile=row["profile"],
    )


async def set_profile(conn: Conn, *, prefix: str, profile: str) -> bool:
    """Change the profile of the active key with this prefix; False when there is none."""
    account_id = await conn.fetchval(
        "UPDATE api_keys SET profile = $2 WHERE prefix = $1 AND revoked_at IS NULL RETURNING account_id",
        prefix,
        profile,
    )
    if account_id is None:
        return False
    await conn.execute("SELECT pg_notify('panelflow_auth', $1)", f"account:{account_id}")
    return True


@dataclass(frozen=True)
class KeyListing:
    prefix: str
    account_id: int
    profile: str
    scopes: tuple[str, ...]
    allow_ips: tuple[str, ...] | None
    rate_limit_per_min: int | None
    revoked: bool
    last_used_at: datetime | None


async def record_last_use(conn: Conn, uses: Sequence[tuple[int, datetime]]) -> None:
    """Set each key's `last_used_at`, in one statement; a time older than the one stored changes nothing (another
    api process wrote a later use first)."""
    await conn.execute(
        """
        UPDATE api_keys k SET last_used_at = u.at
        FROM unnest($1::bigint[], $2::timestamptz[]) AS u (id, at)
        WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)
        """,
        [key_id for key_id, _ in uses],
        [at for _, at in uses],
    )


async def list_keys(conn: Conn, *, account_id: int | None = None) -> list[KeyListing]:
    rows = await conn.fetch(
        """
        SELECT prefix, account_id, profile, scopes, allow_ips::text[] AS allow_ips, rate_limit_per_min,
               revoked_at IS NOT NULL AS revoked, last_used_at
        FROM api_keys WHERE $1::bigint IS NULL OR account_id = $1 ORDER BY id
        """,
        account_id,
    )
    return [
        KeyListing(
            prefix=r["prefix"],
            account_id=r["account_id"],
            profile=r["profile"],
            scopes=tuple(r["scopes"]),
            allow_ips=tuple(r["allow_ips"]) if r["allow_ips"] is not None else None,
            rate_limit_per_min=r["rate_limit_per_min"],
            revoked=r["revoked"],
            last_used_at=r["last_used_at"],
        )
        for r in rows
    ]

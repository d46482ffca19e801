"""Our providers and our API keys at them: encrypted before they reach the database, decrypted only to call.

The key is sent upstream with every call, so it is encrypted (Fernet, `PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY`,
see `shared.crypto.secretbox`), not hashed. The database holds `providers.api_key_enc` only; `providers.api_key`
(plaintext) is a leftover of databases created before migration 006, emptied by `encrypt_provider_keys`, which
`panelflow migrate` runs after the migrations and `panelflow provider encrypt-keys` runs on demand. A key is
never logged: rows keep it out of their repr, log lines name the provider only.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from shared.crypto.secretbox import SecretBox, SecretBoxError
from shared.db import providers as provider_sql
from shared.db.providers import ProviderRow
from shared.db.types import Conn
from shared.net.guard import AddressGuard, ForbiddenDestination, InvalidUrl
from shared.settings import Settings

log = structlog.get_logger(__name__)


async def check_url(url: str, settings: Settings) -> str | None:
    """Refuse (InvalidUrl, saying why and which setting would allow it) a provider URL the worker would refuse to
    call: not https, or a host that is or resolves to a non-public address. A host that cannot be resolved now is
    let through with the warning returned (DNS may be down for a moment); the worker checks every call again."""
    guard = AddressGuard(settings.upstream_allowed_networks)
    try:
        parsed = guard.check_url(url, allow_http=settings.upstream_allow_http)
        assert parsed.host is not None
        await guard.resolve_checked(parsed.host, parsed.port or 0)
    except InvalidUrl as exc:
        hint = (
            " (PANELFLOW_UPSTREAM_ALLOW_HTTP=true allows plain http, for development only)"
            if "https" in str(exc)
            else ""
        )
        raise InvalidUrl(f"{exc}{hint}") from exc
    except ForbiddenDestination as exc:
        hint = (
            ""
            if exc.reason == "cloud-metadata"
            else (" (PANELFLOW_UPSTREAM_ALLOWED_NETWORKS lets named networks through, for development only)")
        )
        raise InvalidUrl(f"url points to a non-public address: {exc.address} ({exc.reason}){hint}") from exc
    except OSError:
        return f"{parsed.host} cannot be resolved now; calls to it will fail until it can"
    finally:
        await guard.close()
    return None


async def add_provider(
    conn: Conn, box: SecretBox, *, name: str, url: str, api_key: str, idempotent: bool = False
) -> int:
    return await provider_sql.add_provider(
        conn, name=name, url=url, api_key_enc=box.encrypt(api_key), idempotent=idempotent
    )


async def upsert_provider(
    conn: Conn, box: SecretBox, *, name: str, url: str, api_key: str, idempotent: bool = False
) -> int:
    return await provider_sql.upsert_provider(
        conn, name=name, url=url, api_key_enc=box.encrypt(api_key), idempotent=idempotent
    )


async def set_provider_key(conn: Conn, box: SecretBox, provider_id: int, api_key: str) -> bool:
    """Replace our key at a provider (it issued a new one); False when there is no such provider."""
    return await provider_sql.set_provider_key(conn, provider_id, box.encrypt(api_key))


def provider_key(box: SecretBox, stored: ProviderRow) -> str:
    """The key to send to the provider. SecretBoxError when no configured key decrypts it.

    A plaintext key (written by an older release after `panelflow migrate` ran, e.g. during a rolling
    upgrade) is used as it is, with a warning; it wins over an encrypted one because every write of this
    release empties the plaintext column, so a plaintext key is the newer one."""
    if stored.legacy_api_key is not None:
        log.warning("provider_key_not_encrypted", provider_id=stored.id, fix="run `panelflow provider encrypt-keys`")
        return stored.legacy_api_key
    if stored.api_key_enc is None:  # the table's CHECK rules this out
        raise SecretBoxError(f"provider {stored.id} has no API key")
    return box.decrypt(stored.api_key_enc)


@dataclass(frozen=True)
class KeyReport:
    encrypted: int  # plaintext keys encrypted now
    reencrypted: int  # encrypted keys re-encrypted under the first configured key


async def encrypt_provider_keys(conn: Conn, box: SecretBox, *, rotate: bool) -> KeyReport:
    """Encrypt every key still in plaintext (and empty its plaintext column); with `rotate`, also re-encrypt
    every encrypted key under the first key of the setting. One transaction: a key no configured key
    decrypts raises SecretBoxError (naming the providers) and nothing changes. Safe to run concurrently."""
    async with conn.transaction():
        rows = await provider_sql.providers_for_key_update(conn, plaintext_only=not rotate)
        encrypted = reencrypted = 0
        unreadable = []
        for row in rows:
            if row.legacy_api_key is not None:  # the newer one, see provider_key
                token = box.encrypt(row.legacy_api_key)
                encrypted += 1
            else:
                assert row.api_key_enc is not None  # the table's CHECK
                try:
                    token = box.rotate(row.api_key_enc)
                except SecretBoxError:
                    unreadable.append(row.id)
                    continue
                reencrypted += 1
            await provider_sql.set_provider_key(conn, row.id, token)
        if unreadable:
            raise SecretBoxError(
                f"the keys of providers {', '.join(map(str, unreadable))} cannot be decrypted with the keys of "
                f"{box.setting}; nothing was changed"
            )
    if encrypted or reencrypted:
        log.info("provider_keys_encrypted", encrypted=encrypted, reencrypted=reencrypted)
    return KeyReport(encrypted, reencrypted)

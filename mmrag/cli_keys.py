"""``mmrag keys`` and ``mmrag tenants``: API keys and their tenants, in the data dir's key store.

A secret is printed once, by ``create`` and ``rotate``; nothing can show it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from mmrag.config import Settings
from mmrag.errors import InvalidInput
from mmrag.tenancy.keys import KeyRecord, KeyStore, parse_scopes
from mmrag.tenancy.usage import tenant_usage

_UNITS = {"d": 86400, "h": 3600, "m": 60}


def parse_expiry(text: str, now: datetime) -> float:
    """``30d``, ``12h``, ``90m`` from now, or an ISO 8601 time."""
    unit = text[-1:].lower()
    if unit in _UNITS and text[:-1].isdigit():
        return (now + timedelta(seconds=int(text[:-1]) * _UNITS[unit])).timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        rule = "30d, 12h, 90m or an ISO 8601 time"
        raise InvalidInput(f"--expires takes {rule}, not {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _state(key: KeyRecord) -> str:
    if key.revoked is not None:
        return "revoked"
    if key.expires is not None and key.expires <= datetime.now(UTC).timestamp():
        return "expired"
    return "active"


def create_key(
    settings: Settings,
    console: Console,
    tenant: str,
    scopes: str,
    name: str | None,
    expires: str | None,
) -> None:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        until = parse_expiry(expires, datetime.now(UTC)) if expires else None
        record, secret = store.create(tenant, parse_scopes(scopes), name, until)
    finally:
        store.close()
    console.print(
        f"key {record.id} ({record.name}) for tenant {record.tenant}, scopes "
        f"{','.join(sorted(record.scopes))}, expires {_when(record.expires)}"
    )
    console.print("the secret, shown only now:", style="bold")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


def list_keys(settings: Settings, console: Console, tenant: str | None) -> None:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        keys = store.keys(tenant)
    finally:
        store.close()
    table = Table("id", "name", "tenant", "scopes", "created", "expires", "state")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            key.tenant,
            ",".join(sorted(key.scopes)),
            _when(key.created),
            _when(key.expires),
            _state(key),
        )
    console.print(table)


def revoke_key(settings: Settings, console: Console, key_id: str) -> None:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        record = store.revoke(key_id)
    finally:
        store.close()
    console.print(f"key {record.id} ({record.name}) revoked at {_when(record.revoked)}")


def rotate_key(settings: Settings, console: Console, key_id: str) -> None:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        record, secret = store.rotate(key_id)
    finally:
        store.close()
    console.print(f"key {key_id} revoked; its successor is {record.id} ({record.name})")
    console.print("the new secret, shown only now:", style="bold")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


def list_tenants(settings: Settings, console: Console) -> None:
    from mmrag.retrieval.stores import open_store  # the store's engine loads only here

    keys = KeyStore.in_data_dir(settings.data_dir)
    try:
        store = open_store(settings)
        try:
            tenants = tenant_usage(keys, store)
        finally:
            store.close()
    finally:
        keys.close()
    table = Table("tenant", "created", "deleted", "active keys", "images", "bytes")
    for tenant in tenants:
        table.add_row(
            tenant.name,
            _when(tenant.created),
            _when(tenant.deleted),
            str(tenant.active_keys),
            str(tenant.images),
            str(tenant.bytes),
        )
    console.print(table)


def delete_tenant(settings: Settings, console: Console, tenant: str) -> None:
    store = KeyStore.in_data_dir(settings.data_dir)
    try:
        store.delete_tenant(tenant)
    finally:
        store.close()
    console.print(f"tenant {tenant} deleted: its keys are refused from now on")

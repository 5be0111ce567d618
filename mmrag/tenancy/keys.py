"""API keys and tenants, in SQLite in the data dir (``keys.sqlite``).

Every API process opens the same file and reads it on every request (one indexed lookup by
hash), so a revoked key is refused at once everywhere, with nothing cached to expire. A key's
secret is shown once, when it is made; only its SHA-256 is stored. A secret is
``mmrag_<id>_<random>``: the id names the key in listings and logs without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from mmrag.errors import InvalidInput, NotFound
from mmrag.retrieval.tenants import checked_tenant

Scope = Literal["read", "write", "jobs", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
KEYS_FILE = "keys.sqlite"
SLACK_PREFIX = "slack:"  # the bot's workspaces (slack/poster.py): no key may join one
# The caller with auth off (api/security.py): its threads have no owner.
ANONYMOUS_NAME = "anonymous"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    deleted REAL
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    scopes TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS daily_images (
    caller TEXT NOT NULL,
    day TEXT NOT NULL,
    images INTEGER NOT NULL,
    PRIMARY KEY (caller, day)
);
"""


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    tenant: str
    scopes: frozenset[Scope]
    created: float
    expires: float | None
    revoked: float | None

    def active(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


@dataclass(frozen=True)
class TenantRecord:
    name: str
    created: float
    deleted: float | None
    active_keys: int


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text)]
    unknown = [name for name in names if name not in SCOPES]
    if unknown or not names:
        raise InvalidInput(f"scopes are a comma list of {', '.join(SCOPES)}; got {text!r}")
    return frozenset(name for name in SCOPES if name in names)


def checked_key_name(name: str) -> str:
    """The name, unless it could pass for another caller's conversation owner
    (api/routes/agent.py): a default-tenant key is owned by its bare name, so "acme/bob"
    would be tenant acme's key bob, "slack:T1" Slack workspace T1 and "anonymous" the
    caller with auth off."""
    if "/" in name or name.startswith(SLACK_PREFIX) or name == ANONYMOUS_NAME:
        raise InvalidInput(
            f"key names must not hold '/', start with {SLACK_PREFIX!r} or be "
            f"{ANONYMOUS_NAME!r}; got {name!r}"
        )
    return name


class KeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> KeyStore:
        return cls(data_dir / KEYS_FILE)

    def close(self) -> None:
        self._db.close()

    # -- keys --------------------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        scopes: frozenset[Scope],
        name: str | None = None,
        expires: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key for ``tenant`` (made if new; refused if deleted) and its secret, which
        is never shown again."""
        checked_tenant(tenant)
        if tenant.startswith(SLACK_PREFIX):
            raise InvalidInput(f"tenants named {SLACK_PREFIX}... are the Slack bot's workspaces")
        if name is not None:
            checked_key_name(name)
        if not scopes:
            raise InvalidInput("a key needs at least one scope")
        now = time.time()
        if expires is not None and expires <= now:
            raise InvalidInput("the expiry is in the past")
        key_id = secrets.token_hex(6)
        secret = f"mmrag_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(key_id, name or key_id, tenant, scopes, now, expires, None)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT deleted FROM tenants WHERE name=?", (tenant,)).fetchone()
            if row is not None and row[0] is not None:
                raise InvalidInput(f"tenant {tenant!r} was deleted")
            if row is None:
                self._db.execute("INSERT INTO tenants (name, created) VALUES (?, ?)", (tenant, now))
            self._db.execute(
                "INSERT INTO keys (id, name, tenant, scopes, sha256, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    record.name,
                    tenant,
                    ",".join(sorted(scopes)),
                    digest(secret),
                    now,
                    expires,
                ),
            )
        return record, secret

    def find(self, secret: str) -> KeyRecord | None:
        """The active key whose secret this is, of a tenant not deleted; else None."""
        with self._lock:
            row = self._db.execute(
                "SELECT k.id, k.name, k.tenant, k.scopes, k.created, k.expires, k.revoked "
                "FROM keys k JOIN tenants t ON t.name = k.tenant "
                "WHERE k.sha256 = ? AND t.deleted IS NULL",
                (digest(secret),),
            ).fetchone()
        if row is None:
            return None
        record = _key(row)
        return record if record.active(time.time()) else None

    def get(self, key_id: str) -> KeyRecord:
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, tenant, scopes, created, expires, revoked FROM keys WHERE id=?",
                (key_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no key with id {key_id}")
        return _key(row)

    def keys(self, tenant: str | None = None) -> list[KeyRecord]:
        query = "SELECT id, name, tenant, scopes, created, expires, revoked FROM keys"
        where, args = (" WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
        with self._lock:
            rows = self._db.execute(query + where + " ORDER BY created", args).fetchall()
        return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> KeyRecord:
        self.get(key_id)
        with self._lock:
            self._db.execute(
                "UPDATE keys SET revoked=? WHERE id=? AND revoked IS NULL", (time.time(), key_id)
            )
        return self.get(key_id)

    def rotate(self, key_id: str) -> tuple[KeyRecord, str]:
        """A new secret for the key's tenant, name, scopes and expiry; the old one revoked."""
        old = self.get(key_id)
        if old.revoked is not None:
            raise InvalidInput(f"key {key_id} is revoked: create a new one")
        record, secret = self.create(old.tenant, old.scopes, old.name, old.expires)
        self.revoke(key_id)
        return record, secret

    def any_keys(self) -> bool:
        """Whether any key was ever made: from then on, API calls need one."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM keys LIMIT 1").fetchone() is not None

    # -- daily counts (api/limits.py) ---------------------------------------------------------

    def images_on(self, caller: str, day: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT images FROM daily_images WHERE caller=? AND day=?", (caller, day)
            ).fetchone()
        return int(row[0]) if row else 0

    def add_images(self, caller: str, day: str, images: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO daily_images (caller, day, images) VALUES (?, ?, ?) "
                "ON CONFLICT (caller, day) DO UPDATE SET images = images + excluded.images",
                (caller, day, images),
            )
            # Yesterday's and older counts are never read again.
            self._db.execute("DELETE FROM daily_images WHERE day < ?", (day,))

    # -- tenants -----------------------------------------------------------------------------

    def tenants(self) -> list[TenantRecord]:
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT t.name, t.created, t.deleted, COUNT(k.id) FROM tenants t "
                "LEFT JOIN keys k ON k.tenant = t.name AND k.revoked IS NULL "
                "AND (k.expires IS NULL OR k.expires > ?) GROUP BY t.name ORDER BY t.name",
                (now,),
            ).fetchall()
        return [TenantRecord(str(r[0]), float(r[1]), r[2], int(r[3])) for r in rows]

    def delete_tenant(self, tenant: str) -> None:
        """Marks the tenant deleted: its keys are refused from now on."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE tenants SET deleted=? WHERE name=? AND deleted IS NULL",
                (time.time(), checked_tenant(tenant)),
            ).rowcount
        if not changed:
            raise NotFound(f"no tenant {tenant!r}")


def _key(row: tuple[object, ...]) -> KeyRecord:
    key_id, name, tenant, scopes, created, expires, revoked = row
    return KeyRecord(
        id=str(key_id),
        name=str(name),
        tenant=str(tenant),
        scopes=parse_scopes(str(scopes)),
        created=float(created),  # type: ignore[arg-type]
        expires=None if expires is None else float(expires),  # type: ignore[arg-type]
        revoked=None if revoked is None else float(revoked),  # type: ignore[arg-type]
    )

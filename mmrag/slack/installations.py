"""Where the OAuth install flow keeps each workspace's installation (its bot token) and the
flow's one-time states: SQLite in the data dir (one API process), or Redis (several API
processes behind one URL, the distributed mode)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import redis
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore
from slack_sdk.oauth.state_store.sqlite3 import SQLite3OAuthStateStore

# A state is valid this long: the time a person takes to click through Slack's consent page.
STATE_TTL_S = 600


def open_stores(
    client_id: str, directory: Path, redis_url: str | None
) -> tuple[InstallationStore, OAuthStateStore]:
    if redis_url is None:
        database = str(directory / "installations.sqlite")
        return (
            SQLite3InstallationStore(database=database, client_id=client_id),
            SQLite3OAuthStateStore(database=database, expiration_seconds=STATE_TTL_S),
        )
    client = redis.Redis.from_url(redis_url)
    prefix = f"mmrag:slack:{client_id}"
    return RedisInstallationStore(client, prefix), RedisOAuthStateStore(client, prefix)


def _scope(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool) -> str:
    # An org-wide install answers for every workspace of the enterprise: no team in its key.
    team = "-" if is_enterprise_install else team_id or "-"
    return f"{enterprise_id or '-'}:{team}"


class RedisInstallationStore(InstallationStore):
    """The latest bot and installation per workspace (or org), and per installing user, as
    JSON under ``<prefix>:bot:<scope>`` and ``<prefix>:installation:<scope>[:<user>]``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, kind: str, scope: str, user_id: str | None = None) -> str:
        return f"{self._prefix}:{kind}:{scope}" + (f":{user_id}" if user_id else "")

    def save(self, installation: Installation) -> None:
        scope = _scope(
            installation.enterprise_id,
            installation.team_id,
            bool(installation.is_enterprise_install),
        )
        entity = json.dumps(installation.__dict__)
        with self._redis.pipeline() as pipe:
            pipe.set(self._key("installation", scope), entity)
            pipe.set(self._key("installation", scope, installation.user_id), entity)
            pipe.execute()
        self.save_bot(installation.to_bot())

    def save_bot(self, bot: Bot) -> None:
        scope = _scope(bot.enterprise_id, bot.team_id, bool(bot.is_enterprise_install))
        self._redis.set(self._key("bot", scope), json.dumps(bot.__dict__))

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        raw = self._redis.get(
            self._key("bot", _scope(enterprise_id, team_id, bool(is_enterprise_install)))
        )
        return Bot(**json.loads(raw)) if raw else None

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        scope = _scope(enterprise_id, team_id, bool(is_enterprise_install))
        raw = self._redis.get(self._key("installation", scope, user_id))
        return Installation(**json.loads(raw)) if raw else None

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self._redis.delete(self._key("bot", _scope(enterprise_id, team_id, False)))

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        scope = _scope(enterprise_id, team_id, False)
        if user_id is not None:
            self._redis.delete(self._key("installation", scope, user_id))
            return
        pattern = self._key("installation", scope)
        self._redis.delete(pattern, *self._redis.scan_iter(match=f"{pattern}:*"))


class RedisOAuthStateStore(OAuthStateStore):
    """One-time states: issued with a time to live, consumed at most once (GETDEL)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def issue(self, *args: object, **kwargs: object) -> str:
        state = secrets.token_urlsafe(24)
        self._redis.set(f"{self._prefix}:state:{state}", "1", ex=STATE_TTL_S)
        return state

    def consume(self, state: str) -> bool:
        return self._redis.getdel(f"{self._prefix}:state:{state}") is not None

"""The Redis installation and state stores, against a real Redis on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from slack_sdk.oauth.installation_store import Installation

from mmrag.slack.installations import RedisInstallationStore, RedisOAuthStateStore
from mmrag.testing.redis_server import RedisServer


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    with RedisServer(tmp_path / "redis") as server:
        yield server.client()


def installation(team: str, user: str, token: str) -> Installation:
    return Installation(
        app_id="A0APP",
        enterprise_id=None,
        team_id=team,
        user_id=user,
        bot_token=token,
        bot_id=f"B{team}",
        bot_user_id=f"U{team}",
        bot_scopes=["chat:write"],
    )


def test_installations_are_kept_per_workspace_and_user(client: redis.Redis) -> None:
    store = RedisInstallationStore(client, "test")
    store.save(installation("T1", "U1", "xoxb-1"))
    store.save(installation("T2", "U2", "xoxb-2"))
    store.save(installation("T1", "U3", "xoxb-1b"))  # a reinstall: the newest bot token wins
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None
    assert bot.bot_token == "xoxb-1b"
    first = store.find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert first is not None
    assert first.bot_token == "xoxb-1"
    assert store.find_bot(enterprise_id=None, team_id="T9") is None
    store.delete_all(enterprise_id=None, team_id="T1")
    assert store.find_bot(enterprise_id=None, team_id="T1") is None
    assert store.find_installation(enterprise_id=None, team_id="T1", user_id="U1") is None
    other = store.find_bot(enterprise_id=None, team_id="T2")
    assert other is not None
    assert other.bot_token == "xoxb-2"


def test_a_state_is_consumed_once(client: redis.Redis) -> None:
    states = RedisOAuthStateStore(client, "test")
    state = states.issue()
    assert states.consume(state)
    assert not states.consume(state)
    assert not states.consume("never-issued")
    assert 0 < client.ttl(f"test:state:{states.issue()}") <= 600

"""``mmrag keys`` and ``mmrag tenants`` in-process: the secret shown once, only its hash kept."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import Settings
from mmrag.retrieval.store import ImagePoint
from mmrag.retrieval.stores import open_store
from mmrag.retrieval.tenants import TenantView
from mmrag.tenancy.keys import KeyStore

runner = CliRunner()
SECRET = re.compile(r"mmrag_([0-9a-f]{12})_\S+")


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def create(*args: str) -> tuple[str, str]:
    result = runner.invoke(app, ["keys", "create", *args])
    assert result.exit_code == 0, result.output
    found = SECRET.search(result.output)
    assert found is not None, result.output
    return found.group(1), found.group(0)


def test_create_list_revoke_rotate(data_dir: Path) -> None:
    key_id, secret = create("--tenant", "acme", "--scopes", "read,write", "--name", "ci")
    store = KeyStore.in_data_dir(data_dir)
    found = store.find(secret)
    assert found is not None
    assert (found.tenant, found.name, found.scopes) == ("acme", "ci", frozenset({"read", "write"}))
    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.output
    assert secret not in listed.output
    # Only the hash is stored.
    raw = sqlite3.connect(data_dir / "keys.sqlite").execute("SELECT * FROM keys").fetchall()
    assert secret not in repr(raw)
    rotated = runner.invoke(app, ["keys", "rotate", key_id])
    assert rotated.exit_code == 0, rotated.output
    new = SECRET.search(rotated.output)
    assert new is not None
    assert store.find(secret) is None
    successor = store.find(new.group(0))
    assert successor is not None
    assert (successor.tenant, successor.name) == ("acme", "ci")
    assert runner.invoke(app, ["keys", "revoke", successor.id]).exit_code == 0
    assert store.find(new.group(0)) is None
    tenants = runner.invoke(app, ["tenants", "list"])
    assert "acme" in tenants.output
    store.close()


def test_expiry(data_dir: Path) -> None:
    _, secret = create("--tenant", "acme", "--expires", "1h")
    store = KeyStore.in_data_dir(data_dir)
    found = store.find(secret)
    assert found is not None
    assert found.expires is not None
    store.close()


@pytest.mark.parametrize(
    "args",
    [
        ["--tenant", "../etc"],
        ["--tenant", "slack:T1"],
        # Names that would pass for another caller's conversation owner.
        ["--tenant", "default", "--name", "acme/bob"],
        ["--tenant", "default", "--name", "slack:T1"],
        ["--tenant", "default", "--name", "anonymous"],
        ["--tenant", "acme", "--scopes", "read,root"],
        ["--tenant", "acme", "--expires", "soon"],
        ["--tenant", "acme", "--expires", "2001-01-01T00:00:00Z"],
    ],
)
def test_bad_input_is_one_line(data_dir: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["keys", "create", *args])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "mmrag_" not in result.output


def test_unknown_key_id(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "revoke", "nope"])
    assert result.exit_code == 1
    assert "no key" in result.output


def test_tenants_list_shows_what_each_tenant_holds(data_dir: Path) -> None:
    create("--tenant", "acme", "--scopes", "read")
    store = open_store(Settings())
    store.ensure_collection(4)
    image_id = "ab" * 16
    vector = np.full(4, 0.5, dtype=np.float32)
    TenantView(store, "acme").upsert(
        [ImagePoint(image_id, vector, {"id": image_id, "bytes": 4321})]
    )
    store.close()
    listed = runner.invoke(app, ["tenants", "list"])
    assert listed.exit_code == 0, listed.output
    assert "images" in listed.output
    assert "bytes" in listed.output
    [acme] = [line for line in listed.output.splitlines() if "acme" in line]
    assert re.search(r"│ +1 +│ +4321 +│", acme), acme  # one image of 4321 bytes
    [default] = [line for line in listed.output.splitlines() if "default" in line]
    assert re.search(r"│ +0 +│ +0 +│", default), default

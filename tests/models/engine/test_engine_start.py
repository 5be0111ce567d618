"""`mmrag serve` and `mmrag worker` refuse to start, with one line, when an engine-served
model's engine is down or serves another model."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from agents.fake_openai import FakeOpenAI
from typer.testing import CliRunner

from mmrag.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("MMRAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MMRAG_PROFILE", "offline")


@pytest.fixture
def engine() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.models = ["served/model"]
        yield fake


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_engine_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    monkeypatch.setenv("MMRAG_MODELS__VLM", f"openai:{url}#served/model")
    result = runner.invoke(app, [command])
    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"error: engine at {url} is unreachable")


def test_an_engine_serving_another_model_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, engine: FakeOpenAI
) -> None:
    monkeypatch.setenv("MMRAG_MODELS__GROUNDING", f"openai:{engine.url}#Qwen/Qwen2.5-VL-3B")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code != 0
    assert result.output.strip() == (
        f"error: engine at {engine.url} serves served/model, not Qwen/Qwen2.5-VL-3B"
    )

"""The installed tree is the lock: a green suite proves that set-up honoured requirements.lock,
and that the lock still satisfies what pyproject.toml asks for."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# `name==version \` opens each entry of pip-compile's output; hashes and comments follow.
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)\s*\\?$")


def _entries(text: str) -> dict[str, list[str]]:
    """Each locked distribution (canonical name) with the lines of its entry."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            current = entries.setdefault(canonicalize_name(match["name"]), [line])
        elif line.startswith(" ") and current is not None:
            current.append(line.strip())
        else:
            current = None
    return entries


def locked_versions(text: str) -> dict[str, Version]:
    versions = {}
    for name, lines in _entries(text).items():
        match = _PIN.match(lines[0])
        assert match is not None
        versions[name] = Version(match["version"])
    return versions


def installed_versions() -> dict[str, Version]:
    return {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in importlib.metadata.distributions()
    }


@pytest.fixture(scope="module")
def lock_text() -> str:
    return LOCK.read_text()


def test_every_locked_distribution_is_installed_at_its_version(lock_text: str) -> None:
    installed = installed_versions()
    drift = {
        name: f"locked {version}, installed {installed.get(name, 'nothing')}"
        for name, version in locked_versions(lock_text).items()
        if installed.get(name) != version
    }
    assert not drift, f"the venv drifted from requirements.lock: {drift}"


def test_nothing_is_installed_that_the_lock_does_not_name(lock_text: str) -> None:
    extra = set(installed_versions()) - set(locked_versions(lock_text)) - {"mmrag"}
    assert not extra, f"installed but not in requirements.lock: {sorted(extra)}"


def test_every_entry_carries_its_hashes(lock_text: str) -> None:
    entries = _entries(lock_text)
    assert len(entries) > 50  # the whole transitive tree, not a handful of direct pins
    unhashed = [
        name
        for name, lines in entries.items()
        if not any("--hash=sha256:" in line for line in lines)
    ]
    assert not unhashed


def test_the_lock_satisfies_every_requirement_of_pyproject(lock_text: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(text) for text in extra]
    locked = locked_versions(lock_text)
    unmet = []
    for requirement in requirements:
        version = locked.get(canonicalize_name(requirement.name))
        if version is None or version not in requirement.specifier:
            unmet.append(str(requirement))
    assert not unmet, f"pyproject.toml asks for what the lock does not give: {unmet} (make lock)"


def test_the_parser_sees_pins_and_their_hashes() -> None:
    text = "\n".join(
        [
            "# a comment",
            "torch==2.13.0+cpu \\",
            "    --hash=sha256:aa",
            "    # via mmrag",
            "Pillow==13.0.0 \\",
            "    --hash=sha256:bb \\",
            "    --hash=sha256:cc",
        ]
    )
    assert locked_versions(text) == {"torch": Version("2.13.0+cpu"), "pillow": Version("13.0.0")}
    assert _entries(text)["pillow"][1:] == ["--hash=sha256:bb \\", "--hash=sha256:cc"]

"""Resolve ``hf:org/name@revision`` to files on disk, offline first.

The registry needs a model's ``config.json`` to pick the adapter (its ``model_type``), and
``load()`` needs the whole snapshot. Both look in the Hugging Face cache first and go to the
hub only after one short probe says it answers, so a machine with no hub fails in seconds
with :class:`ModelUnavailable` instead of retrying for a minute.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.clip.weights import unreachable_reason
from mmrag.models.spec import ModelSpec

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


def read_config(directory: Path) -> dict[str, Any]:
    """A model directory's ``config.json``; a missing or unreadable one raises."""
    path = directory / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelUnavailable(
            f"{directory} holds no {CONFIG_FILE}: not a model directory"
        ) from None
    except (OSError, ValueError) as error:
        raise ModelUnavailable(f"cannot read {path}: {error}") from error
    if not isinstance(config, dict):
        raise ModelUnavailable(f"{path} does not hold a JSON object")
    return config


def hub_config(spec: ModelSpec, cache_dir: Path | None = None) -> dict[str, Any]:
    """The ``config.json`` of an ``hf:`` spec: from the cache, else downloaded (that file only)."""
    return read_config(_fetch(spec, cache_dir, allow_patterns=[CONFIG_FILE]))


def hub_snapshot(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    """The local directory holding an ``hf:`` spec's whole snapshot, downloading it if needed."""
    return _fetch(spec, cache_dir, allow_patterns=None)


def _fetch(spec: ModelSpec, cache_dir: Path | None, allow_patterns: list[str] | None) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if spec.scheme != "hf" or "/" not in spec.name:
        raise UnknownModel(f"{spec}: expected hf:org/name[@revision]")
    cache = str(cache_dir) if cache_dir is not None else None
    try:
        return Path(
            snapshot_download(
                spec.name,
                revision=spec.revision,
                cache_dir=cache,
                allow_patterns=allow_patterns,
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:
        pass
    problem = unreachable_reason(f"{constants.ENDPOINT}/{spec.name}")
    if problem is not None:
        raise ModelUnavailable(
            f"{spec} is not in the Hugging Face cache and cannot be downloaded: {problem}"
        )
    log.info("downloading %s", spec)
    try:
        return Path(
            snapshot_download(
                spec.name, revision=spec.revision, cache_dir=cache, allow_patterns=allow_patterns
            )
        )
    except HfHubHTTPError as error:
        raise ModelUnavailable(f"cannot download {spec}: {error}") from error

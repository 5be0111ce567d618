"""Find an open_clip checkpoint on disk first; go to the network only when it answers.

Handing open_clip a pretrained *tag* makes it call ``hf_hub_download``, which asks the hub for
the file's current revision even when a copy is cached, and, with no network, retries with
back-off for most of a minute before giving up (or before falling back to the cache). Instead
we resolve the tag to a file ourselves:

1. the tag's file in the Hugging Face cache or open_clip's URL cache: use it, no network;
2. otherwise one short probe of the download host; unreachable (or ``HF_HUB_OFFLINE`` set):
   fail at once with :class:`ModelUnavailable`;
3. otherwise let open_clip download it as usual.

The model is then built from the file, with the tag's preprocessing and activation settings
passed explicitly (open_clip only applies them itself when given the tag).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.errors import ModelUnavailable, UnknownModel

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
OPEN_CLIP_URL_CACHE = Path("~/.cache/clip")  # open_clip's default for URL downloads


@dataclass(frozen=True)
class Checkpoint:
    """A weights file on disk, and the pretrained tag's settings that go with it."""

    path: str
    tag_cfg: Mapping[str, Any] = field(default_factory=dict)

    @property
    def quick_gelu(self) -> bool:
        return bool(self.tag_cfg.get("quick_gelu", False))


def resolve_checkpoint(model_name: str, tag: str, cache_dir: Path | None = None) -> Checkpoint:
    """The checkpoint for built-in architecture ``model_name`` and pretrained ``tag`` (or file).

    Raises :class:`UnknownModel` for an unknown architecture or tag and
    :class:`ModelUnavailable` when the weights are neither cached nor downloadable now.
    """
    import open_clip

    if os.path.isfile(tag):
        return Checkpoint(tag)
    if model_name not in open_clip.list_models():
        raise UnknownModel(f"open_clip has no architecture {model_name!r}")
    tag_cfg: dict[str, Any] = open_clip.get_pretrained_cfg(model_name, tag)
    if not tag_cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise UnknownModel(f"open_clip has no weights {tag!r} for {model_name} (known: {known})")
    cached = find_cached(tag_cfg, cache_dir)
    if cached is not None:
        log.debug("using cached weights %s", cached)
        return Checkpoint(cached, tag_cfg)
    source = download_source(tag_cfg)
    problem = unreachable_reason(source)
    if problem is not None:
        raise ModelUnavailable(
            f"weights {model_name}@{tag} are not cached ({_cache_description(tag_cfg, cache_dir)})"
            f" and cannot be downloaded: {problem}"
        )
    log.info("downloading %s@%s from %s", model_name, tag, source)
    path = open_clip.download_pretrained(
        tag_cfg, cache_dir=str(cache_dir) if cache_dir is not None else None
    )
    if not path:
        raise ModelUnavailable(f"open_clip found no download for {model_name}@{tag}")
    return Checkpoint(str(path), tag_cfg)


def find_cached(tag_cfg: Mapping[str, Any], cache_dir: Path | None = None) -> str | None:
    """The tag's weights file if a previous download left it on disk; never touches the network."""
    explicit = tag_cfg.get("file")
    if explicit and os.path.isfile(explicit):
        return str(explicit)
    hf_hub = tag_cfg.get("hf_hub")
    if hf_hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = _split_hf_hub(hf_hub)
        for candidate in _hf_filenames(filename):
            hit = try_to_load_from_cache(
                repo_id, candidate, cache_dir=str(cache_dir) if cache_dir else None
            )
            if isinstance(hit, str):  # None or a "known missing" marker otherwise
                return hit
    url = tag_cfg.get("url")
    if url:
        path = (cache_dir or OPEN_CLIP_URL_CACHE).expanduser() / os.path.basename(url)
        if path.is_file():
            return str(path)
    return None


def download_source(tag_cfg: Mapping[str, Any]) -> str:
    """Where open_clip would download the tag from (it prefers the hub when it has both)."""
    from huggingface_hub import constants

    hf_hub = tag_cfg.get("hf_hub")
    if hf_hub:
        return f"{constants.ENDPOINT}/{_split_hf_hub(hf_hub)[0]}"
    return str(tag_cfg.get("url", ""))


def unreachable_reason(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``url``'s server answers at all (any HTTP status), else why not."""
    import httpx
    from huggingface_hub import constants

    if not url:
        return "the tag names no download location"
    if constants.HF_HUB_OFFLINE and url.startswith(constants.ENDPOINT):
        return "HF_HUB_OFFLINE is set"
    try:
        # One HEAD without retries or redirects: we only ask whether anyone answers.
        httpx.head(url, timeout=timeout_s, follow_redirects=False)
    except httpx.TransportError as error:
        return f"{url} is unreachable ({type(error).__name__}: {error})"
    return None


def _split_hf_hub(hf_hub: str) -> tuple[str, str]:
    # open_clip writes "org/repo/filename" or "org/repo/" (default filename).
    repo_id, filename = os.path.split(hf_hub)
    return repo_id, filename


def _hf_filenames(filename: str) -> Iterator[str]:
    """The names open_clip tries, in its order: a safetensors twin first, then the file."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    name = filename or HF_WEIGHTS_NAME
    if name == HF_WEIGHTS_NAME:
        yield HF_SAFE_WEIGHTS_NAME
    elif name.endswith((".bin", ".pth")):
        yield name[:-4] + ".safetensors"
    yield name


def _cache_description(tag_cfg: Mapping[str, Any], cache_dir: Path | None) -> str:
    if cache_dir is not None:
        return f"looked in {cache_dir}"
    if tag_cfg.get("hf_hub"):
        from huggingface_hub import constants

        return f"looked in {constants.HF_HUB_CACHE}"
    return f"looked in {OPEN_CLIP_URL_CACHE}"

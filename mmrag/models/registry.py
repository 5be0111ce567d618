"""One registry: a spec string in, an adapter out. Unknown specs raise."""

from __future__ import annotations

from pathlib import Path

from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, OpenClipSource
from mmrag.models.spec import ModelSpec, parse_spec

OPEN_CLIP_CONFIG = "open_clip_config.json"


def create_embedder(
    spec: str | ModelSpec, options: EmbedderOptions = EmbedderOptions()
) -> ClipEmbedder:
    """The embedder a spec names; cheap (weights load on first use)."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    match parsed:
        case ModelSpec(scheme="open_clip", name=name, revision=revision):
            return ClipEmbedder(parsed, _built_in_open_clip(parsed, name, revision), options)
        case ModelSpec(scheme="local", name=path):
            return ClipEmbedder(parsed, _local_open_clip(Path(path)), options)
        case ModelSpec(scheme="fixture", name=name):
            from mmrag.models.fixtures import fixture_directory

            directory = fixture_directory(name, options.cache_dir)
            return ClipEmbedder(parsed, _local_open_clip(directory), options)
        case _:
            raise UnknownModel(f"no embedder for {parsed}: use open_clip:, local: or fixture:")


def _built_in_open_clip(spec: ModelSpec, name: str, revision: str | None) -> OpenClipSource:
    # Checked here, without importing open_clip: architecture and tag are checked at load.
    if ":" in name:
        raise UnknownModel(
            f"{spec}: open_clip specs name a built-in architecture (open_clip:ViT-B-32@<tag>); "
            "for a model directory use local:/path"
        )
    if not revision:
        # Without a tag open_clip would build random weights and embed nonsense, quietly.
        raise UnknownModel(
            f"{spec} names no pretrained weights: add @<tag> (open_clip:{name}@laion2b_s34b_b79k)"
        )
    return OpenClipSource(name, revision)


def _local_open_clip(directory: Path) -> OpenClipSource:
    if not (directory / OPEN_CLIP_CONFIG).is_file():
        raise ModelUnavailable(
            f"{directory} holds no {OPEN_CLIP_CONFIG}: not an open_clip model directory"
        )
    return OpenClipSource(f"local-dir:{directory}")

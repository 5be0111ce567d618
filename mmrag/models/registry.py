"""One registry: a spec string in, an adapter out. Unknown specs raise."""

from __future__ import annotations

from pathlib import Path

from mmrag.errors import ModelUnavailable, UnknownModel
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, OpenClipSource
from mmrag.models.hf_hub import hub_config, read_config
from mmrag.models.spec import ModelSpec, parse_spec
from mmrag.models.vision import VisionModel, VisionOptions

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


def create_vision_model(
    spec: str | ModelSpec, options: VisionOptions = VisionOptions()
) -> VisionModel:
    """The captioning / VQA / grounding adapter a spec names; weights load on first use.

    The adapter is picked by the ``model_type`` in the model's ``config.json``, so any
    checkpoint of a supported family works, not only the ones named in the docs.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    source: Path | None
    if parsed.scheme == "openai":
        from mmrag.models.engine.adapter import engine_adapter

        return engine_adapter(parsed, options)
    match parsed:
        case ModelSpec(scheme="hf"):
            source = None  # the snapshot is resolved at load
            config = hub_config(parsed, options.cache_dir)
        case ModelSpec(scheme="local", name=path):
            source = Path(path)
            config = read_config(source)
        case ModelSpec(scheme="fixture", name=name):
            from mmrag.models.fixtures import fixture_directory

            source = fixture_directory(name, options.cache_dir)
            config = read_config(source)
        case _:
            raise UnknownModel(
                f"no vision model for {parsed}: use hf:, local:, fixture: or openai:"
            )
    return vision_adapter(str(config.get("model_type", "")), parsed)(parsed, options, source)


def vision_adapter(model_type: str, spec: ModelSpec) -> type[VisionModel]:
    """The adapter class for a transformers ``model_type``. Imported lazily: each pulls in
    transformers, which the API process never needs."""
    match model_type:
        case "blip":
            from mmrag.models.vlm.blip import BlipAdapter

            return BlipAdapter
        case "blip-2":
            from mmrag.models.vlm.blip2 import Blip2Adapter

            return Blip2Adapter
        case "instructblip":
            from mmrag.models.vlm.blip2 import InstructBlipAdapter

            return InstructBlipAdapter
        case "llava":
            from mmrag.models.vlm.llava import LlavaAdapter

            return LlavaAdapter
        case "llava_next":
            from mmrag.models.vlm.llava import LlavaNextAdapter

            return LlavaNextAdapter
        case "qwen2_vl" | "qwen2_5_vl" | "qwen3_vl":
            from mmrag.models.vlm.qwen_vl import QwenVlAdapter

            return QwenVlAdapter
        case "internvl":
            from mmrag.models.vlm.internvl import InternVlAdapter

            return InternVlAdapter
        case "glm4v":
            from mmrag.models.vlm.glm4v import Glm4vAdapter

            return Glm4vAdapter
        case "florence2":
            from mmrag.models.vlm.florence2 import Florence2Adapter

            return Florence2Adapter
        case "kosmos-2":
            from mmrag.models.vlm.kosmos2 import Kosmos2Adapter

            return Kosmos2Adapter
        case "grounding-dino":
            from mmrag.models.grounding.grounding_dino import GroundingDinoAdapter

            return GroundingDinoAdapter
        case "owlv2" | "owlvit":
            from mmrag.models.grounding.owl import OwlAdapter

            return OwlAdapter
        case _:
            raise UnknownModel(
                f"{spec}: model type {model_type or '(none)'!r} is not a supported vision family"
            )

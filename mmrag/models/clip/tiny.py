"""Write tiny random-weight open_clip model directories (tests and benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_open_clip_dir(
    directory: Path, model_cfg: dict[str, Any] = TINY_CLIP_CONFIG, seed: int = 0
) -> Path:
    """Build an open_clip model from ``model_cfg`` with random weights and save it as a
    ``local-dir:`` model (``open_clip_config.json`` + ``open_clip_model.safetensors``)."""
    from mmrag.models.torch_setup import ensure_torchvision

    ensure_torchvision()
    import open_clip
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"size": model_cfg["vision_cfg"]["image_size"]},
    }
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return directory

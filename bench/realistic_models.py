"""Realistic-size vision models at random weights, built offline for the throughput benchmarks.

Each builder makes a transformers model from its config's defaults (the sizes of the released
checkpoint), with a processor made here (no model hub), and saves both with
``save_pretrained`` into a directory that the registry loads as ``local:<dir>``. The weights are
noise, so the outputs are too, but the compute per image is the real model's: what a
throughput benchmark needs.

- :func:`blip_base_captioner`: BLIP base captioning (the size of
  ``Salesforce/blip-image-captioning-base``): ViT-B/16 at 384 px, BERT-base text decoder.
- :func:`owlvit_base_patch32`: OWL-ViT base patch 32 (``google/owlvit-base-patch32``):
  ViT-B/32 at 768 px, CLIP text encoder, the real CLIP tokenizer (rebuilt from open_clip's).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from mmrag.models.torch_setup import ensure_torchvision

SEED = 0

# BERT uncased's layout: [PAD], then reserved slots, with [UNK] [CLS] [SEP] [MASK] at 100-103.
_BERT_RESERVED_BEFORE_UNK = 99


def blip_base_captioner(directory: Path) -> dict[str, Any]:
    """BLIP base captioning at random weights into ``directory``; returns what was built."""
    ensure_torchvision()
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )

    config = BlipConfig()
    # Typed as "a config, a dict or None" in transformers; built from the defaults here.
    text = cast(BlipTextConfig, config.text_config)
    vision = cast(BlipVisionConfig, config.vision_config)
    # BLIP's decoder starts from [DEC]; the released tokenizer adds [DEC] and [ENC] to BERT's.
    tokenizer = BertTokenizer(vocab=_bert_style_vocabulary(text.vocab_size - 2))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_tokens(["[ENC]"], special_tokens=True)
    if len(tokenizer) != text.vocab_size or tokenizer.bos_token_id != text.bos_token_id:
        raise RuntimeError("the BLIP tokenizer does not match the config's vocabulary")
    torch.manual_seed(SEED)
    model = BlipForConditionalGeneration(config)
    side = _side(vision.image_size)
    image_processor = BlipImageProcessor(size={"height": side, "width": side})
    _save(directory, model, _make(BlipProcessor, image_processor, tokenizer))
    return {
        "architecture": "BlipForConditionalGeneration",
        "size_of": "Salesforce/blip-image-captioning-base",
        "config": "BlipConfig() defaults",
        "parameters": _parameters(model),
        "vision": f"ViT, patch {vision.patch_size}, {vision.num_hidden_layers} layers, "
        f"hidden {vision.hidden_size}",
        "text": f"BERT decoder, {text.num_hidden_layers} layers, hidden {text.hidden_size}, "
        f"vocabulary {text.vocab_size}",
        "model_input_px": side,
    }


def owlvit_base_patch32(directory: Path) -> dict[str, Any]:
    """OWL-ViT base patch 32 at random weights into ``directory``; returns what was built."""
    ensure_torchvision()
    import torch
    from transformers import (
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        OwlViTProcessor,
        OwlViTTextConfig,
        OwlViTVisionConfig,
    )

    config = OwlViTConfig()
    text = cast(OwlViTTextConfig, config.text_config)
    vision = cast(OwlViTVisionConfig, config.vision_config)
    torch.manual_seed(SEED)
    model = OwlViTForObjectDetection(config)
    side = _side(vision.image_size)
    image_processor = OwlViTImageProcessor(
        size={"height": side, "width": side}, crop_size={"height": side, "width": side}
    )
    tokenizer = clip_tokenizer(model_max_length=text.max_position_embeddings)
    _save(directory, model, _make(OwlViTProcessor, image_processor, tokenizer))
    return {
        "architecture": "OwlViTForObjectDetection",
        "size_of": "google/owlvit-base-patch32",
        "config": "OwlViTConfig() defaults",
        "parameters": _parameters(model),
        "vision": f"ViT, patch {vision.patch_size}, {vision.num_hidden_layers} layers, "
        f"hidden {vision.hidden_size}",
        "text": f"CLIP text encoder, {text.num_hidden_layers} layers, hidden {text.hidden_size}, "
        f"at most {text.max_position_embeddings} tokens a phrase",
        "model_input_px": side,
    }


def clip_tokenizer(model_max_length: int) -> Any:
    """The real CLIP BPE tokenizer, rebuilt from the vocabulary and merges open_clip ships,
    padding with "!" (id 0) as the OWL checkpoints do."""
    ensure_torchvision()  # open_clip imports torchvision
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    source = SimpleTokenizer()
    # open_clip names the two special tokens differently; the ids are the same.
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(token, token): index for token, index in source.encoder.items()}
    ranks: dict[tuple[str, str], int] = source.bpe_ranks
    return _make(
        CLIPTokenizer,
        vocab=vocab,
        merges=sorted(ranks, key=ranks.__getitem__),
        pad_token="!",
        model_max_length=model_max_length,
    )


def _bert_style_vocabulary(size: int) -> dict[str, int]:
    """A WordPiece vocabulary of exactly ``size`` tokens laid out as BERT uncased's: the special
    tokens at BERT's ids, single-character pieces (any text tokenizes), the rest reserved
    ``[unusedN]`` slots (BERT has a thousand of them), so every id the model generates decodes."""
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = [
        "[PAD]",
        *(f"[unused{index}]" for index in range(_BERT_RESERVED_BEFORE_UNK)),
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *characters,
        *(f"##{character}" for character in characters),
    ]
    unique = list(dict.fromkeys(tokens))
    reserved = (f"[unused{index}]" for index in range(_BERT_RESERVED_BEFORE_UNK, size))
    unique.extend(next(reserved) for _ in range(size - len(unique)))
    return {token: index for index, token in enumerate(unique)}


def _side(image_size: int | list[int] | tuple[int, int]) -> int:
    """A config's square input size, given as one side or as (height, width)."""
    return image_size if isinstance(image_size, int) else int(image_size[0])


def _parameters(model: Any) -> int:
    return sum(int(parameter.numel()) for parameter in model.parameters())


def _make(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a transformers class whose constructor is not annotated (processors, tokenizers)."""
    return factory(*args, **kwargs)


def _save(directory: Path, model: Any, processor: Any) -> None:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)

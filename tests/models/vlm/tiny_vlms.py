"""Tiny random-weight VLM checkpoints, one per family the generative adapters serve.

Each is built from its transformers config with hidden sizes of 32, one layer and 16-32 px
images, with a processor made offline (a byte-level BPE tokenizer trained here on a few
sentences, or a WordPiece vocabulary listed here), and saved with ``save_pretrained``: the
same files a real checkpoint has, so they load through the registry's ``local:`` specs.
They give structure (shapes, batching, decoding), not answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.models.torch_setup import ensure_torchvision
from mmrag.models.vlm.prompts import CAPTION_PROMPTS

HIDDEN = 32
SEED = 0

CORPUS = [
    *CAPTION_PROMPTS.values(),
    "a red circle above a blue square next to a green triangle",
    "What colour is the circle? How many shapes are there? Where is the square?",
    "USER: ASSISTANT: user assistant system Question: Answer: yes no one two three",
]

# Chat templates in the shape of each family's: the conversation's roles and texts, and the
# family's image placeholder where an image goes.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}IMAGE{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def chat_template(image_placeholder: str) -> str:
    return _CHAT_TEMPLATE.replace("IMAGE", image_placeholder)


# -- tokenizers -------------------------------------------------------------------------------


def bpe_tokenizer(special_tokens: list[str], **named: Any) -> Any:
    """A byte-level BPE tokenizer (about 330 tokens) with ``special_tokens`` added; ``named``
    are the tokenizer's attributes (``bos_token="<s>"``, ``image_token="<image>"``...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS, trainer)
    standard = {"bos_token", "eos_token", "pad_token", "unk_token"}
    extra = {name: value for name, value in named.items() if name not in standard}
    return _make(
        PreTrainedTokenizerFast,
        tokenizer_object=core,
        extra_special_tokens=extra,
        **{name: value for name, value in named.items() if name in standard},
    )


def wordpiece_tokenizer(extra_special: tuple[str, ...] = ()) -> Any:
    """A BERT WordPiece tokenizer over the corpus's words and characters."""
    from transformers import BertTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_special]
    text = " ".join(CORPUS).lower()
    words = sorted({word.strip("?:.,") for word in text.split()} - {""})
    characters = sorted({c for c in text if c.isalnum() or c in "?:.,"})
    tokens = [*special, *characters, *(f"##{c}" for c in characters), *words]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return BertTokenizer(vocab=vocab)


def _llama_text(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _clip_vision(image_size: int = 32, patch_size: int = 8) -> dict[str, Any]:
    return {
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": patch_size,
        "projection_dim": HIDDEN,
    }


def _make(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a transformers class whose constructor is not annotated (most processors)."""
    return factory(*args, **kwargs)


def _save(directory: Path, model: Any, processor: Any) -> None:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


# -- BLIP family -----------------------------------------------------------------------------


def _blip(directory: Path, architecture: str) -> None:
    import transformers
    from transformers import BlipConfig, BlipImageProcessor, BlipProcessor

    tokenizer = wordpiece_tokenizer(extra_special=("[DEC]",))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": HIDDEN,
            "encoder_hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "projection_dim": HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**_clip_vision(), "projection_dim": HIDDEN},
        projection_dim=HIDDEN,
        image_text_hidden_size=HIDDEN,
    )
    model = getattr(transformers, architecture)(config)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    _save(directory, model, _make(BlipProcessor, image_processor, tokenizer))


def blip_captioning(directory: Path) -> None:
    _blip(directory, "BlipForConditionalGeneration")


def blip_vqa(directory: Path) -> None:
    _blip(directory, "BlipForQuestionAnswering")


QUERY_TOKENS = 4


def _qformer(vocab_size: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "hidden_size": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 2 * HIDDEN,
        "encoder_hidden_size": HIDDEN,
    }
    if vocab_size is not None:
        config["vocab_size"] = vocab_size
    return config


def blip2(directory: Path) -> None:
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    tokenizer = bpe_tokenizer(
        ["<pad>", "</s>", "<image>"],
        bos_token="</s>",  # as OPT's tokenizer: one token begins and ends
        eos_token="</s>",
        pad_token="<pad>",
    )
    text = _llama_text(tokenizer)
    opt = {
        "vocab_size": text["vocab_size"],
        "hidden_size": HIDDEN,
        "ffn_dim": 2 * HIDDEN,
        "word_embed_proj_dim": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "model_type": "opt",
    }
    config = Blip2Config(
        vision_config=_clip_vision(),
        qformer_config=_qformer(),
        text_config=opt,
        num_query_tokens=QUERY_TOKENS,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_text_hidden_size=HIDDEN,
    )
    model = Blip2ForConditionalGeneration(config)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = _make(Blip2Processor, image_processor, tokenizer, num_query_tokens=QUERY_TOKENS)
    _save(directory, model, processor)


def instructblip(directory: Path) -> None:
    from transformers import (
        BlipImageProcessor,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
    )

    # Unlike BLIP-2's above, this tokenizer names its image token, as newer checkpoints' do.
    tokenizer = bpe_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        image_token="<image>",
    )
    qformer_tokenizer = wordpiece_tokenizer()
    config = InstructBlipConfig(
        vision_config=_clip_vision(),
        qformer_config=_qformer(vocab_size=len(qformer_tokenizer)),
        text_config={**_llama_text(tokenizer), "model_type": "llama"},
        num_query_tokens=QUERY_TOKENS,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = InstructBlipForConditionalGeneration(config)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = _make(
        InstructBlipProcessor,
        image_processor,
        tokenizer,
        qformer_tokenizer,
        num_query_tokens=QUERY_TOKENS,
    )
    _save(directory, model, processor)


# -- LLaVA family ----------------------------------------------------------------------------


def _llava_tokenizer() -> Any:
    return bpe_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        image_token="<image>",
    )


def _llava(directory: Path, template: str | None) -> None:
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _llava_tokenizer()
    config = LlavaConfig(
        vision_config={**_clip_vision(), "model_type": "clip_vision_model"},
        text_config={**_llama_text(tokenizer), "model_type": "llama"},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor = _make(
        LlavaProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by "default"
        chat_template=template,
    )
    _save(directory, model, processor)


def llava_plain(directory: Path) -> None:
    """LLaVA-1.5 saved without a chat template, as the fixture VLM is."""
    _llava(directory, None)


def llava_chat(directory: Path) -> None:
    _llava(directory, chat_template("<image>\n"))


def llava_next(directory: Path) -> None:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tokenizer = _llava_tokenizer()
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        vision_config={**_clip_vision(), "model_type": "clip_vision_model"},
        text_config={**_llama_text(tokenizer), "model_type": "llama"},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
    )
    model = LlavaNextForConditionalGeneration(config)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_grid_pinpoints=pinpoints,
    )
    processor = _make(
        LlavaNextProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("<image>\n"),
    )
    _save(directory, model, processor)


# -- dynamic-resolution families -------------------------------------------------------------

# 4 px patches merged 2 x 2: one visual token per 8 px square; images become 16-64 tokens.
PATCH = 4
MERGE = 2
MIN_PIXELS = 16 * 16
MAX_PIXELS = 64 * 64

QWEN_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_tokenizer() -> Any:
    return bpe_tokenizer(
        QWEN_TOKENS,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
        vision_bos_token="<|vision_start|>",
        vision_eos_token="<|vision_end|>",
    )


def _qwen_ids(tokenizer: Any) -> dict[str, Any]:
    return {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }


def _qwen_text(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    # head_dim 16: the rotary half (8) is split between time, height and width.
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
        },
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


def _qwen_processor(processor_class: Any, tokenizer: Any, patch: int = PATCH) -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    sizes: dict[str, Any] = {"patch_size": patch, "merge_size": MERGE, "temporal_patch_size": 2}
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    return processor_class(
        image_processor=Qwen2VLImageProcessor(size=size, **sizes),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size, **sizes),
        chat_template=chat_template("<|vision_start|><|image_pad|><|vision_end|>"),
    )


def qwen2_vl(directory: Path) -> None:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    tokenizer = _qwen_tokenizer()
    config = Qwen2VLConfig(
        text_config=_qwen_text(tokenizer),
        vision_config={
            "depth": 1,
            "embed_dim": HIDDEN,
            "hidden_size": HIDDEN,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
        },
        **_qwen_ids(tokenizer),
    )
    model = Qwen2VLForConditionalGeneration(config)
    _save(directory, model, _qwen_processor(Qwen2VLProcessor, tokenizer))


def qwen2_5_vl(directory: Path) -> None:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )

    tokenizer = _qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text(tokenizer),
        vision_config={
            "depth": 1,
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "window_size": 4 * PATCH * MERGE,
            "fullatt_block_indexes": [0],
        },
        **_qwen_ids(tokenizer),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    _save(directory, model, _qwen_processor(Qwen2_5_VLProcessor, tokenizer))


def qwen3_vl(directory: Path) -> None:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    tokenizer = _qwen_tokenizer()
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    config = Qwen3VLConfig(
        text_config=_qwen_text(tokenizer, head_dim=16, rope_parameters=rope),
        vision_config={
            "depth": 1,
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "num_position_embeddings": 64,  # an 8 x 8 grid, interpolated to each image's
            "deepstack_visual_indexes": [0],
        },
        **_qwen_ids(tokenizer),
    )
    model = Qwen3VLForConditionalGeneration(config)
    _save(directory, model, _qwen_processor(Qwen3VLProcessor, tokenizer))


def internvl(directory: Path) -> None:
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    tokenizer = bpe_tokenizer(
        ["<|endoftext|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
    )
    image_size = 16
    # 16 px tiles of 4 px patches, pixel-shuffled by 0.5: 4 tokens a tile.
    tile_tokens = (image_size // PATCH) ** 2 // 4
    config = InternVLConfig(
        vision_config={
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": [image_size, image_size],
            "patch_size": [PATCH, PATCH],
        },
        text_config={
            **_qwen_text(tokenizer),
            "model_type": "qwen2",
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=tile_tokens,
        downsample_ratio=0.5,
    )
    model = InternVLForConditionalGeneration(config)
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, max_patches=4),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=tile_tokens,
        chat_template=chat_template("<IMG_CONTEXT>\n"),
    )
    _save(directory, model, processor)


GLM_TOKENS = [
    "<|endoftext|>",
    "<|user|>",
    "<|assistant|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|video|>",
]


def glm4v(directory: Path) -> None:
    from transformers import (
        Glm4vConfig,
        Glm4vForConditionalGeneration,
        Glm4vImageProcessor,
        Glm4vProcessor,
        Glm4vVideoProcessor,
    )

    tokenizer = bpe_tokenizer(
        GLM_TOKENS,
        eos_token="<|user|>",  # as GLM-4.1V: a new user turn ends the answer
        pad_token="<|endoftext|>",
        image_token="<|image|>",
        video_token="<|video|>",
    )

    def token(name: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(name))

    config = Glm4vConfig(
        text_config={
            **_qwen_text(tokenizer),
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "partial_rotary_factor": 1.0,
            },
        },
        vision_config={
            "depth": 1,
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "image_size": 16,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
        },
        image_token_id=token("<|image|>"),
        video_token_id=token("<|video|>"),
        image_start_token_id=token("<|begin_of_image|>"),
        image_end_token_id=token("<|end_of_image|>"),
        video_start_token_id=token("<|begin_of_video|>"),
        video_end_token_id=token("<|end_of_video|>"),
    )
    model = Glm4vForConditionalGeneration(config)
    sizes: dict[str, Any] = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": 2}
    # GLM-4V counts an image's pixels twice (a two-frame temporal patch).
    size = {"shortest_edge": 2 * MIN_PIXELS, "longest_edge": 2 * MAX_PIXELS}
    processor = _make(
        Glm4vProcessor,
        image_processor=Glm4vImageProcessor(size=size, **sizes),
        tokenizer=tokenizer,
        video_processor=Glm4vVideoProcessor(size=size, **sizes),
        chat_template=chat_template("<|begin_of_image|><|image|><|end_of_image|>"),
    )
    _save(directory, model, processor)


# name -> (builder, the adapter class the registry must pick)
BUILDERS: dict[str, Callable[[Path], None]] = {
    "blip-captioning": blip_captioning,
    "blip-vqa": blip_vqa,
    "blip-2": blip2,
    "instructblip": instructblip,
    "llava-plain": llava_plain,
    "llava-chat": llava_chat,
    "llava-next": llava_next,
    "qwen2-vl": qwen2_vl,
    "qwen2.5-vl": qwen2_5_vl,
    "qwen3-vl": qwen3_vl,
    "internvl": internvl,
    "glm4v": glm4v,
}


def build_tiny_vlm(name: str, directory: Path) -> Path:
    """Write the tiny checkpoint ``name`` (a key of :data:`BUILDERS`) into ``directory``."""
    ensure_torchvision()
    import torch

    torch.manual_seed(SEED)
    directory.mkdir(parents=True, exist_ok=True)
    BUILDERS[name](directory)
    return directory

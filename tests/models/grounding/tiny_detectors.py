"""Tiny random-weight checkpoints of the grounding families: Grounding DINO, OWLv2, OWL-ViT,
Florence-2 and Kosmos-2.

Each is built from its transformers config with hidden sizes of 16-32, one or two layers and
small images, with a processor made offline, and saved with ``save_pretrained``: the files a real
checkpoint has, loadable through the registry's ``local:`` specs. Tokenizers:

- Grounding DINO: BERT WordPiece over a few words, laid out like BERT's vocabulary
  (``[CLS]`` 101, ``[SEP]`` 102, ``.`` 1012, ``?`` 1029), whose ids the model hard-codes;
- OWLv2: the real CLIP BPE tokenizer, rebuilt from open_clip's bundled vocabulary;
- OWL-ViT: a small byte-level BPE, start and end tokens last (OWL pools at the highest id);
- Florence-2 and Kosmos-2: small byte-level BPEs with their families' added tokens.

They give structure (shapes, batching, parsing, box geometry), not answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmrag.models.fixtures.shapes import COLOURS, KINDS
from mmrag.models.torch_setup import ensure_torchvision

HIDDEN = 32
WORDS = sorted({"a", "the", "an", "image", "of", "photo", *COLOURS, *KINDS})
CORPUS = [
    " ".join(WORDS),
    "the blue triangle. a red circle next to the green square",
    "What does the image describe? Describe in detail what is shown in the image.",
    "Locate the phrases in the caption: Locate in the image. What is the text in the image?",
    "An image of Describe this image in detail:",
]


def _make(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a transformers class whose constructor is not annotated (most processors)."""
    return factory(*args, **kwargs)


def _save(directory: Path, model: Any, processor: Any) -> None:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


# -- tokenizers -------------------------------------------------------------------------------


def _bpe_core(special_tokens: list[str], vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer trained on the corpus, ``special_tokens`` first (ids 0...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS, trainer)
    return core


def bart_like_tokenizer(**named: str) -> Any:
    """``<s> <pad> </s> <unk>`` as ids 0-3 (BART's and XLM-R's layout); ``named`` are further
    special tokens by attribute (``image_token="<image>"``)."""
    from transformers import PreTrainedTokenizerFast

    core = _bpe_core(["<s>", "<pad>", "</s>", "<unk>"])
    return _make(
        PreTrainedTokenizerFast,
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=named,
    )


def clip_bpe_tokenizer() -> Any:
    """The real CLIP tokenizer (49,408 tokens), from the BPE vocabulary open_clip ships."""
    ensure_torchvision()  # open_clip imports torchvision
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    bpe = SimpleTokenizer()
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(token, token): index for token, index in bpe.encoder.items()}
    # OWL's tokenizer pads with "!" (id 0): a query whose first id is 0 counts as padding.
    return _make(
        CLIPTokenizer, vocab=vocab, merges=list(bpe.bpe_ranks), pad_token="!", model_max_length=16
    )


def owl_bpe_tokenizer() -> Any:
    """A small BPE shaped like CLIP's for OWL: padding is id 0, the start and end tokens are the
    two highest ids (OWL's text model pools at the highest id of each query)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    core = _bpe_core(["!"], vocab_size=300)
    core.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    start, end = core.token_to_id("<|startoftext|>"), core.token_to_id("<|endoftext|>")
    core.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", start), ("<|endoftext|>", end)],
    )
    return _make(
        PreTrainedTokenizerFast,
        tokenizer_object=core,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="!",
        unk_token="<|endoftext|>",
    )


def bert_layout_tokenizer() -> Any:
    """WordPiece over the corpus's words and characters, special tokens at BERT's ids."""
    from transformers import BertTokenizer

    fixed = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
    fixed |= {1012: ".", 1029: "?"}
    text = " ".join(CORPUS).lower()
    characters = sorted({c for c in text if c.isalnum()} | {":", ","})
    words = sorted({word.strip("?:.,") for word in text.split()} - {""})
    tokens = [fixed.get(index, f"[unused{index}]") for index in range(max(fixed) + 1)]
    tokens += [*characters, *(f"##{c}" for c in characters), *words]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return _make(BertTokenizer, vocab=vocab)


# -- checkpoints ------------------------------------------------------------------------------


def grounding_dino(directory: Path) -> None:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    tokenizer = bert_layout_tokenizer()
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(tokenizer),
            "hidden_size": HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 2 * HIDDEN,
        },
        d_model=HIDDEN,
        encoder_layers=1,
        decoder_layers=2,  # the model needs at least two
        encoder_ffn_dim=2 * HIDDEN,
        decoder_ffn_dim=2 * HIDDEN,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=1,
        decoder_n_points=1,
        num_queries=16,
        max_text_len=32,
    )
    model = GroundingDinoForObjectDetection(config)
    # The Swin backbone needs inputs of 128 px or more.
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 160})
    _save(directory, model, _make(GroundingDinoProcessor, image_processor, tokenizer))


OWL_IMAGE_SIZE = 64
OWL_GRID = 4  # patches along each side


def _owl(directory: Path, family: str, tokenizer: Any) -> None:
    import torch
    import transformers

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": OWL_IMAGE_SIZE,
        "patch_size": OWL_IMAGE_SIZE // OWL_GRID,
    }
    config = getattr(transformers, f"{family}Config")(
        text_config=text, vision_config=vision, projection_dim=HIDDEN
    )
    model = getattr(transformers, f"{family}ForObjectDetection")(config)
    # Random box heads saturate to degenerate boxes. Silenced, every patch predicts the box its
    # built-in bias gives: a cell of a grid over the model's input, centred on the cell's
    # bottom-right corner, so tests know where boxes must land.
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    image_processor = getattr(transformers, f"{family}ImageProcessor")(
        size={"height": OWL_IMAGE_SIZE, "width": OWL_IMAGE_SIZE},
        crop_size={"height": OWL_IMAGE_SIZE, "width": OWL_IMAGE_SIZE},
    )
    processor = _make(getattr(transformers, f"{family}Processor"), image_processor, tokenizer)
    _save(directory, model, processor)


def owlv2(directory: Path) -> None:
    _owl(directory, "Owlv2", clip_bpe_tokenizer())


def owlvit(directory: Path) -> None:
    _owl(directory, "OwlViT", owl_bpe_tokenizer())


# Florence-2's vision tower reduces 64 px to a 2 x 2 grid: 4 tokens and a pooled one.
FLORENCE_IMAGE_TOKENS = 5
FLORENCE_EXTRA_TOKENS = ["<od>", "</od>", "<ocr>", "</ocr>", "<poly>", "</poly>", "<sep>"]
# The parsing rules a Florence-2 processor is saved with (the real checkpoints' set).
FLORENCE_PARSE_TASKS: dict[str, dict[str, Any]] = {
    "ocr": {"AREA_THRESHOLD": 0.0},
    "phrase_grounding": {"banned_grounding_tokens": []},
    "pure_text": {},
    "description_with_bboxes": {},
    "description_with_polygons": {},
    "polygons": {},
    "bboxes": {},
    "description_with_bboxes_or_polygons": {},
}


def florence2(directory: Path) -> None:
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tokenizer = bart_like_tokenizer(image_token="<image>")
    tokenizer.add_tokens([f"<loc_{index}>" for index in range(1000)] + FLORENCE_EXTRA_TOKENS)
    config = Florence2Config(
        vision_config={
            "depths": [1, 1, 1, 1],
            "embed_dim": [8, 16, 16, HIDDEN],
            "num_heads": [1, 1, 1, 1],
            "num_groups": [1, 1, 1, 1],
            "window_size": 2,
            "projection_dim": HIDDEN,
            "drop_path_rate": 0.0,
        },
        text_config={
            "model_type": "bart",
            "vocab_size": len(tokenizer),
            "d_model": HIDDEN,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 2 * HIDDEN,
            "decoder_ffn_dim": 2 * HIDDEN,
            "max_position_embeddings": 128,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
        },
        image_token_id=tokenizer.image_token_id,
    )
    model = Florence2ForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(
        size={"height": 64, "width": 64}, do_center_crop=False, image_seq_length=5
    )
    processor = _make(
        Florence2Processor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        post_processor_config=FLORENCE_PARSE_TASKS,
    )
    _save(directory, model, processor)


def kosmos2(directory: Path) -> None:
    from transformers import (
        CLIPImageProcessor,
        Kosmos2Config,
        Kosmos2ForConditionalGeneration,
        Kosmos2Processor,
    )

    # Centre-cropped, not squashed, so that boxes go through a crop on their way back.
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True
    )
    processor = _make(Kosmos2Processor, image_processor, bart_like_tokenizer())
    config = Kosmos2Config(
        text_config={
            "vocab_size": len(processor.tokenizer),
            "embed_dim": HIDDEN,
            "layers": 1,
            "ffn_dim": 2 * HIDDEN,
            "attention_heads": 2,
            "max_position_embeddings": 256,
        },
        vision_config={
            "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        latent_query_num=processor.num_image_tokens,
    )
    _save(directory, Kosmos2ForConditionalGeneration(config), processor)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "grounding-dino": grounding_dino,
    "owlv2": owlv2,
    "owlvit": owlvit,
    "florence2": florence2,
    "kosmos-2": kosmos2,
}


def build_tiny_detector(name: str, directory: Path) -> Path:
    """Write tiny checkpoint ``name`` (a key of :data:`BUILDERS`) into ``directory``."""
    ensure_torchvision()  # transformers' image processors import torchvision
    import torch

    torch.manual_seed(0)
    BUILDERS[name](directory)
    return directory

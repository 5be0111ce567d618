"""The open_clip embedder: structure on random weights (shapes, norms, batching, precision).

Random weights cannot say whether an embedding is *right*, but they compute exactly what real
ones do: batching, normalisation, preprocessing fidelity and int8 error all show on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image

from mmrag.errors import InvalidInput, ModelUnavailable
from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions, quantize_mlp_int8
from mmrag.models.clip.preprocess import (
    ImagePreprocess,
    fit_image,
    normalise_array,
    normalise_batch,
)
from mmrag.models.clip.tiny import write_open_clip_dir
from mmrag.models.cpu import usable_cores
from mmrag.models.registry import create_embedder
from mmrag.models.torch_setup import ensure_torchvision

DynamicInt8Linear = torch.ao.nn.quantized.dynamic.Linear

# A small ViT at the real input size (224 px, 32 px patches): cheap, but it sees real geometry.
SMALL_VIT_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 224,
        "layers": 2,
        "width": 128,
        "patch_size": 32,
        "head_width": 64,
    },
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}

Floats = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def small_vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_open_clip_dir(tmp_path_factory.mktemp("small-vit"), SMALL_VIT_CONFIG, seed=1)


@pytest.fixture(scope="module")
def small_vit(small_vit_dir: Path) -> ClipEmbedder:
    embedder = create_embedder(
        f"local:{small_vit_dir}", EmbedderOptions(device="cpu", batch_size=4)
    )
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Real photos (scikit-image ships them) plus odd shapes and modes."""
    import skimage.data

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1536, 2048, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(noise).resize((64, 48)).resize((2048, 1536), Image.Resampling.BICUBIC)
    )
    return [
        Image.fromarray(skimage.data.astronaut()),  # 512 x 512
        Image.fromarray(skimage.data.coffee()),  # 600 x 400, wide
        Image.fromarray(skimage.data.chelsea()),  # 451 x 300, odd width
        Image.fromarray(skimage.data.rocket()),  # 427 x 640, tall
        Image.fromarray(skimage.data.hubble_deep_field()),  # 1000 x 872
        Image.fromarray(skimage.data.camera()),  # greyscale ("L")
        Image.fromarray(smooth),  # camera-sized, exercises the reducing_gap shortcut
        Image.fromarray(noise[:150, :97]),  # smaller than the input: upscaled
    ]


def _unit(vectors: Floats) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


def _cosines(a: Floats, b: Floats) -> Floats:
    cosines: Floats = np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return cosines


# -- images ----------------------------------------------------------------------------------


def test_images_embed_to_unit_float32_rows(
    tiny_embedder: ClipEmbedder, photos: list[Image.Image]
) -> None:
    vectors = tiny_embedder.embed_images(photos)
    assert vectors.shape == (len(photos), tiny_embedder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert _unit(vectors)
    assert not np.allclose(vectors[0], vectors[1])  # different images, different vectors


def test_no_images_give_an_empty_matrix(tiny_embedder: ClipEmbedder) -> None:
    assert tiny_embedder.embed_images([]).shape == (0, tiny_embedder.dim)
    assert tiny_embedder.embed_prepared([]).dtype == np.float32


def test_an_image_alone_equals_the_same_image_in_a_batch(
    small_vit: ClipEmbedder, photos: list[Image.Image]
) -> None:
    # batch_size 4 and 8 photos: two forward batches, and each photo also on its own.
    together = small_vit.embed_images(photos)
    alone = np.concatenate([small_vit.embed_images([photo]) for photo in photos])
    assert np.allclose(together, alone, atol=1e-5)
    reordered = small_vit.embed_images(photos[::-1])[::-1]
    assert np.allclose(together, reordered, atol=1e-5)


def test_prepare_image_gives_the_input_size_for_any_shape_and_mode(
    tiny_embedder: ClipEmbedder,
) -> None:
    width, height = tiny_embedder.input_size
    for size in [(5, 3), (32, 32), (640, 480), (480, 640), (1000, 31)]:
        for mode in ["RGB", "RGBA", "L", "P", "1", "CMYK"]:
            prepared = tiny_embedder.prepare_image(Image.new(mode, size))
            assert prepared.shape == (height, width, 3)
            assert prepared.dtype == np.uint8


def test_wrongly_prepared_arrays_are_refused(tiny_embedder: ClipEmbedder) -> None:
    with pytest.raises(InvalidInput, match="expected uint8"):
        tiny_embedder.embed_prepared([np.zeros((31, 32, 3), np.uint8)])
    with pytest.raises(InvalidInput, match="expected uint8"):
        tiny_embedder.embed_prepared([np.zeros((32, 32, 3), np.float32)])


# -- fidelity to open_clip's own preprocessing -------------------------------------------------


def test_preprocessing_matches_open_clips_transform(
    small_vit: ClipEmbedder, small_vit_dir: Path, photos: list[Image.Image]
) -> None:
    ensure_torchvision()
    import open_clip

    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{small_vit_dir}")
    model.eval()
    reference_pixels = torch.stack([transform(photo) for photo in photos])
    prepared = small_vit.preprocess_images([small_vit.prepare_image(p) for p in photos])
    ours_pixels = normalise_batch(torch.from_numpy(prepared), small_vit.preprocess_cfg)
    # The runtimes that take numpy normalise with the same fp32 arithmetic, bit for bit.
    as_numpy = normalise_array(prepared, small_vit.preprocess_cfg)
    assert np.array_equal(as_numpy, ours_pixels.numpy())
    assert ours_pixels.shape == reference_pixels.shape
    # 1 grey level is 1/255/std ~ 0.015 here; the reducing_gap shortcut moves a few levels.
    assert (ours_pixels - reference_pixels).abs().mean() < 0.02
    with torch.inference_mode():
        reference = model.encode_image(reference_pixels).numpy()
    ours = small_vit.embed_images(photos)
    assert _cosines(ours, reference).min() > 0.99


@pytest.mark.parametrize(
    ("resize_mode", "size", "interpolation", "fill"),
    [
        ("shortest", 224, "bicubic", 0),
        ("shortest", (224, 160), "bicubic", 0),  # non-square: (height, width)
        ("squash", 224, "bilinear", 0),
        ("longest", 224, "bicubic", 0),
        ("longest", (200, 240), "bilinear", 128),
    ],
)
def test_geometry_is_pixel_exact_when_upscaling(
    resize_mode: str, size: int | tuple[int, int], interpolation: str, fill: int
) -> None:
    # Sizes, rounding and crop/pad offsets must agree to the pixel: on noise, a pixel off moves
    # values by dozens of grey levels. The filter runs on torch's kernels, which reproduce
    # Pillow's to within two grey levels (models/resample.py).
    ensure_torchvision()
    from open_clip.transform import image_transform

    cfg = {"size": size, "interpolation": interpolation, "resize_mode": resize_mode}
    ours_cfg = ImagePreprocess.from_open_clip({**cfg, "fill_color": fill})
    reference = image_transform(
        size,
        is_train=False,
        interpolation=interpolation,
        resize_mode=resize_mode,
        fill_color=fill,
    )
    rng = np.random.default_rng(3)
    for width, height in [(97, 150), (150, 97), (101, 101), (33, 181), (199, 198)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        pixels = torch.from_numpy(fit_image(image, ours_cfg)[None].copy())
        ours = normalise_batch(pixels, ours_cfg)[0]
        theirs = reference(image)
        assert ours.shape == theirs.shape, (width, height)
        grey_levels = (ours - theirs).abs() * 255 * torch.tensor(ours_cfg.std).view(3, 1, 1)
        assert grey_levels.max() < 2.01, (width, height)
        assert grey_levels.mean() < 0.02, (width, height)


def test_preprocess_config_refuses_unknown_modes() -> None:
    with pytest.raises(ValueError, match="resize_mode"):
        ImagePreprocess.from_open_clip({"resize_mode": "stretch"})
    with pytest.raises(ValueError, match="interpolation"):
        ImagePreprocess.from_open_clip({"interpolation": "lanczos"})


# -- texts -----------------------------------------------------------------------------------


def test_texts_embed_to_unit_float32_rows(tiny_embedder: ClipEmbedder) -> None:
    texts = [f"a photo of {n} red circles" for n in range(11)]  # more than one batch of 8
    vectors = tiny_embedder.embed_texts(texts)
    assert vectors.shape == (11, tiny_embedder.dim)
    assert vectors.dtype == np.float32
    assert _unit(vectors)
    alone = np.concatenate([tiny_embedder.embed_texts([text]) for text in texts])
    assert np.allclose(vectors, alone, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_long_texts_are_truncated_not_refused(tiny_embedder: ClipEmbedder) -> None:
    assert _unit(tiny_embedder.embed_texts(["circle " * 500]))


@pytest.mark.parametrize("texts", [[""], ["   "], ["a cat", "\n\t"]])
def test_empty_texts_are_invalid(tiny_embedder: ClipEmbedder, texts: list[str]) -> None:
    with pytest.raises(InvalidInput, match="empty text"):
        tiny_embedder.embed_texts(texts)


def test_a_bare_string_is_invalid(tiny_embedder: ClipEmbedder) -> None:
    with pytest.raises(InvalidInput, match="list of texts"):
        tiny_embedder.embed_texts("a cat")


def test_no_texts_give_an_empty_matrix(tiny_embedder: ClipEmbedder) -> None:
    assert tiny_embedder.embed_texts([]).shape == (0, tiny_embedder.dim)


def test_batch_size_must_be_positive(tiny_clip_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="batch_size"):
        create_embedder(f"local:{tiny_clip_dir}", EmbedderOptions(device="cpu", batch_size=0))


# -- precision and int8 ------------------------------------------------------------------------


def test_int8_builds_and_stays_close_to_fp32(
    small_vit: ClipEmbedder, small_vit_dir: Path, photos: list[Image.Image]
) -> None:
    options = EmbedderOptions(device="cpu", batch_size=4, precision="int8")
    int8 = create_embedder(f"local:{small_vit_dir}", options)
    int8.load()
    assert (int8.serving.backend, int8.serving.precision) == ("torch", "int8")
    visual = list(int8._model.visual.modules())
    assert any(isinstance(m, DynamicInt8Linear) for m in visual)  # the image tower's MLPs
    attention = [m for m in visual if isinstance(m, torch.nn.MultiheadAttention)]
    assert attention
    assert all(type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear" for m in attention)
    text = list(int8._model.transformer.modules())
    assert not any(isinstance(m, DynamicInt8Linear) for m in text)  # the text tower stays fp32
    vectors = int8.embed_images(photos)
    assert vectors.dtype == np.float32
    assert _unit(vectors)
    assert _cosines(vectors, small_vit.embed_images(photos)).min() > 0.95
    texts = ["a green square"]
    assert np.allclose(int8.embed_texts(texts), small_vit.embed_texts(texts), atol=1e-6)


def test_int8_on_vit_b_32_quantizes_every_image_mlp() -> None:
    ensure_torchvision()
    import open_clip

    model = quantize_mlp_int8(open_clip.create_model("ViT-B-32", load_weights=False).eval())
    blocks = model.visual.transformer.resblocks
    assert len(blocks) == 12
    for block in blocks:
        assert isinstance(block.mlp.c_fc, DynamicInt8Linear)
        assert isinstance(block.mlp.c_proj, DynamicInt8Linear)
        assert block.mlp.c_fc.weight().dtype == torch.qint8  # type: ignore[no-untyped-call]
    with torch.inference_mode():
        assert model.encode_image(torch.randn(1, 3, 224, 224)).shape == (1, 512)


def test_fp16_path_gives_float32_unit_vectors_close_to_fp32(
    small_vit: ClipEmbedder, small_vit_dir: Path, photos: list[Image.Image]
) -> None:
    # The precision used on CUDA, run on CPU: same open_clip mixed-precision model.
    options = EmbedderOptions(device="cpu", precision="fp16")
    fp16 = create_embedder(f"local:{small_vit_dir}", options)
    fp16.load()
    assert (fp16.serving.backend, fp16.serving.precision) == ("torch", "fp16")
    weight_types = {p.dtype for p in fp16._model.parameters()}
    assert torch.float16 in weight_types
    vectors = fp16.embed_images(photos[:3])
    assert vectors.dtype == np.float32
    assert _unit(vectors)
    assert _cosines(vectors, small_vit.embed_images(photos[:3])).min() > 0.99


def test_auto_precision_is_fp32_on_cpu(tiny_embedder: ClipEmbedder) -> None:
    assert tiny_embedder.serving.precision == "fp32"
    assert {p.dtype for p in tiny_embedder._model.parameters()} == {torch.float32}


def test_cuda_without_a_gpu_is_unavailable(tiny_clip_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    embedder = create_embedder(f"local:{tiny_clip_dir}", EmbedderOptions(device="cuda"))
    with pytest.raises(ModelUnavailable, match="CUDA"):
        embedder.load()


# -- threads ---------------------------------------------------------------------------------


@pytest.fixture
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("restore_threads")
def test_cpu_threads_default_to_usable_cores(tiny_clip_dir: Path) -> None:
    embedder = create_embedder(f"local:{tiny_clip_dir}", EmbedderOptions(device="cpu"))
    embedder.load()
    assert embedder.threads == usable_cores() == torch.get_num_threads()


@pytest.mark.usefixtures("restore_threads")
def test_cpu_threads_can_be_pinned(tiny_clip_dir: Path) -> None:
    embedder = create_embedder(
        f"local:{tiny_clip_dir}", EmbedderOptions(device="cpu", cpu_threads=1)
    )
    embedder.load()
    assert embedder.threads == 1 == torch.get_num_threads()

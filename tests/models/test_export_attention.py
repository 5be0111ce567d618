"""The export-only layers compute what the originals compute, are put back after the export,
and leave the exported image tower without the copies they exist to remove."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from mmrag.models.clip.embedder import ClipEmbedder
from mmrag.models.clip.export_attention import (
    ExportPatchEmbedding,
    ExportSelfAttention,
    export_friendly,
)
from mmrag.models.clip.onnx_export import export_fp32


def _attention(batch_first: bool) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(32, 4, batch_first=batch_first)
    with torch.no_grad():  # a bias that is not zero, so a wrongly scaled bias shows
        attention.in_proj_bias.uniform_(-0.5, 0.5)
    return attention.eval()


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", ["none", "additive", "bool"])
def test_self_attention_matches_multihead_attention(batch_first: bool, mask: str) -> None:
    original = _attention(batch_first)
    rewritten = ExportSelfAttention(original)
    x = torch.randn(3, 7, 32) if batch_first else torch.randn(7, 3, 32)
    attn_mask = None
    if mask == "additive":  # a causal mask as open_clip's text tower builds it
        attn_mask = torch.full((7, 7), float("-inf")).triu(1)
    elif mask == "bool":
        attn_mask = torch.ones(7, 7, dtype=torch.bool).triu(1)
    with torch.no_grad():
        expected = original(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
        got = rewritten(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_cross_attention_and_padding_masks_use_the_original() -> None:
    original = _attention(True)
    rewritten = ExportSelfAttention(original)
    query, memory = torch.randn(2, 3, 32), torch.randn(2, 5, 32)
    padding = torch.tensor([[False] * 4 + [True]] * 2)
    with torch.no_grad():
        torch.testing.assert_close(
            rewritten(query, memory, memory, need_weights=False)[0],
            original(query, memory, memory, need_weights=False)[0],
        )
        torch.testing.assert_close(
            rewritten(memory, memory, memory, key_padding_mask=padding, need_weights=False)[0],
            original(memory, memory, memory, key_padding_mask=padding, need_weights=False)[0],
        )


def test_patch_embedding_matches_the_convolution() -> None:
    torch.manual_seed(0)
    for bias in (False, True):
        conv = nn.Conv2d(3, 16, kernel_size=8, stride=8, bias=bias)
        pixels = torch.randn(2, 3, 32, 24)
        with torch.no_grad():
            torch.testing.assert_close(ExportPatchEmbedding(conv)(pixels), conv(pixels))


def test_the_model_gets_its_own_layers_back(tiny_embedder: ClipEmbedder) -> None:
    model = tiny_embedder._model
    before = [type(module) for module in model.modules()]
    seen: set[type] = set()

    def export_that_fails_half_way() -> None:
        with export_friendly(model):
            seen.update(type(module) for module in model.modules())
            raise RuntimeError("the exporter failed")

    with pytest.raises(RuntimeError):
        export_that_fails_half_way()
    assert ExportSelfAttention in seen
    assert ExportPatchEmbedding in seen
    assert [type(module) for module in model.modules()] == before


def test_the_exported_image_tower_has_no_convolution_and_fewer_copies(
    tiny_embedder: ClipEmbedder, tmp_path: Path
) -> None:
    export_fp32(tiny_embedder._model, (32, 32), tmp_path)
    nodes = onnx.load(str(tmp_path / "image.onnx")).graph.node
    shapes = {node.output[0] for node in nodes if node.op_type == "Shape"}
    attention = [node for node in nodes if "/attn/" in node.name]  # the tiny model: 1 layer
    # As traced from nn.MultiheadAttention: 8 Transposes and Gathers that pick q, k and v
    # out of one transposed copy of the projection; here 3 head transposes and 1 back, and
    # three projections of the same input rather than one whose output is sliced apart.
    kinds = [node.op_type for node in attention]
    assert kinds.count("Transpose") == 4
    assert kinds.count("MatMul") == 3 + 2 + 1  # q, k, v; the attention itself; out_proj
    assert "Slice" not in kinds
    assert "Split" not in kinds
    assert not [n for n in attention if n.op_type == "Gather" and n.input[0] not in shapes]
    assert "Conv" not in {node.op_type for node in nodes}

"""Self-attention written for the ONNX exporter: the same arithmetic as
``torch.nn.MultiheadAttention``, in a layout that exports to fewer copies.

Traced as it is, ``nn.MultiheadAttention`` exports its sequence-first internals: the packed
QKV projection is unflattened, transposed whole and gathered apart, and every head is moved
between layouts twice; ONNX Runtime then spends about a fifth of a ViT-B-32's int8 forward pass
in ``Transpose`` and ``Gather``. Here the packed weights are cut into three projections (one
int8 quantisation of the input serves all three, where one packed projection needs its output
sliced apart: 4 % of the forward pass), the 1/sqrt(d) scale is folded into the query weights
(no multiply at run time), and the key is laid out ``d x L`` directly, so each layer exports
with three head transposes and one back.

Swapped in only while the towers export (:func:`export_friendly`) and put back after: the
serving torch model and the weights that key the export cache are untouched. The parity check
at load compares the exported towers with torch fp32 as always.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeGuard

import torch
from torch import nn


class ExportSelfAttention(nn.Module):
    """``nn.MultiheadAttention(q, q, q, need_weights=False, attn_mask=...)`` for packed
    projections; anything else (cross-attention, padding masks) goes to the original."""

    def __init__(self, original: nn.MultiheadAttention) -> None:
        super().__init__()
        self.original = original
        self.heads = original.num_heads
        self.batch_first = original.batch_first
        embed = original.embed_dim
        self.packed = original.in_proj_weight is not None and original.in_proj_bias is not None
        if self.packed:
            scale = 1.0 / math.sqrt(embed // self.heads)
            weights = original.in_proj_weight.detach().chunk(3)
            biases = original.in_proj_bias.detach().chunk(3)
            self.query = _frozen_linear(weights[0] * scale, biases[0] * scale)
            self.key = _frozen_linear(weights[1], biases[1])
            self.value = _frozen_linear(weights[2], biases[2])

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        if (
            not self.packed
            or query is not key
            or key is not value
            or key_padding_mask is not None
            or need_weights
            or kwargs
        ):
            output, _ = self.original(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                need_weights=need_weights,
                attn_mask=attn_mask,
                **kwargs,
            )
            return output, None
        x = query if self.batch_first else query.transpose(0, 1)
        batch, length, embed = x.shape
        head = embed // self.heads
        split = (batch, length, self.heads, head)
        q = self.query(x).reshape(split).transpose(1, 2)  # B H L d
        k = self.key(x).reshape(split).permute(0, 2, 3, 1)  # B H d L
        v = self.value(x).reshape(split).transpose(1, 2)  # B H L d
        scores = torch.matmul(q, k)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        mixed = torch.matmul(scores.softmax(dim=-1), v)  # B H L d
        mixed = mixed.transpose(1, 2).reshape(batch, length, embed)
        output = self.original.out_proj(mixed)
        return (output if self.batch_first else output.transpose(0, 1)), None


def _frozen_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    # on the meta device: no memory, no random initialisation for weights replaced at once
    linear = nn.Linear(weight.shape[1], weight.shape[0], device="meta", dtype=weight.dtype)
    linear.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    linear.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
    return linear


class ExportPatchEmbedding(nn.Module):
    """A ViT's patch embedding (a convolution whose stride is its kernel) as one matrix
    multiply over the unfolded patches: ONNX Runtime quantises a MatMul, not a Conv, and its
    fp32 Conv ran a ViT-B-32's 32 x 32 patches at a quarter of the GEMM's speed."""

    def __init__(self, original: nn.Conv2d) -> None:
        super().__init__()
        self.original = original
        kernel = original.kernel_size
        self.patch = (int(kernel[0]), int(kernel[1]))
        self.weight = nn.Parameter(
            original.weight.detach().reshape(original.out_channels, -1).t().contiguous(),
            requires_grad=False,
        )
        self.bias = original.bias

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = pixels.shape
        ph, pw = self.patch
        if height % ph or width % pw:
            convolved: torch.Tensor = self.original(pixels)
            return convolved
        rows, cols = height // ph, width // pw
        patches = pixels.reshape(batch, channels, rows, ph, cols, pw).permute(0, 2, 4, 1, 3, 5)
        embedded = torch.matmul(patches.reshape(batch, rows * cols, -1), self.weight)
        if self.bias is not None:
            embedded = embedded + self.bias
        # back to the convolution's layout, which the model's own code flattens again
        return embedded.transpose(1, 2).reshape(batch, -1, rows, cols)


def _is_patch_embedding(module: nn.Module) -> TypeGuard[nn.Conv2d]:
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == module.stride
        and module.padding in ((0, 0), 0, "valid")
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


@contextmanager
def export_friendly(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with its self-attention layers swapped for :class:`ExportSelfAttention` and
    its patch embeddings for :class:`ExportPatchEmbedding`, put back on leaving. Swapped in
    place rather than on a copy: a copy of a billion-parameter model would double the
    memory that an export needs."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.MultiheadAttention):
                    replacement: nn.Module = ExportSelfAttention(child)
                elif _is_patch_embedding(child):
                    replacement = ExportPatchEmbedding(child)
                else:
                    continue
                setattr(module, name, replacement)
                swapped.append((module, name, child))
        yield model
    finally:
        for module, name, child in reversed(swapped):
            setattr(module, name, child)

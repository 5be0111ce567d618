"""The CLIP towers as ONNX files, exported once per weights and cached on disk.

An entry is a directory ``<root>/clip-<key>/`` holding ``image.onnx``, ``text.onnx`` and
``manifest.json``. The key hashes the weights themselves (every tensor's bytes and the module
structure, so a local directory, a hub checkpoint and random benchmark weights are all keyed
alike, and an activation change such as QuickGELU changes the key), the precision and the
versions of the libraries that wrote the files.

Written atomically: the export goes to a private staging directory beside the entry, the
manifest (size and SHA-256 of each file) is written last, and the directory is renamed into
place. A killed export leaves only a staging directory, removed by the next export; an entry
whose files do not match its manifest (truncated, edited, half-copied) is rebuilt, not loaded.
One export at a time per root (a file lock), so two processes starting together export once.

int8 is ONNX Runtime's *dynamic* quantisation of the MatMul/Gemm weights (per output
channel); activations are quantised per batch at run time. Calibrated (static) int8 would
also quantise activations ahead of time, but needs representative images of the user's
collection that we do not have at load, and it fixes activation ranges that a new kind of
photo can exceed. Dynamic int8 needs no data, and the parity check at load measures what it
costs on the weights actually served.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

from mmrag.errors import ModelUnavailable
from mmrag.models.file_lock import exclusive_lock

log = logging.getLogger(__name__)

OnnxPrecision = Literal["fp32", "int8"]
MANIFEST = "manifest.json"
TOWERS = ("image.onnx", "text.onnx")
EXPORT_LIBRARIES = ("torch", "open-clip-torch", "onnx", "onnxruntime")
OPSET = 17
# What the exporter writes for the same weights: 2 = attention and patch embedding rewritten
# for export (export_attention.py), 3 = with q, k and v as three projections. A change here
# makes every cached entry stale.
GRAPH_LAYOUT = 3


def default_export_dir() -> Path:
    return Path.home() / ".cache" / "mmrag" / "exports"


def weights_digest(model: Any) -> str:
    """SHA-256 of the model's module structure and every tensor of its state (names, shapes,
    dtypes, bytes). Hashes in place: no tensor is copied."""
    import torch

    digest = hashlib.sha256(repr(model).encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().contiguous().cpu().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat.view(torch.uint8).numpy().data)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in EXPORT_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def entry_key(weights: str, precision: OnnxPrecision, variant: str = "") -> str:
    payload = {
        "weights": weights,
        "precision": precision,
        "variant": variant,
        "opset": OPSET,
        "layout": GRAPH_LAYOUT,
        "libraries": library_versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def exported_towers(
    model: Any,
    image_size: tuple[int, int],
    precision: OnnxPrecision,
    root: Path,
    *,
    reduce_range: bool = False,
    weights: str | None = None,
) -> Path:
    """The cache entry holding ``model``'s towers in ``precision``, exported if missing or
    damaged. ``image_size`` is (height, width) of the image input; ``reduce_range`` (int8
    only) quantises weights to 7 bits, for CPUs without VNNI whose u8s8 kernels can saturate.
    Raises :class:`ModelUnavailable` when the root cannot be written."""
    weights = weights or weights_digest(model)
    variant = "reduce_range" if precision == "int8" and reduce_range else ""
    target = root / f"clip-{entry_key(weights, precision, variant)}"
    if intact(target) is None:
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(root / ".export.lock"):
            problem = intact(target)
            if problem is None:
                return target
            if target.exists():
                log.warning("ONNX export %s is damaged (%s): exporting it again", target, problem)
            _remove_abandoned(root)
            _build(model, image_size, precision, reduce_range, root, target, weights)
    except PermissionError as error:
        raise ModelUnavailable(f"cannot write ONNX exports under {root}: {error}") from error
    return target


def intact(directory: Path) -> str | None:
    """Why the entry cannot be used, or None: the manifest must name exactly the files there,
    each with its size and SHA-256."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files: dict[str, dict[str, Any]] = manifest["files"]
    except FileNotFoundError:
        return "not exported" if not directory.exists() else "its export never finished"
    except (OSError, ValueError, KeyError, TypeError):
        return "its manifest is unreadable"
    present = {path.name for path in directory.iterdir() if path.name != MANIFEST}
    if present != set(files):
        return "its files differ from the manifest"
    for name, expected in files.items():
        if file_digest(directory / name) != (expected.get("size"), expected.get("sha256")):
            return f"{name} changed since it was written"
    return None


def file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


def _build(
    model: Any,
    image_size: tuple[int, int],
    precision: OnnxPrecision,
    reduce_range: bool,
    root: Path,
    target: Path,
    weights: str,
) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".clip-", dir=root))
    try:
        log.info("exporting the CLIP towers to ONNX (%s) into %s", precision, target)
        export_fp32(model, image_size, staging)
        if precision == "int8":
            for name in TOWERS:
                quantize_int8(staging / name, staging / f"{name}.int8", reduce_range)
                (staging / f"{name}.int8").replace(staging / name)
        manifest = {
            "weights": weights,
            "precision": precision,
            "reduce_range": reduce_range,
            "libraries": library_versions(),
            "files": {
                path.name: dict(zip(("size", "sha256"), file_digest(path), strict=True))
                for path in sorted(staging.iterdir())
            },
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        staging.chmod(0o755)
        if target.exists():  # damaged, or it would have been used
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_fp32(model: Any, image_size: tuple[int, int], directory: Path) -> None:
    """``image.onnx`` (float pixels N x 3 x H x W -> features) and ``text.onnx`` (int64 tokens
    N x context -> features), batch dimension dynamic, with torch's TorchScript exporter: it
    traces the eager model and needs nothing beyond torch and onnx, where the dynamo exporter
    pulls in onnxscript. Attention and patch embeddings export in the layout of
    :mod:`mmrag.models.clip.export_attention` (fewer copies; the patch embedding quantisable)."""
    import torch

    from mmrag.models.clip.export_attention import export_friendly

    context = int(getattr(model, "context_length", 77))
    height, width = image_size
    towers = {
        "image.onnx": (_tower(model, "encode_image"), torch.zeros(2, 3, height, width), "pixels"),
        "text.onnx": (
            _tower(model, "encode_text"),
            torch.ones(2, context, dtype=torch.long),
            "tokens",
        ),
    }
    # Grad enabled on purpose: without it nn.MultiheadAttention (where it is kept: cross-
    # attention) takes its fused inference path, an operator the exporter cannot write.
    with (
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.enable_grad(),
        export_friendly(model),
    ):
        # The tracer warns about every Python-level shape branch open_clip takes; the shapes
        # are fixed per model, and parity at load checks the result anyway.
        warnings.simplefilter("ignore")
        for name, (tower, example, input_name) in towers.items():
            torch.onnx.export(
                tower,
                (example,),
                str(directory / name),
                dynamo=False,
                opset_version=OPSET,
                input_names=[input_name],
                output_names=["features"],
                dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
            )


def quantize_int8(source: Path, target: Path, reduce_range: bool) -> None:
    """Dynamic int8 of the MatMul/Gemm weights, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs, on the root logger, a tip to run its shape-inference pre-pass first; that pass
    # is for static quantisation's calibration, not needed here.
    tip = _DropMessage("consider to run pre-processing before quantization")
    logging.getLogger().addFilter(tip)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().removeFilter(tip)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _tower(model: Any, method: str) -> Any:
    """One tower as a module whose forward is ``model.<method>``: the exporter traces modules,
    and the model as a submodule makes its weights the graph's initialisers."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: Any) -> Any:
            return getattr(self.model, method)(inputs)

    return Tower()


def _remove_abandoned(root: Path) -> None:
    """Staging directories of exports that were killed (this process holds the lock)."""
    for staging in root.glob(".clip-*"):
        if staging.is_dir():
            log.info("removing the abandoned export %s", staging)
            shutil.rmtree(staging, ignore_errors=True)

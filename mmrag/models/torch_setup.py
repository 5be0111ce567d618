"""Make torchvision importable on a CPU-only torch.

The only torchvision built for torch 2.13 is linked against CUDA. On the CPU build of torch its
compiled operators never register, and ``import torchvision`` dies on
``operator torchvision::nms does not exist`` (and with it open_clip, timm and most transformers
image processors). Defining the two operator schemas it registers fake kernels for, with a
plain-torch CPU kernel, is enough for it to import.

Whether that is needed cannot be asked of the dispatcher: torchvision's operators register only
when its ``_C`` library is loaded, which ``import torchvision`` does. So
:func:`ensure_torchvision` loads that library itself first. Where it loads (a torch it was built
for, e.g. CUDA on a GPU machine) torchvision's own operators are in place and nothing is
defined; defining ours there would make the library's registration of ``torchvision::nms`` a
duplicate, which PyTorch refuses. Only where the load fails (``OSError``: here, it needs
``libc10_cuda.so``, which the CPU torch does not ship) are the CPU fallbacks defined.

Call :func:`ensure_torchvision` before anything imports torchvision.

:func:`configure_cpu_threads` sizes torch's intra-op pool to the cores we may really use.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from mmrag.models.cpu import usable_cores

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False


def _operator_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, highest score first."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    x1, y1, x2, y2 = boxes.float().unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep: list[int] = []
    for index in order.tolist():
        if suppressed[index]:
            continue
        keep.append(index)
        width = (torch.minimum(x2[index], x2) - torch.maximum(x1[index], x1)).clamp(min=0)
        height = (torch.minimum(y2[index], y2) - torch.maximum(y1[index], y1)).clamp(min=0)
        inter = width * height
        iou = inter / (areas[index] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def torchvision_extension() -> Path | None:
    """torchvision's compiled operator library (``_C*.so``), found without importing it."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        found = sorted(Path(location).glob("_C*.so"))
        if found:
            return found[0]
    return None


def _load_library(path: Path) -> None:
    torch.ops.load_library(str(path))  # type: ignore[no-untyped-call]


def ensure_torchvision(load_library: Callable[[Path], None] | None = None) -> None:
    """Make ``import torchvision`` work: its own operators where they load, else CPU fallbacks.

    Loads torchvision's ``_C`` library (``load_library``, for tests; default
    ``torch.ops.load_library``). If it loads, its operators are registered and nothing is
    defined. If it fails with ``OSError`` (or torchvision ships none), ``torchvision::nms`` and
    ``torchvision::qnms`` are defined with :func:`nms_reference` as their CPU kernel. Without
    torchvision installed there is nothing to do. Idempotent and thread-safe.
    """
    global _done
    with _lock:
        if _done:
            return
        if importlib.util.find_spec("torchvision") is None:
            log.debug("torchvision is not installed; nothing to set up")
        else:
            path = torchvision_extension()
            if path is not None and _loads(path, load_library or _load_library):
                log.debug("torchvision's own operators loaded from %s", path)
            else:
                _define_fallbacks()
        _done = True


def _loads(path: Path, load_library: Callable[[Path], None]) -> bool:
    try:
        load_library(path)
    except OSError as error:
        # dlopen fails before the library's static initialisers run: nothing was registered.
        log.debug("torchvision's operators do not load here (%s)", _first_line(error))
        return False
    return True


def _define_fallbacks() -> None:
    # Only the missing ones: torchvision may have been set up in this process another way.
    missing = [name for name in ("nms", "qnms") if not _operator_exists(name)]
    if not missing:
        return
    # Kept alive for the process: dropping a Library object unregisters its operators.
    # torch.library's Library methods are not annotated, hence the ignores.
    library = torch.library.Library("torchvision", "FRAGMENT")  # type: ignore[no-untyped-call]
    for name in missing:
        schema = f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
        library.define(schema)  # type: ignore[no-untyped-call]
        library.impl(name, nms_reference, "CPU")  # type: ignore[no-untyped-call]
    _LIBRARIES.append(library)
    log.debug("defined CPU fallbacks for torchvision::%s", ", torchvision::".join(missing))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


_LIBRARIES: list[torch.library.Library] = []


def configure_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op thread count; ``0`` means one per usable core. Returns the count.

    One thread per usable core (affinity mask and cgroup quota, see :mod:`mmrag.models.cpu`),
    not per host core: torch's OpenMP threads spin at barriers, so a pool larger than the cores we
    get makes GEMM-bound work slower, not just no faster. The setting is process-wide; every
    model in the process shares the pool. Where several worker processes share a machine, give
    each ``cores / processes`` threads (``MMRAG_MODELS__CPU_THREADS``).

    On a machine shared with other busy processes, GNU OpenMP's default spin-waiting makes a
    2-thread pool collapse (bench/embed_throughput.py: ViT-B-32 fell to a third, batch-1 loops
    to a tenth); ``OMP_WAIT_POLICY=PASSIVE`` in the environment of the process, set before
    torch is imported, keeps it near the 1-thread rate at no cost on a quiet machine.
    """
    threads = requested if requested > 0 else usable_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info("torch uses %d CPU threads", threads)
    return threads

"""torchvision on a CPU-only torch, the CPU NMS fallback, and CPU thread sizing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mmrag.models import cpu
from mmrag.models.torch_setup import configure_cpu_threads, ensure_torchvision, nms_reference


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: torchvision's import state is per process."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_torchvision_and_open_clip_import_after_ensure_torchvision() -> None:
    result = _python(
        "from mmrag.models.torch_setup import ensure_torchvision\n"
        "ensure_torchvision()\n"
        "ensure_torchvision()  # idempotent\n"
        "import torch, torchvision, open_clip\n"
        "boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])\n"
        "scores = torch.tensor([0.9, 0.8, 0.7])\n"
        # torchvision.ops' Python wrappers refuse without its C++ extension; the operator works.
        "print(torch.ops.torchvision.nms(boxes, scores, 0.5).tolist())\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[0, 2]"


# Loads torchvision's compiled operators the way its own import does; written out here rather
# than taken from torch_setup, so that the skip below does not depend on the code under test.
_LOAD_EXTENSION = (
    "import glob, importlib.util, os, torch\n"
    "root = importlib.util.find_spec('torchvision').submodule_search_locations[0]\n"
    "torch.ops.load_library(glob.glob(os.path.join(root, '_C*.so'))[0])\n"
)


def test_plain_import_fails_where_the_fallback_is_needed() -> None:
    # Shows the test above tests something: on this CPU torch, torchvision alone does not import.
    if _python(_LOAD_EXTENSION).returncode == 0:
        pytest.skip("torchvision's own operators load here (a torch it was built for)")
    result = _python("import torchvision")
    assert result.returncode != 0
    assert "torchvision::nms" in result.stderr


# Calls ensure_torchvision with a stand-in for torch.ops.load_library, then reports what it
# tried to load and which torchvision operators exist (none are registered by the stand-in).
_WITH_LOADER = """
import json, sys, torch
from mmrag.models import torch_setup
tried = []
def load_library(path):
    tried.append(path.name)
{body}
torch_setup.ensure_torchvision(load_library)
print(json.dumps({{
    "tried": tried,
    "operators": sorted(n for n in torch._C._dispatch_get_all_op_names() if "torchvision" in n),
    "torchvision_imported": "torchvision" in sys.modules,
}}))
"""


def _ensure_with_loader(body: str) -> dict[str, Any]:
    result = _python(_WITH_LOADER.format(body=body))
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_nothing_is_defined_where_torchvision_extension_loads() -> None:
    # A torch torchvision was built for (CUDA): its library registers nms itself, and a fallback
    # defined first would make that registration a duplicate, which breaks `import torchvision`.
    report = _ensure_with_loader("    pass  # loads")
    assert len(report["tried"]) == 1
    assert report["tried"][0].startswith("_C")
    assert report["operators"] == []
    assert not report["torchvision_imported"]  # found, not imported


def test_fallbacks_are_defined_where_torchvision_extension_fails_to_load() -> None:
    report = _ensure_with_loader("    raise OSError('libc10_cuda.so: cannot open shared object')")
    assert report["tried"]
    assert report["operators"] == ["torchvision::nms", "torchvision::qnms"]


def test_other_load_errors_are_not_taken_for_a_cpu_torch() -> None:
    result = _python(_WITH_LOADER.format(body="    raise RuntimeError('registered twice')"))
    assert result.returncode != 0
    assert "RuntimeError: registered twice" in result.stderr


def _brute_force_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy NMS from its definition, with a pairwise IoU in plain Python."""

    def iou(a: list[float], b: list[float]) -> float:
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    listed = boxes.tolist()
    kept: list[int] = []
    for index in sorted(range(len(listed)), key=lambda i: -float(scores[i])):
        if all(iou(listed[index], listed[other]) <= threshold for other in kept):
            kept.append(index)
    return kept


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_reference_matches_brute_force_on_random_boxes(seed: int, threshold: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    # Crowded: 60 boxes of 10-40 px in a 70 px square, so every threshold suppresses some.
    corners = torch.rand(60, 2, generator=generator) * 30
    sizes = torch.rand(60, 2, generator=generator) * 30 + 10
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(60, generator=generator)
    kept = nms_reference(boxes, scores, threshold)
    assert kept.dtype == torch.long
    assert kept.tolist() == _brute_force_nms(boxes, scores, threshold)
    assert 0 < len(kept) < 60  # overlapping boxes: some go, some stay


def test_nms_reference_edge_cases() -> None:
    empty = nms_reference(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.shape == (0,)
    assert empty.dtype == torch.long
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])
    scores = torch.tensor([0.5, 0.9, 0.1])
    # Identical boxes: the higher score wins. IoU exactly 0.5 is kept (suppression is "> t").
    assert nms_reference(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms_reference(boxes, scores, 0.49).tolist() == [1]


def test_registered_operator_runs_the_reference() -> None:
    ensure_torchvision()
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.2, 0.9, 0.5])
    result = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert result.tolist() == nms_reference(boxes, scores, 0.5).tolist() == [1, 2]


# -- CPU threads ------------------------------------------------------------------------------


@pytest.fixture
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("restore_threads")
def test_configure_cpu_threads_sets_the_requested_count() -> None:
    assert configure_cpu_threads(1) == 1
    assert torch.get_num_threads() == 1


@pytest.mark.usefixtures("restore_threads")
def test_configure_cpu_threads_defaults_to_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mmrag.models.torch_setup.usable_cores", lambda: 1)
    torch.set_num_threads(2)
    assert configure_cpu_threads() == 1
    assert torch.get_num_threads() == 1


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.mark.usefixtures("eight_cores")
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, 8),  # no cgroup files: the affinity mask decides
        ({"cpu.max": "max 100000"}, 8),
        ({"cpu.max": "150000 100000"}, 2),  # 1.5 cores of time: round up
        ({"cpu.max": "50000 100000"}, 1),
        ({"cpu.max": "1600000 100000"}, 8),  # a quota above the mask changes nothing
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 8),
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 3),
    ],
)
def test_usable_cores_honours_affinity_and_cgroup_quota(
    tmp_path: Path, files: dict[str, str], expected: int
) -> None:
    for name, text in files.items():
        _write(tmp_path / name, text)
    assert cpu.usable_cores(tmp_path) == expected


def test_usable_cores_on_this_machine_is_within_affinity() -> None:
    assert 1 <= cpu.usable_cores() <= len(os.sched_getaffinity(0))

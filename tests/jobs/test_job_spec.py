"""Job specs: what is refused at submit time, with messages that say why."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mmrag.workers.jobs.spec import JobSpec

URLS = {"kind": "urls", "urls": ["https://example.org/a.png"]}


def refusal(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate(body)
    return str(caught.value)


def test_a_full_spec_validates() -> None:
    spec = JobSpec.model_validate(
        {
            "source": {"kind": "indexed", "filter": {"labels": {"any": ["cat"]}}},
            "tasks": [
                {"task": "embed"},
                {"task": "caption", "detail": "detailed"},
                {"task": "detect", "labels": [" person ", "car"]},
                {"task": "ground", "phrases": ["the red car"]},
                {"task": "vqa", "questions": ["how many people?"]},
            ],
            "options": {"batch_size": 8, "priority": 9, "models": {"vlm": "fixture:shapes-vlm"}},
        }
    )
    assert spec.task_names() == ["embed", "caption", "detect", "ground", "vqa"]
    assert spec.tasks[2].labels == ["person", "car"]  # type: ignore[union-attr]


def test_unknown_task_names_the_choices() -> None:
    message = refusal({"source": URLS, "tasks": [{"task": "segment"}]})
    assert "segment" in message
    assert "'caption'" in message


def test_a_ten_thousand_label_vocabulary_is_refused() -> None:
    labels = [f"label {i}" for i in range(10_000)]
    message = refusal({"source": URLS, "tasks": [{"task": "detect", "labels": labels}]})
    assert "at most 64" in message


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"source": {"kind": "urls", "urls": []}, "tasks": [{"task": "caption"}]}, "at least 1"),
        ({"source": URLS, "tasks": []}, "at least 1"),
        ({"source": {"kind": "ftp"}, "tasks": [{"task": "caption"}]}, "ftp"),
        ({"source": URLS, "tasks": [{"task": "caption"}, {"task": "caption"}]}, "twice"),
        ({"source": URLS, "tasks": [{"task": "detect", "labels": ["  "]}]}, "at least 1"),
        ({"source": URLS, "tasks": [{"task": "caption"}], "options": {"batch_size": 0}}, "greater"),
    ],
)
def test_bad_specs_are_refused(body: dict[str, Any], said: str) -> None:
    assert said in refusal(body)

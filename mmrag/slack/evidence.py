"""The images an answer rests on, as uploads: each cited image with its boxes drawn when the
answer grounded or detected something, else the cited images' thumbnails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mmrag.retrieval.decode import decode_image
from mmrag.services import Services
from mmrag.slack.boxes import DrawnBox, draw_boxes
from mmrag.slack.poster import Upload


class Evidence:
    def __init__(self, services: Services, max_images: int) -> None:
        self.services = services
        self.max_images = max_images

    def for_citations(
        self, citations: Sequence[Mapping[str, Any]], tenant: str
    ) -> tuple[list[Upload], str]:
        """The uploads (up to ``max_images``) and the comment that goes with them."""
        boxed: dict[str, list[DrawnBox]] = {}
        for citation in citations:
            if "box" in citation:
                x1, y1, x2, y2 = (float(value) for value in citation["box"])
                drawn = DrawnBox(
                    str(citation.get("label", "")),
                    float(citation.get("score", 0.0)),
                    (x1, y1, x2, y2),
                )
                boxed.setdefault(str(citation["image_id"]), []).append(drawn)
        if boxed:
            shown = list(boxed.items())[: self.max_images]
            return [self.drawn(image_id, boxes, tenant) for image_id, boxes in shown], (
                "Where I found it:"
            )
        cited = list(dict.fromkeys(str(citation["image_id"]) for citation in citations))
        scores = {str(c["image_id"]): float(c.get("score", 0.0)) for c in citations}
        uploads = []
        for rank, image_id in enumerate(cited[: self.max_images], start=1):
            caption = caption_of(self.services.image(image_id, tenant))
            uploads.append(self.thumbnail(rank, image_id, scores[image_id], caption, tenant))
        return uploads, "The images I used:"

    def thumbnail(
        self, rank: int, image_id: str, score: float, caption: str, tenant: str
    ) -> Upload:
        payload = self.services.image(image_id, tenant)
        data = self.services.blobs.read("thumbnail", payload["sha256"])
        extension = "webp" if data[:4] == b"RIFF" else "jpg"
        title = f"{rank}. score {score:.3f}" + (f" · {caption[:120]}" if caption else "")
        return Upload(f"{rank}-{image_id}.{extension}", title, data)

    def drawn(self, image_id: str, boxes: Sequence[DrawnBox], tenant: str) -> Upload:
        payload = self.services.image(image_id, tenant)
        original = self.services.blobs.read("original", payload["sha256"])
        image = decode_image(original, self.services.settings.limits).image
        labels = ", ".join(dict.fromkeys(box.label for box in boxes))
        return Upload(f"boxes-{image_id}.png", f"{labels} in {image_id}", draw_boxes(image, boxes))


def caption_of(payload: Mapping[str, Any]) -> str:
    """The image's own caption, else the one a model wrote."""
    return str(payload.get("caption") or payload.get("model_caption", ""))

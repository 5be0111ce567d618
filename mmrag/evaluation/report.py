"""Models side by side: a Rich table, JSON, and an HTML page with a recall@K plot (inline
SVG, no script)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from mmrag.evaluation.metrics import RECALL_AT
from mmrag.evaluation.runner import ModelResult

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def as_json(task: str, dataset: str, results: Sequence[ModelResult]) -> dict[str, Any]:
    return {
        "task": task,
        "dataset": dataset,
        "models": [
            {
                "spec": result.spec,
                "metrics": {name: round(value, 2) for name, value in result.metrics.items()},
                "ms_per_item": round(result.ms_per_item, 2),
                "weights_mb": round(result.weights_mb, 1),
            }
            for result in results
        ],
    }


def as_table(task: str, results: Sequence[ModelResult]) -> Table:
    names = list(results[0].metrics)
    # Short headers, so that the figures of several models fit an 80-column terminal.
    short = [name.replace("text->image ", "t→i ").replace("image->text ", "i→t ") for name in names]
    table = Table(title=f"mmrag eval {task}")
    table.add_column("model", overflow="fold", min_width=20)
    for header in [*short, "ms / item", "weights MB"]:
        table.add_column(header, justify="right")
    for result in results:
        table.add_row(
            result.spec,
            *(f"{result.metrics[name]:.1f}" for name in names),
            f"{result.ms_per_item:.1f}",
            f"{result.weights_mb:.0f}",
        )
    return table


def as_html(task: str, dataset: str, results: Sequence[ModelResult]) -> str:
    names = list(results[0].metrics)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in [*names, "ms / item", "weights MB"])
    rows = "".join(
        "<tr><td>"
        + html.escape(result.spec)
        + "</td>"
        + "".join(f"<td>{result.metrics[n]:.1f}</td>" for n in names)
        + f"<td>{result.ms_per_item:.1f}</td><td>{result.weights_mb:.0f}</td></tr>"
        for result in results
    )
    plot = recall_svg(results) if task == "retrieval" else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>mmrag eval {html.escape(task)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;"
        "border-bottom:1px solid #ccc;text-align:right}td:first-child{text-align:left}</style>"
        f"<h1>mmrag eval {html.escape(task)}</h1><p>{html.escape(dataset)}</p>"
        f"<table><tr><th>model</th>{head}</tr>{rows}</table>{plot}</html>\n"
    )


def recall_svg(results: Sequence[ModelResult], width: int = 480, height: int = 260) -> str:
    """Recall@K against K, one solid (text->image) and one dashed (image->text) line a model."""
    left, bottom, top, right = 50, height - 40, 20, width - 20
    xs = {k: left + (right - left) * i / (len(RECALL_AT) - 1) for i, k in enumerate(RECALL_AT)}

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / 100

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="recall at K">',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#000"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#000"/>',
    ]
    for k, x in xs.items():
        parts.append(f'<text x="{x:.0f}" y="{bottom + 16}" text-anchor="middle">R@{k}</text>')
    for value in (0, 50, 100):
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.0f}" text-anchor="end">{value}</text>'
        )
    for index, result in enumerate(results):
        colour = _COLOURS[index % len(_COLOURS)]
        for direction, dash in (("text->image", ""), ("image->text", ' stroke-dasharray="5 3"')):
            points = " ".join(
                f"{xs[k]:.1f},{y(result.metrics[f'{direction} R@{k}']):.1f}" for k in RECALL_AT
            )
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}">'
                f"<title>{html.escape(result.spec)} {direction}</title></polyline>"
            )
        parts.append(
            f'<text x="{left + 8}" y="{top + 14 * (index + 1)}" fill="{colour}">'
            f"{html.escape(result.spec)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

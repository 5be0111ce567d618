"""Ask in a real browser: the plan and steps stream in, citations open images, grounded
claims are drawn where the true shapes are, and the thread survives a follow-up and a reload."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from web.browser import open_page, ready, screenshots
from web.conftest import World

from mmrag.models.fixtures.evaluate_grounding import box_iou

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

# Each evidence figure: its image id, and per drawn box its label, the rect's attributes
# (the SVG's viewBox is the image's pixels) and where it is on screen mapped back to the
# image's pixels through the displayed image's size.
_READ_FIGURES = """
figures => figures.map(figure => {
  const img = figure.querySelector("img");
  const svg = figure.querySelector("svg");
  const shown = img.getBoundingClientRect();
  const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
  return {
    imageId: figure.dataset.imageId,
    natural: [img.naturalWidth, img.naturalHeight],
    viewBox: [width, height],
    boxes: [...svg.querySelectorAll("rect")].map(rect => {
      const drawn = rect.getBoundingClientRect();
      const sx = img.naturalWidth / shown.width, sy = img.naturalHeight / shown.height;
      const x = Number(rect.getAttribute("x")), y = Number(rect.getAttribute("y"));
      return {
        label: rect.dataset.label,
        attributes: [x, y, x + Number(rect.getAttribute("width")),
                     y + Number(rect.getAttribute("height"))],
        onScreen: [(drawn.left - shown.left) * sx, (drawn.top - shown.top) * sy,
                   (drawn.right - shown.left) * sx, (drawn.bottom - shown.top) * sy],
      };
    }),
  };
})
"""


def ask(page: Page, question: str) -> None:
    turns = page.locator("#chat li.turn").count()
    page.fill("#ask-text", question)
    page.press("#ask-text", "Enter")
    page.wait_for_function(
        f"""() => {{
          const turn = document.querySelectorAll('#chat li.turn')[{turns}];
          return turn && turn.querySelector('.answer').textContent.length > 0
            && !document.querySelector('#ask-form button[type=submit]').disabled;
        }}""",
        timeout=120_000,
    )


def figures(page: Page, turn: int) -> list[dict[str, Any]]:
    selector = f"#chat li.turn:nth-child({turn + 1}) .evidence figure"
    page.wait_for_selector(f"{selector} .figure img[src]")
    page.wait_for_function(
        f"() => !document.querySelector('{selector} .figure-placeholder')"
        f" && [...document.querySelectorAll('{selector} img')]"
        ".every(i => i.complete && i.naturalWidth)"
    )
    found: list[dict[str, Any]] = page.eval_on_selector_all(f"{selector} .figure", _READ_FIGURES)
    return found


def test_ask_draws_the_blue_triangle_where_it_is(browser: Browser, world: World) -> None:
    page, errors = open_page(browser, f"{world.url}/#ask")
    ready(page)
    ask(page, "where is the blue triangle?")
    turn = page.locator("#chat li.turn").first
    steps = turn.locator(".steps li")
    assert steps.count() == 2
    assert steps.nth(0).inner_text().startswith("retrieve")
    assert steps.nth(1).inner_text().startswith("ground")
    assert all("done" in (steps.nth(i).get_attribute("class") or "") for i in range(2))
    # Every [image id] in the answer is a thumbnail that opens the image.
    cited = turn.locator(".answer button.cite")
    assert cited.count() >= 1
    assert not re.search(r"\[[0-9a-f]{32}\]", turn.locator(".answer").inner_text())

    drawn = figures(page, 0)
    with_truth = [f for f in drawn if world.scenes[f["imageId"]].has("blue", "triangle")]
    assert with_truth, "no cited image holds a blue triangle"
    for figure in with_truth[:3]:
        scene = world.scenes[figure["imageId"]]
        assert figure["viewBox"] == figure["natural"] == [scene.size, scene.size]
        truth = scene.find("blue", "triangle")[0].box
        assert figure["boxes"], figure
        box = max(figure["boxes"], key=lambda b: box_iou(tuple(b["attributes"]), truth))
        assert "triangle" in box["label"], box
        assert box_iou(tuple(box["attributes"]), truth) >= 0.5, (box, truth)
        # Drawn at a few hundred pixels for a 64-pixel image: the overlay scales with it.
        assert box_iou(tuple(box["onScreen"]), truth) >= 0.5, (box, truth)
    screenshots(page, "ask")

    cited.first.click()
    page.wait_for_selector("#detail[open] .figure img[src]")
    page.keyboard.press("Escape")
    assert not errors.errors


def test_a_follow_up_keeps_the_thread_and_a_reload_keeps_the_conversation(
    browser: Browser, world: World
) -> None:
    page, errors = open_page(browser, f"{world.url}/#ask")
    ready(page)
    page.click("#ask-new")
    ask(page, "show me a green square")
    ask(page, "and the second one?")
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('mmrag.conversation'))")
    assert len(stored["turns"]) == 2
    first, second = stored["turns"]
    assert first["result"]["thread_id"] == second["result"]["thread_id"] == stored["threadId"]
    # The follow-up ran on the first turn's second result, as the API's thread has it.
    assert second["result"]["trace"][0]["image_ids"] == [
        first["result"]["citations"][1]["image_id"]
    ]
    answers = page.eval_on_selector_all("#chat .answer", "nodes => nodes.map(n => n.textContent)")
    page.reload()
    ready(page)
    page.wait_for_selector("#chat li.turn:nth-child(2)")
    assert (
        page.eval_on_selector_all("#chat .answer", "nodes => nodes.map(n => n.textContent)")
        == answers
    )
    assert not errors.errors


def test_a_question_about_one_image_from_its_detail(browser: Browser, world: World) -> None:
    page, errors = open_page(browser, world.url)
    ready(page)
    page.fill("#search-text", "a blue triangle")
    page.press("#search-text", "Enter")
    page.wait_for_selector("#results li.result")
    ids = page.eval_on_selector_all(
        "#results li.result", "items => items.map(i => i.dataset.imageId)"
    )
    image_id = next(i for i in ids if world.scenes[i].has("blue", "triangle"))
    page.click(f"#results li.result[data-image-id='{image_id}'] button")
    page.click("#detail button:has-text('Ask about this image')")
    page.wait_for_selector("#ask-image:not([hidden]) img[src]")
    assert page.get_attribute("#tab-ask", "aria-selected") == "true"
    ask(page, "where is the blue triangle?")
    turn = page.locator("#chat li.turn").last
    assert [s.split(" ")[0] for s in turn.locator(".steps li").all_inner_texts()] == ["ground"]
    assert page.is_hidden("#ask-image")  # the follow-ups go on in the thread
    [figure] = figures(page, page.locator("#chat li.turn").count() - 1)
    assert figure["imageId"] == image_id
    truth = world.scenes[image_id].find("blue", "triangle")[0].box
    best = max(box_iou(tuple(b["attributes"]), truth) for b in figure["boxes"])
    assert best >= 0.5, (figure, truth)
    assert not errors.errors

"""The engine adapter against an OpenAI-compatible server on loopback (real HTTP, the
protocol's JSON and server-sent events): what it sends, what it reads back, and every way the
engine can fail it. Answers here are set by each test; test_engine_fixtures.py has the
fixture models answer."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator

import pytest
from agents.fake_openai import FakeOpenAI, decode_data_url, text_reply
from PIL import Image

from mmrag.config import EngineSettings
from mmrag.errors import ModelFailed, ModelUnavailable, Unavailable
from mmrag.models.engine.adapter import EngineGroundingVlm, EngineVlm
from mmrag.models.engine.client import EngineClient
from mmrag.models.engine.target import EngineTarget, engine_target
from mmrag.models.registry import create_vision_model
from mmrag.models.spec import parse_spec
from mmrag.models.vision import VisionOptions
from mmrag.workers.executor import engine_options

QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.fixture
def engine() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.models = [QWEN, "other/model"]
        yield fake


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _adapter(
    engine: FakeOpenAI, sleeps: Sleeps | None = None, model: str = QWEN, **options: object
) -> EngineVlm:
    spec = parse_spec(f"openai:{engine.url}#{model}")
    configured = engine_options(EngineSettings.model_validate({"backoff_s": 0.01, **options}))
    vision = VisionOptions(engine=configured)
    adapter = create_vision_model(spec, vision)
    assert isinstance(adapter, EngineVlm)
    if sleeps is not None:

        def client(target: EngineTarget) -> EngineClient:
            return EngineClient(target, configured, sleep=sleeps)

        adapter._client_factory = client
    return adapter


def _image(width: int = 64, height: int = 48) -> Image.Image:
    return Image.new("RGB", (width, height), (200, 30, 30))


def test_a_caption_request_carries_the_image_resized_to_the_patch_grid(
    engine: FakeOpenAI,
) -> None:
    engine.reply = text_reply("a red square.", 0.5)
    adapter = _adapter(engine)
    assert isinstance(adapter, EngineGroundingVlm)  # Qwen2.5-VL writes boxes
    assert adapter.caption([_image(100, 300)]) == ["a red square."]
    [request] = engine.requests
    assert request["model"] == QWEN
    assert request["temperature"] == 0
    assert request["logprobs"] is True
    assert request["max_tokens"] == 48
    [image_part, text_part] = request["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "Describe this image in one sentence."}
    sent = decode_data_url(image_part["image_url"]["url"])
    # 100 x 300 rounded to Qwen's 28 px grid: 112 x 308 (aspect kept as near as it goes).
    assert sent.size == (112, 308)


def test_answers_score_the_mean_token_probability_streamed_or_not(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("blue and green", 0.25)
    for stream in (False, True):
        [answer] = _adapter(engine, stream=stream).answer([_image()], ["What colours?"])
        assert answer.text == "blue and green"
        assert answer.score == pytest.approx(0.25)
        assert engine.requests[-1]["stream"] is stream
        assert engine.requests[-1]["messages"][0]["content"][1]["text"] == "What colours?"


def test_no_logprobs_no_score(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("red", None)
    [answer] = _adapter(engine, logprobs=False).answer([_image()], ["Which colour?"])
    assert answer.text == "red"
    assert answer.score is None
    assert "logprobs" not in engine.requests[-1]


def test_qwen_boxes_come_back_in_pixels_of_the_original(engine: FakeOpenAI) -> None:
    # A 100 x 300 image is sent as 112 x 308: a box there maps back by 100/112 and 300/308.
    found = [{"bbox_2d": [56, 154, 112, 308], "label": "it"}]
    engine.reply = text_reply(f"```json\n{json.dumps(found)}\n```", 0.8)
    [[box]] = _adapter(engine).ground([_image(100, 300)], [["the Red Square"]])
    assert box.label == "the Red Square"  # the caller's phrase, not the model's label
    assert box.score == pytest.approx(0.8)
    assert box.box == pytest.approx((50.0, 150.0, 100.0, 300.0))
    prompt = engine.requests[-1]["messages"][0]["content"][1]["text"]
    assert prompt.startswith('Locate every "the Red Square" in the image')


def test_an_answer_with_no_boxes_grounds_nothing(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("There is no such thing in the image.", 0.9)
    assert _adapter(engine).ground([_image()], [["a unicorn"]]) == [[]]


def test_florence_location_tokens(engine: FakeOpenAI) -> None:
    engine.models = ["florence-community/Florence-2-base"]
    engine.reply = text_reply("a circle<loc_0><loc_500><loc_499><loc_999>", None)
    adapter = _adapter(engine, model="florence-community/Florence-2-base")
    assert not adapter.serves("vqa")
    [[box]] = adapter.ground([_image(200, 100)], [["a circle"]])
    # Bins stand for their centres: (0.5, 500.5, 499.5, 999.5) / 1000 of 200 x 100.
    assert box.box == pytest.approx((0.1, 50.05, 99.9, 99.95))
    assert box.score == 0.0  # no log-probabilities, no confidence
    text = engine.requests[-1]["messages"][0]["content"][1]["text"]
    assert text == "<CAPTION_TO_PHRASE_GROUNDING>a circle"


def test_a_model_that_writes_no_boxes_serves_no_grounding(engine: FakeOpenAI) -> None:
    engine.models = ["llava-hf/llava-1.5-7b-hf"]
    adapter = _adapter(engine, model="llava-hf/llava-1.5-7b-hf")
    assert adapter.serves("caption")
    assert adapter.serves("vqa")
    assert not adapter.serves("ground")


def test_503_and_429_are_retried_after_the_engines_retry_after(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("red", 0.9)
    engine.failures = [503, 429]
    engine.retry_after = "2"
    sleeps = Sleeps()
    [answer] = _adapter(engine, sleeps).answer([_image()], ["Which colour?"])
    assert answer.text == "red"
    assert sleeps.waits == [2.0, 2.0]
    assert len(engine.requests) == 3


def test_without_retry_after_the_backoff_grows(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("red", 0.9)
    engine.failures = [503, 503, 503]
    sleeps = Sleeps()
    _adapter(engine, sleeps, backoff_s=1.0).caption([_image()])
    # Exponential, with jitter between half and all of it.
    for attempt, wait in enumerate(sleeps.waits):
        assert 0.5 * 2**attempt <= wait <= 2**attempt


def test_still_busy_after_the_retries_is_unavailable(engine: FakeOpenAI) -> None:
    engine.failures = [503] * 3
    engine.retry_after = "1"
    sleeps = Sleeps()
    with pytest.raises(Unavailable, match=r"still busy \(HTTP 503\) after 2 retries"):
        _adapter(engine, sleeps, max_retries=2).caption([_image()])
    assert sleeps.waits == [1.0, 1.0]


def test_a_slow_engine_times_out(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("late", 0.9)
    engine.delay_s = 1.0
    with pytest.raises(Unavailable, match=r"did not answer within 0.3 s"):
        _adapter(engine, timeout_s=0.3).caption([_image()])
    assert len(engine.requests) == 1  # a timeout is not retried


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_is_a_model_failure(engine: FakeOpenAI, stream: bool) -> None:
    engine.reply = '{"choices": [{"message": '
    with pytest.raises(ModelFailed, match="malformed"):
        _adapter(engine, stream=stream).caption([_image()])


def test_an_answer_without_choices_is_a_model_failure(engine: FakeOpenAI) -> None:
    engine.reply = {"id": "x", "object": "chat.completion", "choices": []}
    with pytest.raises(ModelFailed, match="malformed JSON"):
        _adapter(engine).caption([_image()])


def test_an_engine_error_says_the_engines_message(engine: FakeOpenAI) -> None:
    engine.status = 400
    engine.reply = {"error": {"message": "image exceeds the limit of 1 per prompt"}}
    with pytest.raises(ModelFailed, match=r"HTTP 400\): image exceeds the limit"):
        _adapter(engine).caption([_image()])


def test_requests_in_flight_are_bounded(engine: FakeOpenAI) -> None:
    engine.reply = text_reply("red", 0.9)
    engine.delay_s = 0.2
    captions = _adapter(engine, max_in_flight=3).caption([_image()] * 9)
    assert captions == ["red"] * 9
    assert engine.most_in_flight == 3


def test_an_engine_serving_another_model_is_refused_at_load(engine: FakeOpenAI) -> None:
    engine.models = ["other/model"]
    adapter = _adapter(engine)
    with pytest.raises(ModelUnavailable, match=f"serves other/model, not {QWEN}"):
        adapter.load()


def test_an_unreachable_engine_is_refused_at_load() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    options = VisionOptions(engine=engine_options(EngineSettings()))
    adapter = create_vision_model(f"openai:http://127.0.0.1:{port}/v1#{QWEN}", options)
    with pytest.raises(ModelUnavailable, match=f"engine at http://127.0.0.1:{port}/v1 is unreach"):
        adapter.load()


def test_the_target_of_a_spec() -> None:
    target = engine_target(parse_spec("openai:https://gpu.internal:8000/v1/#Qwen/Qwen3-VL-8B"))
    assert target.base_url == "https://gpu.internal:8000/v1"
    assert target.model == "Qwen/Qwen3-VL-8B"
    assert target.box_format == "grid1000"
    assert target.patch_multiple == 32
    assert math.isclose(EngineSettings().max_image_pixels / (28 * 28), 1280)


def test_settings_check_engine_specs_at_start() -> None:
    from pydantic import ValidationError

    from mmrag.config import Settings

    spec = f"openai:http://127.0.0.1:8000/v1#{QWEN}"
    settings = Settings(models={"vlm": spec, "allowed": [spec]})
    assert settings.model_spec("vlm") == spec
    for wrong, says in [
        ("openai:http://127.0.0.1:8000/v1", "name the model after the URL"),
        ("openai:ftp://host/v1#m", "must be http"),
        ("openai:http://host/v1#m@rev", "takes no revision"),
    ]:
        with pytest.raises(ValidationError, match=says):
            Settings(models={"vlm": wrong})
    with pytest.raises(ValidationError, match="loads from"):
        Settings(models={"embedder": spec})
    with pytest.raises(ValidationError, match="less than or equal to 256"):
        Settings(models={"engine": {"max_in_flight": 10_000}})


def test_box_formats_read_by_hand() -> None:
    from mmrag.models.engine.boxes import read_boxes

    # Qwen3-VL / Qwen2-VL: a 0-1000 grid of the whole image (here 200 x 100).
    grid = '[{"bbox_2d": [100, 200, 500, 1000], "label": "a"}]'
    assert read_boxes(grid, "grid1000", (224, 112), (200, 100)) == [(20.0, 20.0, 100.0, 100.0)]
    qwen2 = "<|box_start|>(100,200),(500,1000)<|box_end|>"
    assert read_boxes(qwen2, "grid1000", (224, 112), (200, 100)) == [(20.0, 20.0, 100.0, 100.0)]
    # Cut off by the token budget: the complete box is kept; corners given the wrong way
    # round are put in order; a box past the image is clipped; one with no area dropped.
    cut = (
        '```json\n[{"bbox_2d": [50, 60, 10, 20]}, {"bbox_2d": [0, 0, 300, 90]}, '
        '{"bbox_2d": [5, 5, 5'
    )
    assert read_boxes(cut, "qwen2.5", (200, 100), (200, 100)) == [
        (10.0, 20.0, 50.0, 60.0),
        (0.0, 0.0, 200.0, 90.0),
    ]
    flat = '[{"bbox_2d": [10, 10, 10, 50]}]'
    assert read_boxes(flat, "qwen2.5", (200, 100), (200, 100)) == []
    assert read_boxes("no boxes here", "qwen2.5", (200, 100), (200, 100)) == []
    assert read_boxes('{"bbox_2d": "oops"}', "qwen2.5", (200, 100), (200, 100)) == []

"""One engine's ``/chat/completions`` and ``/models`` over httpx.

httpx, not the ``openai`` SDK: httpx is already a dependency (the LLM planner speaks the
same protocol with it), and the few things this client must do its own way are a few lines
each here but settings of the SDK's internals there: honour ``Retry-After`` on 503 as well as
429 and cap it, count retries into the task's own time budget, and read log-probabilities from
streamed chunks.

Failures, as the workers handle them:

- engine busy (429, 502, 503, 504) or refusing connections: retried after ``Retry-After``
  (seconds or an HTTP date, capped at ``backoff_max_s``), else exponential backoff; still
  busy after ``max_retries``: :class:`Unavailable`;
- no answer within ``timeout_s``: :class:`Unavailable` (not retried: a second try would
  queue the same generation again behind the first);
- another HTTP error, or an answer that is not the protocol's JSON: :class:`ModelFailed`,
  with the engine's own message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mmrag.errors import ModelFailed, ModelUnavailable, Unavailable
from mmrag.models.engine.options import EngineOptions
from mmrag.models.engine.target import EngineTarget

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Completion:
    text: str
    # Mean probability of the generated tokens (from the engine's log-probabilities); None
    # where the engine gave none.
    score: float | None


class _Busy(Exception):
    def __init__(self, reason: str, wait_s: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class EngineClient:
    def __init__(
        self,
        target: EngineTarget,
        options: EngineOptions,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.options = options
        headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._client = httpx.Client(
            base_url=target.base_url,
            headers=headers,
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=options.max_in_flight,
                max_keepalive_connections=options.max_in_flight,
            ),
            transport=transport,
        )
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    # -- the model list --------------------------------------------------------------------

    def served_models(self) -> list[str]:
        """The model ids the engine serves (``GET /models``)."""
        try:
            response = self._client.get("/models", timeout=self.options.connect_timeout_s * 2)
        except httpx.HTTPError as error:
            raise ModelUnavailable(
                f"engine at {self.target.base_url} is unreachable: {_describe(error)}"
            ) from error
        if response.status_code != 200:
            raise ModelUnavailable(
                f"engine at {self.target.base_url} answered GET /models with HTTP "
                f"{response.status_code}: {_error_message(response)}"
            )
        try:
            return [str(model["id"]) for model in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as error:
            raise ModelUnavailable(
                f"engine at {self.target.base_url} answered GET /models with no model list"
            ) from error

    def check(self) -> None:
        """Raise :class:`ModelUnavailable`, saying why, unless the engine is up and serves the
        spec's model."""
        served = self.served_models()
        if self.target.model not in served:
            raise ModelUnavailable(
                f"engine at {self.target.base_url} serves {', '.join(served) or 'no model'}, "
                f"not {self.target.model}"
            )

    # -- one completion --------------------------------------------------------------------

    def complete(self, content: list[dict[str, Any]], max_tokens: int) -> Completion:
        """The model's greedy answer to one user message of ``content`` parts."""
        body: dict[str, Any] = {
            "model": self.target.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": self.options.stream,
        }
        if self.options.logprobs:
            body["logprobs"] = True
        attempt = 0
        while True:
            try:
                return self._send(body)
            except _Busy as busy:
                if attempt >= self.options.max_retries:
                    raise Unavailable(
                        f"engine at {self.target.base_url} still {busy.reason} after "
                        f"{attempt} retries",
                        retry_after_s=math.ceil(busy.wait_s or self.options.backoff_s),
                    ) from None
                wait = self._wait(attempt, busy.wait_s)
                log.info("engine %s; retrying in %.1f s", busy.reason, wait)
                self._sleep(wait)
                attempt += 1

    def _wait(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.options.backoff_max_s)
        backoff = min(self.options.backoff_s * 2.0**attempt, self.options.backoff_max_s)
        # Jitter, so that the workers a 503 turned away do not all come back at once.
        return backoff * random.uniform(0.5, 1.0)

    def _send(self, body: dict[str, Any]) -> Completion:
        try:
            if body["stream"]:
                with self._client.stream("POST", "/chat/completions", json=body) as response:
                    self._raise_for_status(response, streamed=True)
                    return _read_stream(response.iter_lines())
            response = self._client.post("/chat/completions", json=body)
            self._raise_for_status(response, streamed=False)
            return _read_completion(response)
        except httpx.TimeoutException as error:
            if isinstance(error, httpx.ConnectTimeout):
                raise _Busy("not accepting connections", None) from error
            raise Unavailable(
                f"engine at {self.target.base_url} did not answer within "
                f"{self.options.timeout_s:g} s"
            ) from error
        except httpx.ConnectError as error:
            raise _Busy(f"unreachable ({_describe(error)})", None) from error
        except httpx.HTTPError as error:
            raise ModelFailed(
                f"engine at {self.target.base_url} broke off: {_describe(error)}"
            ) from error

    def _raise_for_status(self, response: httpx.Response, streamed: bool) -> None:
        if response.status_code == 200:
            return
        if streamed:
            response.read()
        if response.status_code in RETRY_STATUSES:
            raise _Busy(f"busy (HTTP {response.status_code})", retry_after(response.headers))
        message = _error_message(response)
        if response.status_code == 404:
            raise ModelUnavailable(
                f"engine at {self.target.base_url} does not serve {self.target.model}: {message}"
            )
        raise ModelFailed(
            f"engine at {self.target.base_url} refused the request "
            f"(HTTP {response.status_code}): {message}"
        )


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the ``Retry-After`` header asks for (a number or an HTTP date); None if absent
    or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _read_completion(response: httpx.Response) -> Completion:
    try:
        payload = response.json()
        choice = payload["choices"][0]
        text = choice["message"]["content"] or ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ModelFailed(f"engine answered with malformed JSON: {_describe(error)}") from error
    return Completion(text.strip(), _score(_token_logprobs(choice)))


def _read_stream(lines: Iterator[str]) -> Completion:
    """A streamed answer: ``data: {chunk}`` events up to ``data: [DONE]``."""
    parts: list[str] = []
    logprobs: list[float] = []
    finished = False
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ``: comments``, ``event:`` fields
        data = line[5:].strip()
        if data == "[DONE]":
            finished = True
            break
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                raise ModelFailed(f"engine failed mid-answer: {_message_of(chunk)}")
            if not chunk.get("choices"):
                continue  # a usage-only chunk
            choice = chunk["choices"][0]
            parts.append(choice.get("delta", {}).get("content") or "")
            logprobs.extend(_token_logprobs(choice))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise ModelFailed(f"engine streamed a malformed chunk: {_describe(error)}") from error
    if not finished:
        raise ModelFailed("engine ended the stream before [DONE]")
    return Completion("".join(parts).strip(), _score(logprobs))


def _token_logprobs(choice: dict[str, Any]) -> list[float]:
    logprobs = choice.get("logprobs")
    if not logprobs:
        return []
    return [float(token["logprob"]) for token in logprobs.get("content") or []]


def _score(logprobs: list[float]) -> float | None:
    """Mean token probability: the score the in-process adapters give, from the same numbers."""
    if not logprobs:
        return None
    return sum(math.exp(value) for value in logprobs) / len(logprobs)


def _error_message(response: httpx.Response) -> str:
    try:
        return _message_of(response.json())
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase


def _message_of(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:200]
        if isinstance(error, str):
            return error[:200]
    return json.dumps(payload)[:200]


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

"""The signed webhook sent when a job ends, to a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from jobs.conftest import write_scenes
from jobs.helpers import spec, wait_for
from pydantic import SecretStr

from mmrag.errors import ForbiddenSource
from mmrag.retrieval.addresses import AddressPolicy
from mmrag.retrieval.sources import UrlFetcher
from mmrag.workers.jobs.service import JobService
from mmrag.workers.jobs.webhook import signature, webhook_secret

pytestmark = pytest.mark.slow

Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


def hooked_job(jobs: JobService, url: str, monkeypatch: pytest.MonkeyPatch, count: int) -> str:
    """A job over ``count`` new scenes whose end is posted to ``url`` (on loopback)."""
    limits = jobs.services.settings.limits
    monkeypatch.setattr(  # the receiver is on loopback: allow exactly that
        jobs.services,
        "url_fetcher",
        lambda: UrlFetcher(limits, AddressPolicy.allowing("127.0.0.1/32")),
    )
    root = jobs.services.settings.allowed_roots[0]
    write_scenes(root / "hooked", count)
    body = spec({"kind": "paths", "paths": [str(root / "hooked")]}, {"task": "embed"}, batch=1)
    body = body.model_copy(update={"options": body.options.model_copy(update={"webhook": url})})
    return jobs.submit(body).id


def the_only_post(received: Received) -> tuple[dict[str, str], bytes]:
    deadline = time.monotonic() + 10
    while not received:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    assert len(received) == 1  # once per job
    return received[0]


def test_a_finished_job_posts_its_signed_status(
    jobs: JobService,
    receiver: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = receiver
    job_id = hooked_job(jobs, url, monkeypatch, 3)
    wait_for(jobs, job_id, {"completed"})
    headers, sent = the_only_post(received)
    settings = jobs.services.settings
    secret = webhook_secret(settings)
    assert headers["X-Mmrag-Signature"] == signature(secret, headers["X-Mmrag-Timestamp"], sent)
    master = settings.secret_key.get_secret_value()  # never handed to receivers
    for other in (master, "another secret"):
        assert headers["X-Mmrag-Signature"] != signature(other, headers["X-Mmrag-Timestamp"], sent)
    status = json.loads(sent)
    assert status["id"] == job_id
    # The hook's path (a token, often) is shown to no reader of the job.
    assert (
        status["spec"]["options"]["webhook"]
        == f"http://127.0.0.1:{url.split(':')[2].split('/')[0]}/…"
    )
    assert jobs.status(job_id).spec.options.webhook == status["spec"]["options"]["webhook"]
    assert status["state"] == "completed"
    assert status["counts"]["done"] == 3


def test_a_cancelled_job_posts_its_status_too(
    jobs: JobService,
    receiver: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = receiver
    job_id = hooked_job(jobs, url, monkeypatch, 12)
    jobs.cancel(job_id)
    wait_for(jobs, job_id, {"cancelled"})
    _, sent = the_only_post(received)
    status = json.loads(sent)
    assert (status["id"], status["state"]) == (job_id, "cancelled")
    assert status["counts"]["pending"] > 0  # cancelled with work left


def test_webhooks_to_other_schemes_are_refused_at_submit(jobs: JobService) -> None:
    body = spec({"kind": "indexed"}, {"task": "embed"})
    body = body.model_copy(
        update={"options": body.options.model_copy(update={"webhook": "file:///etc/passwd"})}
    )
    with pytest.raises(ForbiddenSource):
        jobs.submit(body)


def test_a_webhook_to_a_private_address_is_never_sent(jobs: JobService) -> None:
    assert not jobs.webhooks.send("http://10.1.2.3/hook", b"{}")


def test_a_webhook_secret_of_its_own_is_used_when_set(jobs: JobService) -> None:
    settings = jobs.services.settings
    own = settings.model_copy(
        update={"jobs": settings.jobs.model_copy(update={"webhook_secret": SecretStr("hooks")})}
    )
    assert webhook_secret(own) == "hooks"
    assert webhook_secret(settings) not in ("hooks", settings.secret_key.get_secret_value())

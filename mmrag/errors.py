"""Typed domain errors. HTTP status codes live only in ``mmrag.api``."""

from __future__ import annotations


class MmragError(Exception):
    """Base of every error the service raises on purpose; ``str()`` is one plain line."""

    title = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(MmragError):
    """The caller sent something malformed or out of bounds."""

    title = "Invalid input"


class UnsupportedMedia(InvalidInput):
    """Bytes that are not an image we can decode (corrupt, empty, wrong type)."""

    title = "Unsupported media"


class TooLarge(InvalidInput):
    """Over a byte or pixel limit (decompression bombs included)."""

    title = "Too large"


class ForbiddenSource(MmragError):
    """A path outside the allowed roots, or a URL that points at a private address."""

    title = "Forbidden source"


class SourceUnreachable(MmragError):
    """A remote source that timed out or answered with an error."""

    title = "Source unreachable"


class NotFound(MmragError):
    title = "Not found"


class Unauthorized(MmragError):
    title = "Unauthorized"


class Forbidden(MmragError):
    title = "Forbidden"


class RateLimited(MmragError):
    """Over a per-key rate or count; ``retry_after_s`` says when it frees up."""

    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class QuotaExceeded(TooLarge):
    """The tenant's storage quota would be exceeded: refused before anything is stored."""

    title = "Quota exceeded"


class ModelFailed(MmragError):
    """The model raised on this input, and would again: a fault of ours or the model's, not
    a busy service (so no retry hint) and not the caller's input (it decoded and validated)."""

    title = "Model failed"


class Unavailable(MmragError):
    """A dependency (store, model, worker) cannot serve right now; retrying may help."""

    title = "Service unavailable"

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        # When to try again, as the API's Retry-After header says it.
        self.retry_after_s = retry_after_s


class InsufficientStorage(Unavailable):
    """The disk (or blob store) is full: nothing of the request was kept, and it can succeed
    once space returns."""

    title = "Insufficient storage"

    def __init__(self, detail: str, retry_after_s: int = 60) -> None:
        super().__init__(detail, retry_after_s)


class BackendDown(Unavailable):
    """No worker serves the tool, or the task broker is unreachable: an outage, not a fault
    of the request (jobs wait it out without spending the items' attempts)."""


class ModelBuilding(BackendDown):
    """The model is still being built (a fixture trained on a fresh machine): the tool runs
    once it is ready, and ``retry_after_s`` says about when."""

    title = "Model building"


class DimensionMismatchError(Unavailable):
    """The collection was built for vectors of another size than the embedder makes: a
    model swap without re-indexing. A configuration fault, not the caller's."""

    title = "Store configuration mismatch"


class ModelUnavailable(Unavailable):
    """Model weights cannot be had (no hub, no local copy)."""

    title = "Model unavailable"


class UnknownModel(InvalidInput):
    """A model spec the registry does not know."""

    title = "Unknown model"

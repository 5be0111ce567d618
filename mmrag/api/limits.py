"""The limits of settings.tenancy on an API key: rates as route dependencies, daily image
counts before an ingest stores anything, concurrent jobs at submit. A tenant's storage quota
is not here: every ingest checks it, whatever surface started it (Services.admit_ingest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import Depends, Request

from mmrag.api.security import ANONYMOUS, Caller, current_caller
from mmrag.config import TenancySettings
from mmrag.errors import RateLimited
from mmrag.retrieval.items import IngestReport
from mmrag.tenancy.keys import KeyStore
from mmrag.tenancy.limits import RateLimiter, now_utc, seconds_to_midnight, utc_day

RateKind = Literal["search", "ask"]


def caller_key(caller: Caller) -> str:
    """Whom a count belongs to: the stored key's id, else the settings key's name."""
    return caller.key_id or f"{caller.tenant}/{caller.name}"


class Limits:
    def __init__(self, settings: TenancySettings, keys: KeyStore) -> None:
        self.settings = settings
        self.keys = keys
        self.rates = RateLimiter()

    def take(self, caller: Caller, kind: RateKind) -> None:
        if caller is ANONYMOUS:
            return  # auth off: no key to limit (quotas still hold the default tenant)
        rate = self.settings.search_per_s if kind == "search" else self.settings.ask_per_s
        self.rates.take(caller_key(caller), kind, rate)

    def admit_images(self, caller: Caller, images: int) -> None:
        """Refuses (429) an ingest of ``images`` images that would pass the key's images
        today. The tenant's storage quota is the ingest's own (Services.admit_ingest)."""
        if caller is ANONYMOUS:
            return
        now = now_utc()
        used = self.keys.images_on(caller_key(caller), utc_day(now))
        if used + images > self.settings.images_per_day:
            raise RateLimited(
                f"{images} more images would pass this key's {self.settings.images_per_day} "
                f"a day ({used} today)",
                seconds_to_midnight(now),
            )

    def count_images(self, caller: Caller, report: IngestReport) -> None:
        if report.indexed and caller is not ANONYMOUS:
            self.keys.add_images(caller_key(caller), utc_day(now_utc()), len(report.indexed))


def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


def rate(kind: RateKind) -> Callable[..., None]:
    def check(
        caller: Annotated[Caller, Depends(current_caller)],
        limits: Annotated[Limits, Depends(get_limits)],
    ) -> None:
        limits.take(caller, kind)

    return check


SearchRate = Annotated[None, Depends(rate("search"))]
AskRate = Annotated[None, Depends(rate("ask"))]
LimitsDep = Annotated[Limits, Depends(get_limits)]

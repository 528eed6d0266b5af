"""Failure classification and backoff: what is retried automatically and what waits for a person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.config import SyncSettings
from connector.errors import (
    FatalRemoteError,
    IdempotencyConflict,
    MappingError,
    RateLimitedError,
    RemoteConfigError,
    RetriableRemoteError,
    StoreError,
)
from connector.sync.failures import WaitingError, classify, excerpt, next_attempt_at

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (WaitingError("original sale not journaled yet"), "transient"),
        (RetriableRemoteError("503", system="crm"), "transient"),
        (RateLimitedError("429", retry_after=2, system="evotor"), "transient"),
        (StoreError("database is locked"), "transient"),
        (RemoteConfigError("400 not enough bonuses", system="crm"), "permanent"),
        (FatalRemoteError("1C stored it differently", system="onec"), "permanent"),
        (IdempotencyConflict("same key, other payload", key="crm:x"), "permanent"),
        (MappingError("not a phone", field="customer.phone"), "permanent"),
        (ValueError("a bug"), "permanent"),
    ],
)
def test_each_error_class_has_its_kind(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


def test_backoff_grows_is_capped_and_stops_at_max_attempts() -> None:
    settings = SyncSettings(backoff="1m", backoff_factor=2, max_backoff="3m", max_attempts=4)
    waits = [next_attempt_at(settings, attempts, NOW) for attempts in (1, 2, 3, 4)]
    assert waits[:3] == [NOW + timedelta(minutes=1), NOW + timedelta(minutes=2), NOW + timedelta(minutes=3)]
    assert waits[3] is None  # the fourth failure parks it: permanent


def test_the_excerpt_is_short_and_masks_phones() -> None:
    text = excerpt({"customer_phone": "+79161234567", "items": ["x" * 50] * 100})
    assert len(text) <= 600
    assert "+79161234567" not in text

"""The error tree: grouped by what the caller does, every error carrying its evidence."""

from __future__ import annotations

import pytest

from connector import errors


def test_errors_render_their_evidence_in_one_line() -> None:
    error = errors.MappingError("not a decimal", system="evotor", document="d-1", field="items[0].sum")
    assert str(error) == "not a decimal (system=evotor, document=d-1, field=items[0].sum)"
    assert error.context["field"] == "items[0].sum"


def test_missing_evidence_is_left_out() -> None:
    assert str(errors.ConfigError("bad", file=None)) == "bad"


@pytest.mark.parametrize(
    ("error", "parents"),
    [
        (errors.RateLimitedError, (errors.RetriableRemoteError, errors.RemoteError)),
        (errors.RemoteNotFoundError, (errors.FatalRemoteError, errors.RemoteError)),
        (errors.RemoteConfigError, (errors.FatalRemoteError,)),
        (errors.IdempotencyConflict, (errors.LedgerError,)),
        (errors.MappingError, (errors.InputError,)),
        (errors.StoreError, (errors.ConnectorError,)),
    ],
)
def test_tree_groups_errors_by_what_to_do(
    error: type[Exception], parents: tuple[type[Exception], ...]
) -> None:
    assert issubclass(error, (errors.ConnectorError, *parents))
    for parent in parents:
        assert issubclass(error, parent)


def test_rate_limited_keeps_the_wait_and_status() -> None:
    error = errors.RateLimitedError("slow down", retry_after=2.5, system="crm", status=503)
    assert error.retry_after == 2.5
    assert error.status == 503
    assert "retry_after=2.5" in str(error)

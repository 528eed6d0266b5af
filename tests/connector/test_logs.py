"""Logs never carry secrets or whole phone numbers."""

from __future__ import annotations

import pytest

from connector.logs import configure_logging, get_logger, mask_phone, mask_phones, mask_text


def test_phone_keeps_country_and_last_two_digits() -> None:
    assert mask_phone("+79161234567") == "+7********67"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("customer 8 (916) 123-45-67 paid", "123-45-67"),
        ("phone=+79161234567", "9161234567"),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("GET /api?apiKey=s3cr3t&limit=5", "s3cr3t"),
        ('{"token": "tok-777"}', "tok-777"),
    ],
)
def test_mask_text_hides_phones_and_inline_secrets(text: str, hidden: str) -> None:
    masked = mask_text(text)
    assert hidden not in masked


def test_mask_phones_leaves_an_errors_evidence_readable() -> None:
    text = "unknown transform 'money' (file=x.yaml, key=fields.amount) for customer 8 (916) 123-45-67"
    assert (
        mask_phones(text)
        == "unknown transform 'money' (file=x.yaml, key=fields.amount) for customer +8********67"
    )


def test_ordinary_numbers_are_not_mistaken_for_phones() -> None:
    assert mask_text("receipt 1234 total 2338.75 at 2026-11-19") == "receipt 1234 total 2338.75 at 2026-11-19"


def test_log_lines_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    get_logger("test").info(
        "request", system="crm", api_key="k-123", headers={"X-API-KEY": "k-456"}, phone="+79161234567"
    )
    err = capsys.readouterr().err
    assert "request" in err
    assert "k-123" not in err
    assert "k-456" not in err
    assert "9161234567" not in err
    assert "+7********67" in err
    configure_logging("WARNING")


def test_logs_follow_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    configure_logging("INFO")
    swapped = io.StringIO()
    original, sys.stderr = sys.stderr, swapped
    try:
        get_logger("test").info("after the swap")
    finally:
        sys.stderr = original
    assert "after the swap" in swapped.getvalue()
    configure_logging("WARNING")

"""The console script's entry point: a connector error becomes one line on stderr and exit code 2."""

from __future__ import annotations

from typing import Any

import pytest

from connector import cli
from connector.errors import StoreError


def test_a_connector_error_is_one_line_exit_2_with_phones_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(**_: Any) -> None:
        raise StoreError(
            "cannot journal: DETAIL: Key (phone)=(+7 916 123-45-67) already exists", system="crm"
        )

    monkeypatch.setattr(cli, "app", refused)
    with pytest.raises(SystemExit) as exited:
        cli.main(["sync"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == "error: cannot journal: DETAIL: Key (phone)=(+7********67) already exists (system=crm)"
    )

"""The program configuration and its YAML loader: values kept exact, errors naming file, key path and line."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.program import Program, load_program

DATA = Path(__file__).parent.parent / "data" / "rules"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "program.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_the_design_program() -> None:
    program = load_program(DATA / "program.yaml")
    assert program.name == "Бонусы"
    assert program.point_value == Decimal("1.00")
    assert [(t.name, t.from_spend, t.percent) for t in program.accrual.tiers] == [
        ("Silver", Decimal("30000"), Decimal("7")),
        ("Gold", Decimal("100000"), Decimal("10")),
    ]
    assert program.accrual.categories == {
        "tobacco": Decimal("0"),
        "alcohol": Decimal("0"),
        "promo": Decimal("2"),
    }
    (black_friday,) = program.accrual.promotions
    assert (black_friday.from_, black_friday.to) == (date(2026, 11, 27), date(2026, 11, 30))
    assert program.redemption.excluded_categories == ("tobacco",)
    assert (program.activation_delay_days, program.expiry_days) == (14, 365)
    assert program.zone.key == "Europe/Moscow"


def test_reads_the_program_out_of_a_whole_connector_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "state: sqlite:///connector.db\n"
        "systems:\n  crm:\n    adapter: crm\n    api_key: ${CRM_API_KEY}\n"
        "program:\n  name: Бонусы\n  accrual: {percent: 5}\n",
    )
    assert load_program(path).accrual.percent == Decimal("5")


def test_unquoted_yaml_floats_stay_exact_decimals(tmp_path: Path) -> None:
    # 0.1 + 0.2 as binary floats is 0.30000000000000004; read as Decimal it is exactly 0.3
    path = write(tmp_path, "program:\n  name: p\n  point_value: 0.1\n  accrual:\n    percent: 7.35\n")
    program = load_program(path)
    assert program.point_value + Decimal("0.2") == Decimal("0.3")
    assert program.accrual.percent == Decimal("7.35")
    assert isinstance(program.accrual.percent, Decimal)


def test_invalid_value_names_file_key_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "program:\n"
        "  name: p\n"
        "  accrual:\n"
        "    tiers:\n"
        "      - {name: Silver, from_spend: '30000', percent: '7'}\n"
        "      - {name: Gold, from_spend: '100000', percent: '-1'}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_program(path)
    assert str(caught.value) == (
        f"{path}: program.accrual.tiers[1].percent (line 6): Input should be greater than or equal to 0"
    )


def test_missing_key_points_at_the_enclosing_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "program:\n  accrual: {percent: '5'}\n")
    with pytest.raises(ConfigError, match=r"program\.name \(line 2\): Field required"):
        load_program(path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "program:\n  name: p\n  accrual:\n    percnt: '5'\n")
    with pytest.raises(
        ConfigError, match=r"program\.accrual\.percnt \(line 4\): Extra inputs are not permitted"
    ):
        load_program(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  timezone: Mars/Olympus\n",
            r"program\.timezone \(line \d+\): 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            "  accrual:\n    tiers: [{name: Gold, from_spend: '100000', percent: '10'},"
            " {name: Silver, from_spend: '30000', percent: '7'}]\n",
            r"program\.accrual\.tiers \(line \d+\): tiers must be in ascending from_spend: 'Silver' \(30000\) follows 'Gold'",
        ),
        (
            "  accrual:\n    categories: {tobacco: '-1'}\n",
            r"program\.accrual\.categories \(line \d+\): category percent must be >= 0",
        ),
        (
            "  accrual:\n    rounding: ceil\n",
            r"program\.accrual\.rounding \(line \d+\): Input should be 'floor', 'half_up' or 'none'",
        ),
        (
            "  accrual:\n    fixed_per_purchase: '0.001'\n",
            r"fixed_per_purchase \(line \d+\): '0\.001' has more than 2 decimal places",
        ),
        ("  point_value: '0'\n", r"program\.point_value \(line \d+\): Input should be greater than 0"),
        (
            "  accrual:\n    promotions: [{name: x, from: 2026-11-30, to: 2026-11-27, multiplier: '2'}]\n",
            r"program\.accrual\.promotions\[0\] \(line \d+\): promotion 'x' ends \(2026-11-27\) before it starts \(2026-11-30\)",
        ),
    ],
)
def test_validators(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_program(write(tmp_path, "program:\n  name: p\n" + body))


def test_file_without_program_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no top-level 'program:' key") as caught:
        load_program(write(tmp_path, "state: sqlite:///x.db\n"))
    assert str(caught.value).startswith(str(tmp_path / "program.yaml"))
    with pytest.raises(ConfigError, match="no top-level 'program:' key"):
        load_program(write(tmp_path, ""))


def test_broken_yaml_gives_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"program\.yaml \(line 4\): not valid YAML"):
        load_program(write(tmp_path, "program:\n  name: p\n  accrual: {percent: '5'\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file") as caught:
        load_program(tmp_path / "absent.yaml")
    assert str(caught.value).startswith(str(tmp_path / "absent.yaml"))


def test_defaults_make_a_program_that_earns_nothing() -> None:
    program = Program(name="minimal")
    assert (program.accrual.percent, program.accrual.rounding, program.expiry_days) == (
        Decimal(0),
        "floor",
        0,
    )

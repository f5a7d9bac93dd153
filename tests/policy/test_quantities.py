from __future__ import annotations

from decimal import Decimal

import pytest
from gpulab.hub.policy import (
    cpu_millicores,
    format_bytes,
    format_duration,
    parse_duration,
    parse_quantity,
    quantity_bytes,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        (120, 120),
        ("45", 45),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["1 hour", "-5s", -1, True, "h", "1.5h"])
def test_parse_duration_refuses(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_round_trips():
    assert format_duration(5400) == "1h30m"
    assert parse_duration(format_duration(93784)) == 93784


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8Gi", Decimal(8 * 2**30)),
        ("500m", Decimal("0.5")),
        ("1e3", Decimal(1000)),
        ("1.5", Decimal("1.5")),
        ("2k", Decimal(2000)),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["8GB", "Gi", "1.2.3", "", "1 Gi"])
def test_parse_quantity_refuses(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_quantity_bytes_rounds_up():
    assert quantity_bytes("1500m") == 2
    assert quantity_bytes("64Mi") == 64 * 2**20


def test_cpu_millicores():
    assert (cpu_millicores("500m"), cpu_millicores(2), cpu_millicores("1.5")) == (500, 2000, 1500)


def test_format_bytes():
    assert (format_bytes(8 * 2**30), format_bytes(1000)) == ("8Gi", "1000")

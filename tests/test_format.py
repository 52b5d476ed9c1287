"""workbench.format: one unit rule for every face (binary sizes labelled so; latency axes in the
unit the table prints)."""
from __future__ import annotations

import math

import pytest

from workbench import format as fmt


@pytest.mark.parametrize("value, text", [
    (None, "—"), (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (400_000, "390.62 KiB"),
    (1_500_000, "1.43 MiB"), (2 * 2 ** 30, "2.00 GiB"), (5 * 2 ** 40, "5.00 TiB"), (-2048, "-2.00 KiB"),
])
def test_sizes_are_binary_and_say_so(value, text):
    assert fmt.nbytes(value) == text


def test_no_decimal_size_units_anywhere():
    for exponent in range(0, 50, 3):
        text = fmt.nbytes(2 ** exponent + 7)
        assert text.split()[-1] in ("B", "KiB", "MiB", "GiB", "TiB"), text


@pytest.mark.parametrize("value, unit, factor", [
    (0, "B", 1.0), (1023, "B", 1.0), (1024, "KiB", 2 ** -10), (3 * 2 ** 20, "MiB", 2 ** -20),
    (2 ** 31, "GiB", 2 ** -30),
])
def test_bytes_unit_is_the_unit_nbytes_prints(value, unit, factor):
    assert fmt.bytes_unit(value) == (pytest.approx(factor), unit)
    assert fmt.nbytes(value).endswith(unit)


@pytest.mark.parametrize("value, text", [
    (None, "—"), (0.00802, "8.0 µs"), (0.799, "799.0 µs"), (1.0, "1.00 ms"), (2, "2.00 ms"),
    (10.38, "10.38 ms"), (100, "100.0 ms"), (999.9, "999.9 ms"), (1000, "1.00 s"), (1234.5, "1.23 s"),
    (12_345, "12.35 s"), (123_456, "123.5 s"),
])
def test_latency_text(value, text):
    assert fmt.ms(value) == text


@pytest.mark.parametrize("values, factor, unit", [
    ([0.00802, 0.0061], 1e3, "µs"),       # the table says 8.0 µs: so does the axis
    ([0.4, 0.99], 1e3, "µs"),
    ([0.5, 3.0], 1.0, "ms"),              # the largest value decides: 3.00 ms reads in ms
    ([8.3, 111.8], 1.0, "ms"),
    ([250.0, 1500.0], 1e-3, "s"),
    ([], 1.0, "ms"),
    ([None, math.nan, math.inf, 0.002], 1e3, "µs"),     # missing and non-finite values are ignored
])
def test_latency_axis_unit_matches_the_table(values, factor, unit):
    assert fmt.latency_axis_unit(values) == (pytest.approx(factor), unit)


def test_axis_ticks_read_like_the_table():
    """A value on an axis scaled by latency_axis_unit reads the same number as fmt.ms prints."""
    for value in (0.00802, 0.5, 7.25, 42.0, 2500.0):
        factor, unit = fmt.latency_axis_unit([value])
        number, printed_unit = fmt.ms(value).split()
        assert printed_unit == unit
        assert float(number) == pytest.approx(value * factor, rel=5e-3)

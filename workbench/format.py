"""Human-readable numbers, shared by the CLI, the GUI and the reports."""
from __future__ import annotations


# One unit rule for every face: latencies in µs below 1 ms and in s from 1000 ms; sizes in binary
# units, labelled so (1 MiB = 2**20 bytes), never a decimal "MB".
LATENCY_UNITS = (("µs", 1e3), ("ms", 1.0), ("s", 1e-3))     # unit, factor from milliseconds
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def latency_unit(value_ms: float) -> tuple[float, str]:
    """(factor from ms, unit) that ``ms`` uses for this latency: µs below 1 ms, s from 1000 ms."""
    magnitude = abs(value_ms)
    if magnitude < 1:
        return LATENCY_UNITS[0][1], LATENCY_UNITS[0][0]
    if magnitude >= 1000:
        return LATENCY_UNITS[2][1], LATENCY_UNITS[2][0]
    return LATENCY_UNITS[1][1], LATENCY_UNITS[1][0]


def latency_axis_unit(values_ms) -> tuple[float, str]:
    """(factor from ms, unit) for an axis of these latencies: the unit ``ms`` gives the largest
    finite one, so an axis reads like the table beside it (8.0 µs in the table, µs on the axis)."""
    finite = [abs(float(v)) for v in values_ms if v is not None and float(v) == float(v)
              and abs(float(v)) != float("inf")]
    return latency_unit(max(finite)) if finite else (1.0, "ms")


def ms(value: float | None) -> str:
    """A latency with 3-4 significant digits, trailing zeros kept (2.00 ms, 10.38 ms, 799.0 µs, 1.25 s):
    the same text in the CLI, the GUI and the reports."""
    if value is None:
        return "—"
    factor, unit = latency_unit(value)
    if unit == "µs":
        return f"{value * factor:.1f} µs"
    return f"{_significant(value * factor)} {unit}"


def _significant(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:#.3g}"


def bytes_unit(value: float) -> tuple[float, str]:
    """(factor from bytes, binary unit) that ``nbytes`` uses for this size."""
    factor = 1.0
    for unit in BYTE_UNITS:
        if abs(value) * factor < 1024 or unit == BYTE_UNITS[-1]:
            return factor, unit
        factor /= 1024
    return factor, BYTE_UNITS[-1]


def nbytes(value: float | None) -> str:
    """A size in binary units, labelled so: 512 B, 390.62 KiB, 1.43 MiB, 2.00 GiB."""
    if value is None:
        return "—"
    factor, unit = bytes_unit(value)
    return f"{value:.0f} B" if unit == "B" else f"{value * factor:.2f} {unit}"


def count(value: float | None) -> str:
    if value is None:
        return "—"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None, fmt: str = ".3g", unit: str = "") -> str:
    return "—" if value is None else f"{value:{fmt}}{unit}"


def ci(pair, formatter=ms) -> str:
    if not pair:
        return "—"
    return f"[{formatter(pair[0])}, {formatter(pair[1])}]"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain monospace table (no dependencies; copy-pastes into issues and chats)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)

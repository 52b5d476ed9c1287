"""Human-readable numbers, shared by the CLI, the GUI and the reports."""
from __future__ import annotations


def ms(value: float | None) -> str:
    """A latency with 3-4 significant digits, trailing zeros kept (2.00 ms, 10.38 ms, 799.0 µs):
    the same text in the CLI, the GUI and the reports."""
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.1f} ms"
    if value >= 10:
        return f"{value:.2f} ms"
    if value >= 1:
        return f"{value:#.3g} ms"
    return f"{value * 1000:.1f} µs"


def nbytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return str(value)


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

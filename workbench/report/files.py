"""Writing a report file: whole or not at all (written beside, then renamed), one-line errors."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import WorkbenchError


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder; returns the resolved path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise WorkbenchError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return path.resolve()

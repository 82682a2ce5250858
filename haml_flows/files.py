"""Files written whole or not at all: a temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, content: str | Callable[[Path], None]) -> Path:
    """Write ``content`` (text, or a function writing to the path it is given) to ``path``.

    A reader never sees a half-written file, and a failure leaves the old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        if isinstance(content, str):
            with os.fdopen(fd, "w", newline="") as handle:
                handle.write(content)
        else:
            os.close(fd)
            content(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

"""Writing a benchmark's section into docs/performance.md."""

from __future__ import annotations

from pathlib import Path

PERFORMANCE_DOC = Path(__file__).resolve().parents[1] / "docs/performance.md"


def write_section(text: str, heading: str, path: Path = PERFORMANCE_DOC) -> None:
    """Replace the section that starts with ``heading``, keeping the others."""
    old = path.read_text() if path.exists() else "# Performance\n\n"
    if heading in old:
        head, rest = old.split(heading, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        new = head + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def machine_note(quiet: bool) -> str:
    """What ran beside a benchmark, as its section says it."""
    return "quiet machine" if quiet else "other work on the machine"


def publish(text: str, heading: str, *, write: bool = True) -> None:
    """Print a benchmark's section and, unless ``write`` is false, put it in the doc."""
    print(text)
    if write:
        write_section(text, heading)

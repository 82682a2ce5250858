"""MLIP-written reference files, taken from motep's source distribution on PyPI.

motep's test suite ships a level-10, 3-species potential trained by MLIP
(``fitting/crystals/multi/10/pot.mtp``), its 1,001-configuration training set
(``original/crystals/multi/training.cfg``) and the ``out.cfg`` that MLIP-3's
``calculate_grade`` wrote for it (``MV_grade`` per configuration, 6 decimals;
see motep's ``tests/data_path/fitting/crystals/1.calc_nbh_grades.sh``). The
files are read from the sdist on PyPI (checked by its SHA-256) into a cache,
never copied into this repository.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import urllib.request
from pathlib import Path

SDIST = "motep-0.2.0.tar.gz"
SHA256 = "80380270b910550cc96dcd6fc966ecc01ba0ef8008f26ecf59ece839f82b624a"
INDEX = "https://pypi.org/simple/motep/"
ROOT = "motep-0.2.0/tests/data_path/"
MEMBERS = {
    "pot.mtp": ROOT + "fitting/crystals/multi/10/pot.mtp",
    "out.cfg": ROOT + "fitting/crystals/multi/10/out.cfg",
    "training.cfg": ROOT + "original/crystals/multi/training.cfg",
}


def cache_dir() -> Path:
    """Where the extracted files live (``HAML_PUBLIC_DATA_DIR`` or ~/.cache)."""
    base = os.environ.get("HAML_PUBLIC_DATA_DIR")
    return Path(base) if base else Path.home() / ".cache" / "haml-flows" / "public-data"


def _download(target: Path) -> None:
    with urllib.request.urlopen(INDEX, timeout=60) as response:
        page = response.read().decode()
    match = re.search(rf'href="([^"#]*{re.escape(SDIST)})#sha256={SHA256}"', page)
    if match is None:
        raise RuntimeError(f"{INDEX} lists no {SDIST} with sha256 {SHA256}")
    tmp = target.with_suffix(".part")
    with urllib.request.urlopen(match.group(1), timeout=300) as response:
        tmp.write_bytes(response.read())
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if digest != SHA256:
        tmp.unlink()
        raise RuntimeError(f"{SDIST}: sha256 {digest}, expected {SHA256}")
    tmp.replace(target)


def mlip_multi10() -> dict[str, Path]:
    """Paths of pot.mtp, out.cfg and training.cfg (downloaded on first use)."""
    folder = cache_dir() / "motep-0.2.0-multi-10"
    paths = {name: folder / name for name in MEMBERS}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    archive = cache_dir() / SDIST
    if not archive.exists() or hashlib.sha256(archive.read_bytes()).hexdigest() != SHA256:
        _download(archive)
    with tarfile.open(archive) as tar:
        for name, member in MEMBERS.items():
            handle = tar.extractfile(member)
            if handle is None:
                raise RuntimeError(f"{SDIST} has no file {member}")
            tmp = paths[name].with_suffix(".part")
            tmp.write_bytes(handle.read())
            tmp.replace(paths[name])
    return paths

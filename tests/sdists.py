"""The source distributions the working-copy and bisect tests build from.

Fetched once by the Makefile (`make fixtures`, before the tests), from the
package index's simple API with its published sha256 checked, so the tests
themselves never reach for the network to get them. Run as
`python -m tests.sdists` to fetch what is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path(os.environ.get("HARNESS_CACHE", ROOT / ".harness-cache")) / "sdists"
INDEX = "https://pypi.org/simple"
WANTED = [("uvicorn", "0.11.3"), ("uvicorn", "0.12.3"), ("uvicorn", "0.54.0")]


def path_of(name: str, version: str) -> Path:
    return FOLDER / f"{name}-{version}.tar.gz"


def fetch(name: str, version: str) -> Path:
    final = path_of(name, version)
    if final.is_file():
        return final
    page = urllib.request.urlopen(f"{INDEX}/{name}/", timeout=60).read().decode()
    links = [u for u in re.findall(r'href="([^"]+)"', page)
             if u.split("#")[0].endswith(f"/{final.name}")]
    if not links:
        raise SystemExit(f"{final.name} is not on {INDEX}/{name}/")
    url, _, fragment = links[0].partition("#")
    data = urllib.request.urlopen(url, timeout=120).read()
    want = fragment.removeprefix("sha256=")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise SystemExit(f"{final.name}: sha256 mismatch (got {hashlib.sha256(data).hexdigest()})")
    FOLDER.mkdir(parents=True, exist_ok=True)
    part = final.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, final)
    return final


def unpack(name: str, version: str, into: Path) -> Path:
    """The sdist's top folder, unpacked under `into`; a clear failure if it was never
    fetched (never a skip: the Makefile fetches it before the tests)."""
    archive = path_of(name, version)
    assert archive.is_file(), (f"{archive} is missing: run `make fixtures` (make test does) "
                               "to fetch the source distributions the tests build from")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"{name}-{version}"


if __name__ == "__main__":
    for wanted in WANTED:
        print(fetch(*wanted), file=sys.stderr)

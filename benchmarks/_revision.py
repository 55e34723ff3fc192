"""An older revision of the package, for benchmarks that time our code then and now."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_src(rev: str, dest: Path) -> Path:
    """``src/`` of git revision ``rev`` extracted under ``dest`` (put it on PYTHONPATH)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"

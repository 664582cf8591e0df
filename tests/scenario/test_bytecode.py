"""The runner compiles the sources once, where they lie, so that agents read bytecode
even where Python may not write it (PYTHONDONTWRITEBYTECODE)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from fedorch.scenario.bytecode import warm


def test_warm_writes_bytecode_that_a_process_not_writing_any_then_reads(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "mod.py"
    source.write_text("VALUE = 42\n")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert not cached.exists()

    assert warm(package)
    assert cached.exists()

    # The source changed under the same size and mtime: a child that reads the cached
    # bytecode sees the old value; one that compiled the source would see the new one.
    stat = source.stat()
    source.write_text("VALUE = 43\n")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", "import pkg.mod as m; print(m.VALUE)"],
                         env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    assert out == ["42"]


def test_warm_reports_a_package_it_cannot_compile(tmp_path: Path):
    (tmp_path / "broken.py").write_text("def (:\n")
    assert not warm(tmp_path)

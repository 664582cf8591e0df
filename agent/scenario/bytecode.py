"""Compile fedorch's sources once per run, not once per agent.

An agent process imports about 150 fedorch modules before it serves. Where Python may
not write bytecode (PYTHONDONTWRITEBYTECODE, common in containers and CI), every agent
compiles all of them again, every time: measured on the 2-core machine, about 0.25 s of
the ~1 s of CPU an agent took to serve, paid by every agent of every scenario (50 at
once in the join storm). So before the agents start, the runner compiles the package
in place, as `python -m compileall` does (the __pycache__ folders beside the sources,
which git ignores); agents read that bytecode whatever the setting, and write none.
Compiling what is already compiled only compares timestamps: a few milliseconds.

A pycache prefix (PYTHONPYCACHEPREFIX) was tried instead, to leave the source tree
alone: it moves the lookup of *every* module's bytecode there, the standard library's
and the installed packages' too, so the agents compiled more, not less.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import fedorch


def warm(package: Path | None = None) -> bool:
    """Compile the fedorch package (or `package`) where it lies; False when it could not
    be written (a read-only install: the agents then compile as before)."""
    package = package if package is not None else Path(fedorch.__file__).parent
    try:
        return bool(compileall.compile_dir(package, quiet=2))
    except OSError:
        return False

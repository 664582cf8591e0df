"""What the node engine says when node.db cannot be written, and how it tells.

A write that fails for the storage (disk full, I/O error, read-only file system:
SQLite's storage error codes, `is_storage_fault`) does not stop the agent: the writes
are kept and retried, and what waits on them held (write_behind.py). The agent stops
only when that cannot go on: past write_behind's bound of kept writes and held effects
(a disk that does not come back), the storage error is raised as it is, the driver
stops, and the daemon exits 1 with the one line `stop_reason` makes. Every turn that
was acknowledged is in node.db (the turns kept in memory were not acknowledged: their
effects were held), so a supervisor (systemd's `Restart=on-failure`, the compose
file's `restart:`) starts the agent again and the Node is restored from node.db. A
start on a disk that will not let node.db or agent.db be read stops with one line
saying to free space, and judges no file (identity.py, store/database.py).
"""

from __future__ import annotations

from pathlib import Path

from fedorch.runtime.store.store import is_storage_fault

__all__ = ["is_storage_fault", "stop_reason"]


def stop_reason(path: Path, error: BaseException) -> str:
    """One line: the file, what SQLite said, what was kept, what to do."""
    said = " ".join(str(error).split()) or type(error).__name__
    return (f"{path}: a write failed ({said}); the turn was rolled back, nothing it held"
            " was acknowledged, and node.db keeps everything that was: free space or mend"
            " the disk, then start the agent again (it resumes from node.db)")

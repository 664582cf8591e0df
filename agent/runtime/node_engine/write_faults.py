"""What the node engine says when a write to node.db fails for the storage.

A turn's transaction that fails (disk full, I/O error, read-only file system) is rolled
back whole by SqliteDurable: node.db is as it was before the turn. The driver then
stops for good, since its Node has stepped the turn's inputs and no longer matches the
file; nothing of the turn has been acknowledged (the messages that wait for the write,
the step starts and the status changes are done only after it; the submissions of the
turn were not yet answered). So the agent stops, and the daemon exits 1 with the one
line `stop_reason` makes: a supervisor (systemd's `Restart=on-failure`, the compose
file's `restart:`) starts it again, and the new Node is restored from node.db, which
holds every turn that was acknowledged. While the disk stays full the restart stops the
same way, with the same line.
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

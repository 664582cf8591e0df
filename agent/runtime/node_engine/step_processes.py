"""The node engine's step processes: their groups on record, and what an earlier life left.

Theory of operation
-------------------
Two lines keep a step's processes from outliving the agent that started them:

1. The command executor (runtime/executors/command.py) runs every attempt in a process
   group of its own whose leader, the step guard (step_guard.py), holds a parent-death
   signal (PR_SET_PDEATHSIG): when the agent dies, even by SIGKILL, the kernel signals
   the guard and the guard kills its whole group. Every process of the attempt carries
   its run marker (`STEP_RUN_ENV`: domain/workflow/step/attempt) in its environment.
2. A restarted agent stops what the first line missed (the agent died while the guard
   was arming its signal; a program that left its group): before the Node is restored
   from node.db, `stop_leftovers` finds every attempt recorded as started without a
   result (`started_without_result`) and kills, by its run marker, every process still
   carrying it, and its process group when a marked process is in the group on record
   (runtime/executors/leftovers.py). Only then does the Node resolve those attempts by
   its own rule (core/node/running.py: run again when the step is idempotent and has
   attempts left, else FAILED "interrupted by an agent restart"), so a retry never runs beside
   what is left of the attempt it replaces.

Why the run marker is enough to find an attempt, and the group is kept on the side.
The Node writes an attempt's start (`Disk.runs`: workflow, step, attempt) in node.db
and hands it out to start only once that transaction is committed: every attempt that
has a process has its start on disk, so its marker is known to the next life without
anything written after the fork. The process group id exists only after the fork, so
it cannot be written before the process starts; `StepGroups` keeps it in a side file
per running attempt (`<data_dir>/step_groups/`), written once the group exists and
removed once the attempt's processes are gone. It is written without fsync, and that
is safe: it matters only while processes it names may still live, that is only after
the agent process died and its machine did not; a file written by a process that is
then killed is in the page cache, read by the next life. After a reboot the file may be
lost, but then so are the processes. A file lost or torn (the agent killed in the
middle: it is written to a temporary name and renamed) costs only the group kill of
that attempt; its marked processes are still found. A group id on record alone is not
proof (ids are reused): a group is killed only when a process in it carries the
attempt's marker.

Markers are exact (workflow ids are unique), so another agent's steps on the same
machine, of the same domain name in another federation, are never touched; a marker of
this life is never among them, as nothing of this life has started yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from fedorch.core.node.records import Disk
from fedorch.runtime.executors.leftovers import Leftover, kill_leftovers, run_marker

__all__ = ["GROUPS_DIR", "StepGroups", "started_without_result", "stop_leftovers"]

log = logging.getLogger("fedorch.node_engine")

GROUPS_DIR = "step_groups"  # under the data dir: one file per attempt with a process group

Run = tuple[str, str, int]


class StepGroups:
    """The process group of each attempt whose processes may be running, one small file
    each (see the header for why a side file, and why no fsync)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._recorded: set[str] = set()  # markers with a file written by this life

    def _path(self, marker: str) -> Path:
        return self.directory / f"{hashlib.sha256(marker.encode()).hexdigest()[:32]}.json"

    def record(self, marker: str, pgid: int) -> None:
        """Keep `pgid` for the attempt named by `marker`. A write that fails is logged
        and ignored: the marker alone still finds the attempt's processes."""
        path = self._path(marker)
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"marker": marker, "pgid": pgid}))
            os.replace(temporary, path)  # whole or absent, even if killed meanwhile
        except OSError as e:
            log.warning("cannot record the process group of step attempt %s (%s); a"
                        " restart still finds its processes by their marker", marker, e)
            return
        self._recorded.add(marker)

    def forget(self, marker: str) -> None:
        """The attempt's processes are gone: its file goes too."""
        if marker not in self._recorded:
            return  # none written (an executor that starts no process): no syscall
        self._recorded.discard(marker)
        try:
            self._path(marker).unlink(missing_ok=True)
        except OSError as e:  # a stale file costs a restart one look for a gone marker
            log.warning("cannot remove the process group record of %s: %s", marker, e)

    def recorded(self) -> dict[str, int]:
        """marker -> process group, from the files an earlier life left (a torn or
        foreign file is skipped)."""
        found: dict[str, int] = {}
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return found
        for path in paths:
            try:
                entry = json.loads(path.read_text())
                marker, pgid = entry["marker"], entry["pgid"]
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if isinstance(marker, str) and type(pgid) is int and pgid > 1:
                found[marker] = pgid
        return found

    def clear(self) -> None:
        """Every file of an earlier life, once what they named was stopped."""
        self._recorded.clear()
        try:
            paths = list(self.directory.iterdir())
        except OSError:
            return
        for path in paths:
            if path.suffix in (".json", ".tmp"):
                try:
                    path.unlink(missing_ok=True)
                except OSError as e:
                    log.warning("cannot remove %s: %s", path, e)


def started_without_result(disk: Disk) -> list[Run]:
    """The attempts `disk` records as started and not ended: for each step, its latest
    attempt on record, unless a result of that attempt (or a later one) is on record.
    An earlier attempt of a step ended before the next one started, so it is not
    counted. Those of an ended workflow count too: its end stopped them only if the
    agent lived to do it."""
    latest: dict[tuple[str, str], int] = {}
    for wf, step, attempt in disk.runs:
        if attempt > latest.get((wf, step), 0):
            latest[(wf, step)] = attempt
    unfinished = []
    for (wf, step), attempt in latest.items():
        result = disk.results.get(wf, {}).get(step)
        if result is None or result[0] < attempt:
            unfinished.append((wf, step, attempt))
    return sorted(unfinished)


def stop_leftovers(domain: str, disk: Disk, groups: StepGroups, *,
                   kill: Callable[[Mapping[str, int | None]], Iterable[Leftover]]
                   = kill_leftovers) -> list[Leftover]:
    """At start-up, before the Node is restored from `disk`: kill what is left of every
    attempt recorded as started without a result, and of every attempt a group file
    names; then drop the group files. Returns the processes found (and killed)."""
    recorded = groups.recorded()
    unfinished = started_without_result(disk)
    wanted: dict[str, int | None] = {
        run_marker(domain, wf, step, attempt): None for wf, step, attempt in unfinished}
    wanted.update(recorded)  # a file of an attempt past its record (compacted) counts too
    killed = list(kill(wanted)) if wanted else []
    for x in killed:
        log.warning("stopped process %d (group %d) left by step attempt %s of an earlier"
                    " run of this agent", x.pid, x.pgid, x.marker)
    if unfinished or killed:
        log.info("%d step attempts recorded as started without a result; %d leftover"
                 " processes stopped", len(unfinished), len(killed))
    groups.clear()
    return killed

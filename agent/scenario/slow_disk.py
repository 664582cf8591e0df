"""Slow disks for agent processes: an LD_PRELOAD shim that delays fsync and fdatasync.

An agent's durability is its fsyncs (SQLite in WAL mode with synchronous=FULL: every
commit, every vote, is an fdatasync), so a disk that takes long to make writes durable
is a disk whose syncs take long. The shim wraps fsync and fdatasync: before calling the
real one it sleeps the number of microseconds written in the file
$FEDORCH_SLOW_DISK_FILE names (read on every call, so a runner slows a disk down or
speeds it up again by rewriting the file), and it keeps a count of the delayed calls and
the time they slept in $FEDORCH_SLOW_DISK_STATS ("CALLS MICROSECONDS"), replaced whole
(written aside, then renamed) so a reader never sees it half written.

Chosen over a FUSE layer or a device-mapper delay target: it needs no privileges, no
kernel module and no package beyond the system C compiler, and it delays exactly what
makes a write durable (reads and buffered writes stay fast, as on a real disk with a
slow flush). It is built at first use into the run's work dir; where there is no C
compiler, a scenario with slow_disk is refused before anything starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["SlowDiskUnavailable", "build_shim", "compiler", "read_stats", "set_delay",
           "shim_env"]

DELAY_ENV = "FEDORCH_SLOW_DISK_FILE"
STATS_ENV = "FEDORCH_SLOW_DISK_STATS"
COMPILE_TIMEOUT_S = 60

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long calls, slept_us;

/* The delay is read on every call: the runner changes it while the agent runs. */
static long delay_us(void) {
    const char *path = getenv("FEDORCH_SLOW_DISK_FILE");
    if (!path) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

static void delay(void) {
    long us = delay_us();
    if (us <= 0) return;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {}
    const char *stats = getenv("FEDORCH_SLOW_DISK_STATS");
    pthread_mutex_lock(&stats_lock);
    calls += 1;
    slept_us += (unsigned long long)us;
    if (stats) {
        /* Written whole to a file of its own, then renamed over the stats file: a
           runner reading it meanwhile sees the last line or this one, never the empty
           file that truncating it in place would show for a moment (read as 0). */
        char tmp[4096];
        int n = snprintf(tmp, sizeof tmp, "%s.%d.tmp", stats, (int)getpid());
        int fd = n > 0 && n < (int)sizeof tmp
            ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd >= 0) {
            char line[64];
            int len = snprintf(line, sizeof line, "%llu %llu\n", calls, slept_us);
            int ok = write(fd, line, (size_t)len) == len;
            close(fd);
            if (!ok || rename(tmp, stats) != 0) unlink(tmp);
        }
    }
    pthread_mutex_unlock(&stats_lock);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    delay();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    delay();
    return real(fd);
}
"""


class SlowDiskUnavailable(Exception):
    """The shim cannot be built here (no C compiler, or it did not compile)."""


def compiler() -> str:
    """The system C compiler ($CC, else cc or gcc), or "" when there is none."""
    for candidate in (os.environ.get("CC", ""), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate) or ""
    return ""


def build_shim(directory: Path) -> Path:
    """Compile the shim into DIRECTORY/slowdisk.so (once) and return its path."""
    target = directory / "slowdisk.so"
    if target.exists():
        return target
    cc = compiler()
    if not cc:
        raise SlowDiskUnavailable("slow_disk needs a C compiler (cc) to build its "
                                  "LD_PRELOAD shim: apt-get install gcc")
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "slowdisk.c"
    source.write_text(SOURCE)
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(target), str(source),
                           "-ldl", "-lpthread"], capture_output=True, text=True,
                          timeout=COMPILE_TIMEOUT_S)
    if done.returncode != 0:
        raise SlowDiskUnavailable(f"the slow_disk shim did not compile: "
                                  f"{done.stderr.strip()[:500]}")
    return target


def shim_env(shim: Path, delay_file: Path, stats_file: Path) -> dict[str, str]:
    """The environment that starts a process with its syncs delayed per `delay_file`
    (LD_PRELOAD is joined with any other preload by the caller)."""
    return {"LD_PRELOAD": str(shim), DELAY_ENV: str(delay_file), STATS_ENV: str(stats_file)}


def set_delay(delay_file: Path, seconds: float) -> None:
    """Delay every sync of whoever reads `delay_file` by `seconds` from now on (written
    whole, then renamed: the file is read on every sync)."""
    if seconds < 0:
        raise ValueError("a disk delay cannot be negative")
    tmp = delay_file.with_suffix(".tmp")
    tmp.write_text(f"{round(seconds * 1_000_000)}\n")
    os.replace(tmp, delay_file)


def read_stats(stats_file: Path) -> tuple[int, float]:
    """(syncs delayed, seconds slept) so far; (0, 0.0) before the first delayed sync."""
    try:
        calls, slept_us = stats_file.read_text().split()
        return int(calls), int(slept_us) / 1_000_000
    except (OSError, ValueError):
        return 0, 0.0

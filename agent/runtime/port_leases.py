"""Ports for local agents that no other fedorch process on this machine hands out too.

Why leases and not "bind port 0, read it, close it": a port picked that way is free
only at the moment of the pick; the agent binds it later, and in between another
process (a parallel test worker, a second `fedorch demo`, a benchmark) may take it,
so the agent exits with "Address already in use". Restarting such an agent on new ports
was the other option, but its peers' seed lists already name its old address when
several agents start together, so a retry would have to rewrite and restart them too.
A lease removes the race among fedorch's own processes instead:

- ports come from a fixed range (20000–29999) below the OS's ephemeral range (Linux:
  32768–60999), so outgoing connections of any process never get one of them
  implicitly;
- a port is leased by taking `fcntl.flock(LOCK_EX | LOCK_NB)` on
  `<tmp>/fedorch-ports/<port>.lock`; two processes (or two threads of one process: each
  `open` is its own file description) never hold the same lock, and the kernel drops the
  lock when the holder dies, so a crashed process leaks nothing;
- a leased port is then bound once (without SO_REUSEADDR) to check nobody outside
  fedorch listens there or left it in TIME_WAIT; a port that fails the check is skipped;
- the lease is kept until `release_ports` or the end of the process, i.e. for at least
  the lifetime of the agents started on it (agents restarted on the same address keep
  their port).

What this does not prevent: a process that does not take these locks (anything other
than fedorch, or a fedorch agent configured by hand) binding a port in the range after
the check. The range is away from the ephemeral ports, so only a program that binds
explicit ports there can collide; then the agent still exits with "Address already in
use" and the supervisor reports it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

PORT_RANGE = range(20000, 30000)
LOCK_DIR = Path(tempfile.gettempdir()) / "fedorch-ports"


class NoFreePortError(Exception):
    """The range has fewer free, unleased ports than asked for."""


_held_lock = threading.Lock()
# (lock dir, port) -> fd of its lock file, open until released or this process ends
_held: dict[tuple[Path, int], int] = {}


def _lock_port(port: int, lock_dir: Path) -> int | None:
    """The fd holding `port`'s lock, or None when another holder has it (or it is unusable)."""
    try:
        lock_dir.mkdir(mode=0o777, parents=True, exist_ok=True)
        # O_RDONLY: flock needs no write access, so lock files made by another user work.
        fd = os.open(lock_dir / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _binds(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def lease_ports(
    count: int,
    host: str = "127.0.0.1",
    *,
    port_range: Sequence[int] = PORT_RANGE,
    lock_dir: Path = LOCK_DIR,
) -> list[int]:
    """`count` distinct ports, each locked for this process and free when checked."""
    candidates = list(port_range)
    random.shuffle(candidates)  # parallel processes rarely probe the same ports first
    leased: list[int] = []
    for port in candidates:
        if len(leased) == count:
            break
        with _held_lock:
            if (lock_dir, port) in _held:
                continue
        fd = _lock_port(port, lock_dir)
        if fd is None:
            continue
        if not _binds(port, host):
            os.close(fd)  # taken by someone outside fedorch: let the lock go, skip it
            continue
        with _held_lock:
            _held[lock_dir, port] = fd
        leased.append(port)
    if len(leased) < count:
        release_ports(leased, lock_dir=lock_dir)
        raise NoFreePortError(
            f"only {len(leased)} of {count} ports free among {len(candidates)} candidates"
        )
    return leased


def release_ports(ports: Sequence[int], *, lock_dir: Path = LOCK_DIR) -> None:
    """Give up the leases on `ports` (those not leased by this process are ignored)."""
    with _held_lock:
        fds = [_held.pop((lock_dir, port)) for port in ports if (lock_dir, port) in _held]
    for fd in fds:
        os.close(fd)  # closing the only fd of the file description drops the flock


def leased_ports(lock_dir: Path = LOCK_DIR) -> set[int]:
    with _held_lock:
        return {port for held_dir, port in _held if held_dir == lock_dir}

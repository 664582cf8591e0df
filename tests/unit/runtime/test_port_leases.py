"""Port leases: no two holders (threads or processes) get the same port, and a port
another socket listens on is never handed out.

The candidate ports of each test are first leased from the machine-wide lock directory,
so parallel fedorch processes (other test workers) never use them meanwhile; the test
then leases among them again in its own lock directory.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedorch.runtime import port_leases
from fedorch.runtime.port_leases import NoFreePortError, lease_ports, release_ports
from fedorch.runtime.supervisor import SupervisorError, pick_free_ports

CHILD = """
import sys
from pathlib import Path
from fedorch.runtime.port_leases import lease_ports
candidates = [int(p) for p in sys.argv[3].split(",")]
ports = lease_ports(int(sys.argv[2]), port_range=candidates, lock_dir=Path(sys.argv[1]))
print(",".join(map(str, ports)), flush=True)
sys.stdin.read()  # hold the leases until the test closes our stdin
"""


@pytest.fixture
def reserved() -> Iterator[list[int]]:
    ports = lease_ports(60)
    yield ports
    release_ports(ports)


def test_supervisor_ports_are_leased_distinct_and_in_range() -> None:
    ports = pick_free_ports(5)
    try:
        assert len(set(ports)) == 5
        assert all(port in port_leases.PORT_RANGE for port in ports)
        assert set(ports) <= port_leases.leased_ports()
    finally:
        release_ports(ports)
    assert not set(ports) & port_leases.leased_ports()


def test_two_processes_asking_at_once_never_share_a_port(
    reserved: list[int], tmp_path: Path
) -> None:
    candidates = ",".join(map(str, reserved))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), "28", candidates],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        got = []
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            assert line, f"child {child.pid} printed no ports"
            got.append({int(p) for p in line.split(",")})
        assert len(got[0]) == len(got[1]) == 28
        assert not got[0] & got[1]
        assert got[0] | got[1] <= set(reserved)
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def test_two_threads_asking_at_once_never_share_a_port(reserved: list[int], tmp_path: Path) -> None:
    results: list[list[int]] = []
    start = threading.Barrier(2)

    def ask() -> None:
        start.wait(timeout=10)
        results.append(lease_ports(30, port_range=reserved, lock_dir=tmp_path))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert len(results) == 2
        assert not set(results[0]) & set(results[1])
        assert set(results[0]) | set(results[1]) == set(reserved)
        with pytest.raises(NoFreePortError):
            lease_ports(1, port_range=reserved, lock_dir=tmp_path)
    finally:
        for ports in results:
            release_ports(ports, lock_dir=tmp_path)


def test_a_port_another_socket_listens_on_is_never_handed_out(
    reserved: list[int], tmp_path: Path
) -> None:
    candidates = reserved[:3]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", candidates[0]))
        listener.listen()
        got = lease_ports(2, port_range=candidates, lock_dir=tmp_path)
        try:
            assert sorted(got) == sorted(candidates[1:])
            with pytest.raises(NoFreePortError):
                lease_ports(1, port_range=candidates, lock_dir=tmp_path)
        finally:
            release_ports(got, lock_dir=tmp_path)


def test_a_released_port_can_be_leased_again(reserved: list[int], tmp_path: Path) -> None:
    [port] = lease_ports(1, port_range=reserved[:1], lock_dir=tmp_path)
    with pytest.raises(NoFreePortError):
        lease_ports(1, port_range=reserved[:1], lock_dir=tmp_path)
    release_ports([port], lock_dir=tmp_path)
    assert lease_ports(1, port_range=reserved[:1], lock_dir=tmp_path) == [port]
    release_ports([port], lock_dir=tmp_path)


def test_running_out_is_a_supervisor_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(port_leases, "PORT_RANGE", range(0))
    monkeypatch.setattr(
        "fedorch.runtime.supervisor.lease_ports",
        lambda count, host: lease_ports(count, host, port_range=[]),
    )
    with pytest.raises(SupervisorError):
        pick_free_ports(1)

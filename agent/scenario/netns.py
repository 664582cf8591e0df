"""The netns runner (root): each domain in a network namespace of its own.

Layout, all made for one run and deleted after it: a hub namespace holding a bridge;
per domain a namespace whose eth0 (one end of a veth pair, the other end on the bridge)
has its own address in a /24 of 10.231.0.0/16 picked for this run; and one veth pair
from this (the runner's) namespace to the bridge, so that the runner can reach every
agent to submit work and read views. Nothing of it routes anywhere else.

Partitions are real: `partition [a, b] from [c]` adds blackhole routes in a's and b's
namespaces for c's address and in c's for theirs, so packets between the sides are
dropped (as by a failed link), while the runner still reaches every side. `heal` deletes
them. kill, stop, cont and restart are signals, as in the process runner.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
from pathlib import Path

from fedorch.runtime.supervisor import deferred_interrupts, stop_agents
from fedorch.scenario.model import LoadedScenario
from fedorch.scenario.netns_check import NetnsUnavailable, netns_problem
from fedorch.scenario.process import ProcessFederation, UnsupportedFault

AGENT_PORT = 7100
SUPERNET = ipaddress.ip_network("10.231.0.0/16")
IP_TIMEOUT_S = 20


def ip(*args: str) -> str:
    """Run one `ip` command; raise with its stderr when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if done.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _used_subnets() -> set[ipaddress.IPv4Network]:
    """Subnets routed in this namespace: a run must not take one already in use."""
    used = set()
    for line in ip("-4", "route", "show").splitlines():
        word = line.split()[0] if line.split() else ""
        try:
            used.add(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return used


RUNNER = "scenario-runner"


class NetnsFederation(ProcessFederation):
    name = "netns"
    supported = frozenset({"kill", "stop", "cont", "restart", "partition", "heal", "clock_jump",
                           "slow_disk", "revoke_key"})

    def __init__(self, loaded: LoadedScenario, workdir: Path) -> None:
        super().__init__(loaded, workdir)
        self.prefix = f"fo{os.getpid() % 100000}{random.randrange(100, 1000)}"
        self.hub = f"{self.prefix}-hub"
        self.spaces: dict[str, str] = {}  # domain -> namespace
        self.made: list[str] = []  # namespaces this run made, in order
        self.blackholes: list[tuple[str, str]] = []  # (namespace, address) routes added
        self.subnet: ipaddress.IPv4Network | None = None

    def check_supported(self) -> None:
        problem = netns_problem()
        if problem:
            raise NetnsUnavailable(problem)
        super().check_supported()

    # ---- the network ---------------------------------------------------------------

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = _used_subnets()
        free = [s for s in SUPERNET.subnets(new_prefix=24)
                if not any(s.overlaps(u) for u in used)]
        if not free:
            raise NetnsUnavailable("no free /24 left in 10.231.0.0/16 for this run")
        return random.choice(free)

    def _netns(self, name: str) -> str:
        with deferred_interrupts():  # recorded before any Ctrl-C can unwind
            self.made.append(name)
            ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def build_network(self) -> None:
        self.subnet = self._pick_subnet()
        hosts = list(self.subnet.hosts())
        self._netns(self.hub)
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "link", "set", "br0", "up")
        # The runner's own leg: a veth from this namespace onto the bridge.
        mine = f"{self.prefix}r"
        ip("link", "add", mine, "type", "veth", "peer", "name", "runner", "netns", self.hub)
        ip("-n", self.hub, "link", "set", "runner", "master", "br0", "up")
        ip("addr", "add", f"{hosts[-1]}/{self.subnet.prefixlen}", "dev", mine)
        ip("link", "set", mine, "up")
        for index, domain in enumerate(self.names):
            space = self._netns(f"{self.prefix}-{index}")
            self.spaces[domain] = space
            leg = f"d{index}"
            ip("link", "add", leg, "netns", self.hub, "type", "veth", "peer", "name", "eth0",
               "netns", space)
            ip("-n", self.hub, "link", "set", leg, "master", "br0", "up")
            ip("-n", space, "addr", "add", f"{hosts[index]}/{self.subnet.prefixlen}",
               "dev", "eth0")
            ip("-n", space, "link", "set", "eth0", "up")

    def prepare(self) -> None:
        """The namespaces first, then keys and configs with each domain's own address."""
        try:
            self.build_network()
        except BaseException:
            self.remove_network()
            raise
        hosts = list(self.subnet.hosts())
        self._addresses = {d: f"{hosts[i]}:{AGENT_PORT}" for i, d in enumerate(self.names)}
        super().prepare()

    def assign_addresses(self) -> dict[str, str]:
        return self._addresses

    def client_settings(self, keys_dir: Path) -> dict:
        """Agents on their own addresses take only signed client calls: the runner signs
        as `scenario-runner`, whom every domain accepts. Peer traffic stays plaintext (the
        namespaces are this run's own private network), so the runner's health and
        member checks need no certificates."""
        from fedorch.core.identity.clients import init_client_keys, load_identity

        key, pub = keys_dir / f"{RUNNER}.key", keys_dir / f"{RUNNER}.pub"
        if not (key.exists() and pub.exists()):
            key, pub = init_client_keys(RUNNER, keys_dir)
        self.identity = load_identity(key)
        return {"clients": {"key_files": [str(pub)]},
                "access": [{"principals": [RUNNER], "allow": ["submit", "read", "cancel"]}],
                "tls": {"enabled": False}}

    def wrap(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.spaces[name], *super().wrap(name)]

    def remove_network(self) -> None:
        for space in reversed(self.made):  # one not made after all: nothing to delete
            subprocess.run(["ip", "netns", "del", space], capture_output=True,
                           timeout=IP_TIMEOUT_S)
        self.made.clear()

    def stop_all(self) -> None:
        try:
            stop_agents(list(self.procs.values()))
        finally:
            self.remove_network()

    # ---- faults --------------------------------------------------------------------

    def _host(self, name: str) -> str:
        return self.addresses[name].rsplit(":", 1)[0]

    async def apply(self, action: str, names: list[str], deadline_s: float,
                    others: list[str] | None = None, seconds: float = 0.0) -> str:
        if action == "partition":
            for a in names:
                for c in others or []:
                    for space, dest in ((self.spaces[a], self._host(c)),
                                        (self.spaces[c], self._host(a))):
                        ip("-n", space, "route", "add", "blackhole", f"{dest}/32")
                        self.blackholes.append((space, dest))
            return f"{', '.join(names)} cut off from {', '.join(others or [])} (blackhole routes)"
        if action == "heal":
            healed = len(self.blackholes)
            for space, dest in self.blackholes:
                ip("-n", space, "route", "del", "blackhole", f"{dest}/32")
            self.blackholes.clear()
            return f"healed: {healed} blackhole route(s) removed"
        if action not in self.supported:
            raise UnsupportedFault(f"the {self.name} runner cannot apply {action!r}")
        return await super().apply(action, names, deadline_s, seconds=seconds)

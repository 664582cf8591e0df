"""The process runner: every domain an agent process on 127.0.0.1, a free port each.

Keys are made per run in the work dir; each agent's config is written there too, with
its data dir and its side-effect file (runs/<domain>.jsonl). Faults are signals to the
agent's pid: kill (SIGKILL), stop/cont (SIGSTOP/SIGCONT), restart (stop, then start the
same config on the same port and data dir), clock_jump (rewrite the offset file of the
libfaketime the agent was started under, when the scenario has clock jumps), slow_disk
(rewrite the delay file of the fsync shim the agent was started under, see
slow_disk.py), revoke_key (the domain's current key revoked in its key records, as
`fedorch keys revoke --key DOMAIN.key` does, then SIGHUP). Partitions need more than one
process can do to another: they are refused before anything starts.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import yaml
from fedorch.core.identity.clients import ClientIdentity
from fedorch.core.identity.rotation import revoke_key
from fedorch.runtime.port_leases import release_ports
from fedorch.runtime.supervisor import (
    HOST,
    AgentProcess,
    deferred_interrupts,
    ensure_keys,
    kill_agent,
    pick_free_ports,
    send_signal,
    start_agent,
    stop_agents,
    wait_healthy,
)
from fedorch.scenario.bytecode import warm
from fedorch.scenario.clock import FaketimeMissing, faked_env, faketime_library, set_offset
from fedorch.scenario.configs import DOMAIN_ENV, RUNS_ENV, agent_config
from fedorch.scenario.model import LoadedScenario
from fedorch.scenario.slow_disk import (
    SlowDiskUnavailable,
    build_shim,
    compiler,
    read_stats,
    set_delay,
    shim_env,
)


class UnsupportedFault(Exception):
    """This runner cannot apply that kind of fault."""


class ProcessFederation:
    name = "process"
    supported = frozenset({"kill", "stop", "cont", "restart", "clock_jump", "slow_disk",
                           "revoke_key"})

    def __init__(self, loaded: LoadedScenario, workdir: Path) -> None:
        self.loaded = loaded
        self.workdir = workdir
        self.addresses: dict[str, str] = {}
        self.configs: dict[str, Path] = {}
        self.procs: dict[str, AgentProcess] = {}
        self.stopped: set[str] = set()  # SIGSTOPped, not yet resumed
        self.pids: dict[str, list[int]] = {}  # every process started, restarts included
        # The client identity the runner signs its calls with, where the agents require
        # signed calls (not on loopback, where an agent without `clients:` is open).
        self.identity: ClientIdentity | None = None
        # Each domain's wall-clock offset (seconds), where the scenario steps clocks: every
        # agent then runs under libfaketime, reading its offset from clock/<domain>.
        self.clock_offsets: dict[str, float] = {}
        # The fsync shim, where the scenario slows disks: the domains it names run under it.
        self.shim: Path | None = None

    def client_settings(self, keys_dir: Path) -> dict:
        """Config fields every domain gets from this runner (none on loopback)."""
        return {}

    def check_supported(self) -> None:
        for index, fault in enumerate(self.loaded.scenario.faults):
            if fault.action not in self.supported:
                raise UnsupportedFault(
                    f"{self.loaded.source}: faults[{index}].action: the {self.name} runner "
                    f"cannot apply {fault.action!r} (it can: "
                    f"{', '.join(sorted(self.supported))}); run it with --runner netns as root")
            if fault.action == "clock_jump" and not faketime_library():
                raise UnsupportedFault(
                    f"{self.loaded.source}: faults[{index}].action: clock_jump needs "
                    "libfaketime (Debian package faketime: apt-get install faketime)")
            if fault.action == "slow_disk" and not compiler():
                raise UnsupportedFault(
                    f"{self.loaded.source}: faults[{index}].action: slow_disk needs a C "
                    "compiler (cc) to build its fsync shim: apt-get install gcc")

    @property
    def steps_clocks(self) -> bool:
        return any(f.action == "clock_jump" for f in self.loaded.scenario.faults)

    def clock_file(self, name: str) -> Path:
        return self.workdir / "clock" / name

    @property
    def slow_domains(self) -> list[str]:
        """The domains a slow_disk fault names: they run under the fsync shim."""
        named = {d for f in self.loaded.scenario.faults if f.action == "slow_disk"
                 for d in f.domains}
        return [n for n in self.names if n in named]

    def disk_file(self, name: str, kind: str) -> Path:
        return self.workdir / "disk" / f"{name}.{kind}"

    def disk_stats(self) -> dict[str, tuple[int, float]]:
        """Per slowed domain: (syncs delayed, seconds slept in them) so far."""
        return {n: read_stats(self.disk_file(n, "stats")) for n in self.slow_domains}

    @property
    def names(self) -> list[str]:
        return list(self.loaded.domains)

    def data_dir(self, name: str) -> Path:
        """The domain's agent data dir (agent.db, its audit log); kept after the run."""
        return self.workdir / "data" / name

    def runs_file(self, name: str) -> Path:
        return self.workdir / "runs" / f"{name}.jsonl"

    def prepare(self) -> None:
        """Keys, ports, data dirs and configs for every domain; nothing runs yet."""
        names = self.names
        keys_dir = self.workdir / "keys"
        warm()  # the sources compiled once here, not by every agent (bytecode.py)
        ensure_keys(names, keys_dir)
        self.addresses = self.assign_addresses()
        (self.workdir / "runs").mkdir(parents=True, exist_ok=True)
        for name in names:
            data_dir = self.data_dir(name)
            data_dir.mkdir(parents=True, exist_ok=True)
            config = agent_config(
                self.loaded, name, addresses=self.addresses, data_dir=str(data_dir),
                keys_dir=str(keys_dir), metrics_listen=None,
                env=self.step_env(name),
                cwd=str(self.loaded.base_dir))
            config.update(self.client_settings(keys_dir))
            path = self.workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.configs[name] = path
            if self.steps_clocks:
                self.clock_file(name).parent.mkdir(parents=True, exist_ok=True)
                set_offset(self.clock_file(name), 0)
                self.clock_offsets[name] = 0.0
        if self.slow_domains:
            try:
                self.shim = build_shim(self.workdir / "disk")
            except SlowDiskUnavailable as exc:
                raise UnsupportedFault(str(exc)) from None
            for name in self.slow_domains:
                set_delay(self.disk_file(name, "delay"), 0)

    def step_env(self, name: str) -> dict[str, str]:
        """The environment a domain's command steps get from the runner: where to record
        their runs, and (where clocks are stepped) no libfaketime: it breaks Python's
        time.sleep (EINVAL from clock_nanosleep), so steps keep the machine's clock."""
        env = {RUNS_ENV: str(self.runs_file(name)), DOMAIN_ENV: name}
        if self.steps_clocks or name in self.slow_domains:
            env["LD_PRELOAD"] = ""
        return env

    def assign_addresses(self) -> dict[str, str]:
        """Each domain's address: 127.0.0.1 and a port that was free a moment ago."""
        ports = pick_free_ports(len(self.names))
        return {n: f"{HOST}:{p}" for n, p in zip(self.names, ports, strict=True)}

    def wrap(self, name: str) -> list[str]:
        """What the agent's command runs under: libfaketime where clocks are stepped, the
        fsync shim where its disk is slowed (both preloaded when both apply)."""
        settings: dict[str, str] = {}
        if self.steps_clocks:
            settings.update(item.split("=", 1) for item in faked_env(self.clock_file(name)))
        if self.shim is not None and name in self.slow_domains:
            shim = shim_env(self.shim, self.disk_file(name, "delay"),
                            self.disk_file(name, "stats"))
            preload = " ".join(p for p in (settings.get("LD_PRELOAD"), shim.pop("LD_PRELOAD"))
                               if p)
            settings.update(shim, LD_PRELOAD=preload)
        if not settings:
            return []
        return ["env", *(f"{k}={v}" for k, v in settings.items())]

    def address(self, name: str) -> str:
        return self.addresses[name]

    def running(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.popen.poll() is None]

    def awake(self) -> list[str]:
        """Running and not paused: the agents that can answer."""
        return [n for n in self.running() if n not in self.stopped]

    def start(self, names: list[str]) -> list[AgentProcess]:
        started = []
        for name in names:
            with deferred_interrupts():  # recorded before any Ctrl-C can unwind
                proc = start_agent(name, self.configs[name], self.addresses[name],
                                   self.workdir, wrap=self.wrap(name))
                self.procs[name] = proc
                self.pids.setdefault(name, []).append(proc.pid)
            started.append(proc)
        return started

    async def wait_serving(self, names: list[str], deadline_s: float) -> None:
        """Every agent asked at once (each on its own channel), so that the run learns
        that the last one serves when it does, not a poll per agent later."""
        await asyncio.gather(*(wait_healthy([self.procs[n]], deadline_s=deadline_s)
                               for n in names))

    # ---- faults --------------------------------------------------------------------

    async def apply(self, action: str, names: list[str], deadline_s: float,
                    others: list[str] | None = None, seconds: float = 0.0) -> str:
        """Apply one fault to each domain (`others`: a partition's other side; `seconds`:
        a clock jump's step); a short note of what was done."""
        if action not in self.supported:
            raise UnsupportedFault(f"the {self.name} runner cannot apply {action!r}")
        notes = []
        for name in names:
            proc = self.procs.get(name)
            if action == "kill":
                if proc is not None:
                    kill_agent(proc)
                self.stopped.discard(name)
                notes.append(f"{name} SIGKILLed")
            elif action == "stop":
                if proc is not None and send_signal(proc, signal.SIGSTOP):
                    self.stopped.add(name)
                notes.append(f"{name} paused (SIGSTOP)")
            elif action == "cont":
                if proc is not None:
                    send_signal(proc, signal.SIGCONT)
                self.stopped.discard(name)
                notes.append(f"{name} resumed (SIGCONT)")
            elif action == "restart":
                if proc is not None:
                    stop_agents([proc])
                self.stopped.discard(name)
                self.start([name])
                await self.wait_serving([name], deadline_s)
                notes.append(f"{name} restarted (pid {self.procs[name].pid}) and serving")
            elif action == "clock_jump":
                if name not in self.clock_offsets:
                    raise FaketimeMissing(f"{name} was not started under libfaketime")
                self.clock_offsets[name] += seconds
                set_offset(self.clock_file(name), self.clock_offsets[name])
                notes.append(f"{name} wall clock stepped {seconds:+g} s "
                             f"(now {self.clock_offsets[name]:+g} s from true time)")
            elif action == "slow_disk":
                set_delay(self.disk_file(name, "delay"), seconds)
                notes.append(f"{name} disk: every fsync delayed {seconds * 1000:g} ms"
                             if seconds else f"{name} disk: fsyncs no longer delayed")
            elif action == "revoke_key":
                notes.append(self.revoke(name, proc))
        return "; ".join(notes)

    def revoke(self, name: str, proc: AgentProcess | None) -> str:
        """Revoke the domain's current key (signed by itself) and SIGHUP its agent, which
        then spreads the revocation as it spreads a rotation."""
        keys_dir = self.workdir / "keys"
        change = revoke_key(name, keys_dir, int(time.time() * 1000), keys_dir / f"{name}.key")
        if proc is not None:
            send_signal(proc, signal.SIGHUP)
        return f"{name} revoked its current key (serial {change.serial}) and reloaded (SIGHUP)"

    def stop_all(self) -> None:
        stop_agents(list(self.procs.values()))
        # Every agent is stopped: their ports go back (one process may run many scenarios).
        release_ports([int(a.rpartition(":")[2]) for a in self.addresses.values()])

"""`fedorch bench`: benchmarks that print their numbers (never asserted in tests)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import click
from fedorch.bench.commit import CONCURRENCY, UNLOADED_WORKFLOWS, WORKFLOWS_PER_LOOP
from fedorch.cli.common import console
from rich.table import Table


def _gossip(agents: int, sim: bool, real: bool, seed: int) -> dict:
    result: dict = {}
    if sim:
        from fedorch.bench.gossip_sim import run_gossip_sim_bench

        result.update(run_gossip_sim_bench(seed=seed))
    if real:
        from fedorch.bench.gossip_real import run_real_gossip_bench

        result["real"] = asyncio.run(run_real_gossip_bench(agents=agents))
    return result


def _print_gossip(result: dict) -> None:
    con = console()
    if "simulation" in result:
        table = Table(title="gossip dissemination (simulation, lan profile)")
        for col in ("members", "loss", "rounds", "⌈log₃ N⌉", "target ⌈log₃ N⌉+4",
                    "simulated s"):
            table.add_column(col, justify="right")
        for row in result["simulation"]:
            table.add_row(str(row["n"]), f"{row['loss']:.0%}", str(row["rounds"]),
                          str(row["log3_n"]), str(row["log3_n"] + 4), f"{row['seconds']:.2f}")
        con.print(table)
        con.print(f"simulated detection of a crashed member: {result['sim_detection_s']:.2f} s; "
                  f"false DEAD verdicts with 10% of members stalling 2 s: "
                  f"{result['sim_false_dead']}")
    if "real" in result:
        r = result["real"]
        table = Table(title=f"real agents on 127.0.0.1 ({r['agents']} processes)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_row("new capability held by all (s)", str(r["dissemination_s"]), "")
        table.add_row("SIGKILLed agent DEAD at all (s)", str(r["detection_s"]), "≤ 5")
        table.add_row("gossip bytes/s per agent at rest", str(r["bytes_per_s_per_agent"]),
                      "< 4000")
        table.add_row("false DEAD verdicts", str(r["false_dead"]), "0")
        con.print(table)


@click.group(name="bench")
def bench() -> None:
    """Benchmarks: they print numbers; targets are shown beside them."""


@bench.command(name="gossip")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--agents", default=30, show_default=True, help="Real agent processes.")
@click.option("--sim/--no-sim", default=True, help="Run the simulation part.")
@click.option("--real/--no-real", default=True, help="Run the real-process part.")
@click.option("--seed", default=1, show_default=True)
def gossip(as_json: bool, agents: int, sim: bool, real: bool, seed: int) -> None:
    """Membership: dissemination, detection, bandwidth, false DEAD verdicts."""
    result = _gossip(agents, sim, real, seed)
    if as_json:
        click.echo(json.dumps(result, default=lambda x: None if x is math.inf else x))
    else:
        _print_gossip(result)


@bench.command(name="gossip-idle")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per size.")
@click.option("--domains", default="10", show_default=True, metavar="N[,N...]",
              help="Agent processes in each federation measured.")
@click.option("--window", "window_s", type=click.FloatRange(min=1), default=10.0,
              show_default=True, help="Seconds of idle time measured.")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Also record one agent with py-spy (installed apart) into FILE.N"
                   " (collapsed stacks, N the federation size).")
def gossip_idle(as_json: bool, domains: str, window_s: float, profile: str | None) -> None:
    """Idle cost of an agent: CPU per second in a converged, idle federation of N."""
    from pathlib import Path

    from fedorch.bench.gossip_idle import run_gossip_idle_bench

    for n in _submitters(domains, "--domains"):
        out = Path(f"{profile}.{n}") if profile else None
        result = asyncio.run(run_gossip_idle_bench(n, window_s, profile=out))
        if as_json:
            click.echo(json.dumps(result))
        else:
            console().print(
                f"{n} domains: CPU per agent {result['cpu_per_s_mean']:.3f} s/s (max"
                f" {result['cpu_per_s_max']:.3f}), all agents {result['cpu_per_s_total']:.2f}"
                f" s/s; start {result['start_cpu_s_mean']:.2f} CPU s per agent; load"
                f" {result['load_before']} -> {result['load_during']}")


def _commit(total: int = WORKFLOWS_PER_LOOP, concurrency: tuple[int, ...] = CONCURRENCY,
            data_dir: str | None = None, commit: str = "paxos", submit: str = "call",
            unloaded: int = UNLOADED_WORKFLOWS, profile: str | None = None) -> dict:
    from pathlib import Path

    from fedorch.bench.commit import run_commit_bench

    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_commit_bench(
        total=total, concurrency=concurrency, workdir=Path(data_dir) if data_dir else None,
        commit=commit, submit=submit, unloaded=unloaded,
        profile=Path(profile).resolve() if profile else None))


def _print_commit(r: dict) -> None:
    table = Table(title=f"{r['commit']} commit, three-domain workflows on 127.0.0.1"
                        f" (submitted by {r.get('submit', 'call')})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("raw gRPC unary echo calls/s (baseline)", str(r["echo_calls_per_s"]), "")
    for loop in r["closed_loops"]:
        table.add_row(f"  {loop['concurrency']} submitters: committed / end-to-end workflows/s"
                      " (CPU ms per workflow)",
                      f"{loop['commits_per_s']} / {loop['workflows_per_s']}"
                      f" ({loop['cpu_ms_per_workflow']})", "")
    table.add_row(f"committed workflows/s (peak: {r['concurrency']} submitters)",
                  str(r["commits_per_s"]), "")
    table.add_row("end-to-end workflows/s (peak)", str(r["workflows_per_s"]), "≥ 1000")
    table.add_row("CPU ms per workflow at the peak, agents + client",
                  str(r["cpu_ms_per_workflow"]), "≤ 2.0")
    table.add_row("  of which " + ", ".join(
        f"{name} {ms}" for name, ms in r["cpu_ms_by_process"].items() if name != "total"),
        "", "")
    if "gc_ms_per_workflow" in r:  # the garbage collector's part of the CPU above
        table.add_row("  of which in the garbage collector: " + ", ".join(
            f"{name} {ms}" for name, ms in r["gc_ms_per_workflow"].items()), "", "")
    peak = next((loop for loop in r["closed_loops"]
                 if loop["concurrency"] == r["concurrency"]), {})
    for domain, counts in peak.get("node_per_workflow", {}).items():
        table.add_row(f"  {domain}: driver turns / transactions / envelopes out per workflow",
                      f"{counts['driver_turns']} / {counts['transactions']}"
                      f" / {counts['envelopes_out']}", "")
    table.add_row("submit→committed p50, unloaded (ms)", str(r["p50_ms_unloaded"]), "≤ 5")
    table.add_row("submit→committed p99, unloaded (ms)", str(r["p99_ms_unloaded"]), "")
    table.add_row("submit→committed p50 at half peak (ms)", str(r["p50_ms_half_load"]), "")
    table.add_row("submit→committed p99 at half peak (ms)", str(r["p99_ms_half_load"]), "")
    table.add_row("submit→committed p99 at half peak ÷ unloaded p99",
                  str(round(r["p99_ms_half_load"] / r["p99_ms_unloaded"], 2)), "≤ 4")
    table.add_row("one forced write where the agents keep data (ms)",
                  str(r["forced_write_ms"]), "")
    console().print(table)


@bench.command(name="commit")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--workflows", type=click.IntRange(min=1), default=WORKFLOWS_PER_LOOP,
              show_default=True, help="Workflows in each closed loop.")
@click.option("--concurrency", default=",".join(map(str, CONCURRENCY)), show_default=True,
              metavar="N[,N...]",
              help="Submitters of each closed loop, the peak being the best loop.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the agents keep their data (default: a temporary directory); "
                   "its forced-write time is printed.")
@click.option("--commit", "protocol", type=click.Choice(["paxos", "2pc"]), default="paxos",
              show_default=True, help="negotiation.commit of the agents.")
@click.option("--submit", "submit", type=click.Choice(["call", "stream"]), default="call",
              show_default=True,
              help="call: one SubmitAndWatch call per workflow; stream: each closed loop's"
                   " workflows in one SubmitStream call.")
@click.option("--unloaded", type=click.IntRange(min=1), default=UNLOADED_WORKFLOWS,
              show_default=True,
              help="Workflows of the unloaded sample, one at a time (its p99 is the"
                   " slowest of 30 by default).")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Write the event-loop profile (cProfile) of the coordinator c1 over the"
                   " closed loops to this file, and the participant c2's to FILE.c2.")
def commit(as_json: bool, workflows: int, concurrency: str, data_dir: str | None,
           protocol: str, submit: str, unloaded: int, profile: str | None) -> None:
    """Negotiation: committed and end-to-end workflows/s against a gRPC echo baseline."""
    result = _commit(workflows, _submitters(concurrency), data_dir, protocol, submit,
                     unloaded, profile)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_commit(result)


def _print_long(r: dict) -> None:
    table = Table(title=f"{r['workflows']} three-domain workflows on the same agents,"
                        f" {r['concurrency']} submitters, read every {r['every']}")
    for column in ("after workflows", "agent", "CPU ms per workflow", "RSS MB",
                   "node.db MB (+ wal)", "agent.db MB (+ wal)", "in use: the rest MB", "in use: audit log MB",
                   "workflows kept"):
        table.add_column(column, justify="right")
    for part in r["parts"]:
        cpu = part["cpu_ms_by_process"]
        for domain, rss in part["rss_mb"].items():
            live = part["live_mb"][domain]
            table.add_row(str(part["after_workflows"]), domain, str(cpu[domain]), str(rss),
                          str(part["data_mb"][domain]),
                          str(part.get("agent_db_mb", {}).get(domain, "")), str(live["rest"]),
                          str(live["audit"]), str(part["ended_kept"][domain]))
        failed = "".join(f", {n} {code}" for code, n in part.get("failed_calls", {}).items())
        table.add_row(str(part["after_workflows"]),
                      f"all ({part['workflows_per_s']} workflows/s{failed})",
                      f"{cpu['total']} ({cpu['client']} the client)", "", "", "", "", "", "",
                      end_section=True)
    console().print(table)
    if r.get("keep_ended"):
        console().print(f"retention: max_ended_workflows {r['keep_ended']},"
                        f" keep_ended_s {r['keep_ended_s']:g}")
    by_process = ", ".join(f"{name} {g}" for name, g in r["cpu_growth_by_process"].items())
    console().print(f"CPU per workflow, last reading ÷ first: {r['cpu_growth']}"
                    f" ({by_process}; target ≤ 1.10)")


@bench.command(name="long")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--workflows", type=click.IntRange(min=2), default=30_000, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=256, show_default=True,
              help="Submitters.")
@click.option("--every", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Read the agents after every this many workflows (and at the end).")
@click.option("--keep-ended", type=click.IntRange(min=1), default=None,
              help="Run the agents with retention.max_ended_workflows N (and a short"
                   " replay window and sweep), waiting after each reading for retention.")
@click.option("--keep-ended-s", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="With --keep-ended: retention.keep_ended_s.")
@click.option("--trace-memory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Run the agents with their allocations traced, write their"
                                 " readings to this directory, and say what each holds per"
                                 " workflow between two readings (slower: for memory only).")
def long(as_json: bool, workflows: int, concurrency: int, every: int,
         keep_ended: int | None, keep_ended_s: float, trace_memory: Path | None) -> None:
    """Whether a workflow's cost stays flat as work grows; the agents' memory and data."""
    from fedorch.bench.long import run_long_bench

    if workflows < 2 * every:
        raise click.BadParameter(f"at least two readings: --workflows >= 2 x --every ({every})",
                                 param_hint="--workflows")
    def progress(reading: dict) -> None:  # a long run shows each reading as it comes
        click.echo(json.dumps(reading) if as_json else
                   f"after {reading['after_workflows']}: {reading['workflows_per_s']}"
                   f" workflows/s (failed calls {reading.get('failed_calls', {})});"
                   f" CPU ms per workflow {reading['cpu_ms_by_process']};"
                   f" RSS MB {reading['rss_mb']}; node.db MB {reading['data_mb']};"
                   f" workflows held {reading['ended_kept']}", err=True)

    if trace_memory is not None:
        trace_memory.mkdir(parents=True, exist_ok=True)
        trace_memory = trace_memory.resolve()
    result = asyncio.run(run_long_bench(workflows, concurrency, every,
                                        keep_ended=keep_ended, keep_ended_s=keep_ended_s,
                                        on_reading=progress, trace_memory=trace_memory))
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_long(result)


def _fanout(domains: int, workflows: int, rate: float, profile: str | None = None,
            data_dir: str | None = None, gossip_profile: str = "lan") -> dict:
    from pathlib import Path

    from fedorch.bench.fanout import run_fanout_bench

    out = Path(profile).resolve() if profile else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run_fanout_bench(
        domains, workflows, rate, workdir=Path(data_dir) if data_dir else None,
        profile_dir=out, gossip_profile=gossip_profile))
    if out is not None:
        from fedorch.bench.fanout_counts import counts_per_fanout

        result["counts"] = {d: counts_per_fanout(path, workflows)
                            for d, path in result["profiled"].items()}
    return result


def _print_fanout(r: dict) -> None:
    cpu = r["cpu_s_per_fanout"]
    table = Table(title=f"fan-out over {r['domains']} domains: {r['workflows']} workflows"
                        f" at {r['rate_per_s']:g}/s (gossip {r['gossip_profile']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("CPU s per fan-out: coordinator", str(cpu["coordinator"]))
    table.add_row("CPU s per fan-out: a participant, mean / most",
                  f"{cpu['participant_mean']} / {cpu['participant_max']}")
    table.add_row("CPU s per fan-out: all agents", str(cpu["all_agents"]))
    idle = r["idle_cpu_s_per_s"]
    table.add_row("idle CPU s/s taken off: coordinator / a participant",
                  f"{idle['coordinator']} / {idle['participant_mean']}")
    table.add_row("SQL statements per fan-out: " + " / ".join(r["statements_per_fanout"]),
                  " / ".join(str(v) for v in r["statements_per_fanout"].values()))
    table.add_row("submission -> admission s, mean / most",
                  f"{r['admission_s']['mean']} / {r['admission_s']['max']}")
    table.add_row("submission -> end s, mean / most",
                  f"{r['end_s']['mean']} / {r['end_s']['max']}")
    table.add_row("end states", ", ".join(f"{n} {s}" for s, n in r["states"].items()))
    table.add_row("load average before -> after", f"{r['load_before']} -> {r['load_after']}")
    console().print(table)
    for reason in r["reasons"]:
        console().print(f"  not SUCCEEDED: {reason}")
    for domain, counts in r.get("counts", {}).items():
        console().print(f"{domain} per fan-out: " + ", ".join(
            f"{name} {value}" for name, value in counts["summary"].items()))


@bench.command(name="fanout")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--domains", type=click.IntRange(min=2), default=20, show_default=True,
              help="Agent processes; each fan-out has a step on every one.")
@click.option("--workflows", type=click.IntRange(min=1), default=10, show_default=True,
              help="Fan-outs measured (after one warm-up).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Fan-outs submitted per second.")
@click.option("--profile", type=click.Path(file_okay=False), default=None,
              help="Profile the coordinator and the last participant over the fan-outs"
                   " (cProfile, DIR/DOMAIN.prof) and print their counts per fan-out.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the agents keep their data (default: a temporary directory).")
@click.option("--gossip-profile", type=click.Choice(["lan", "local"]), default="lan",
              show_default=True, help="The agents' gossip profile.")
def fanout(as_json: bool, domains: int, workflows: int, rate: float, profile: str | None,
           data_dir: str | None, gossip_profile: str) -> None:
    """Wide workflows: CPU per fan-out at the coordinator and the participants."""
    result = _fanout(domains, workflows, rate, profile, data_dir, gossip_profile)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_fanout(result)


def _node(workflows: int = 1000, concurrency: tuple[int, ...] = (64,),
          envelopes: tuple[str, ...] = ("message", "turn"), crypto: str = "cryptography",
          data_dir: str | None = None, layout: str = "threads",
          gc_threshold: int | None = None) -> dict:
    from fedorch.bench.node import run_node_bench

    return run_node_bench(workflows=workflows, concurrency=concurrency,
                          envelopes=envelopes, crypto=crypto, data_dir=data_dir,
                          layout=layout, gc_threshold=gc_threshold)


def _print_node(r: dict) -> None:
    con = console()
    for run in r["runs"]:
        table = Table(title=f"Node path, 3 agents in one process ({run['layout']}), SQLite"
                            f" + Ed25519 ({run['crypto']}), no gRPC; one envelope per"
                            f" {run['envelope']}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("target (whole daemon)", justify="right")
        for loop in run["loops"]:
            table.add_row(f"  {loop['concurrency']} submitters: workflows/s (CPU ms per"
                          " workflow)", f"{loop['workflows_per_s']}"
                          f" ({loop['cpu_ms_per_workflow']})", "")
        p = run["peak"]
        table.add_row("workflows/s at the peak", str(p["workflows_per_s"]), "≥ 1000")
        table.add_row("CPU ms per workflow, three agents", str(p["cpu_ms_per_workflow"]),
                      "≤ 2.0")
        for part, ms in p["cpu_ms_parts"].items():
            table.add_row(f"  {part.replace('_', ' ')} (ms)", str(ms), "")
        w = p["per_workflow"]
        table.add_row("messages / envelopes signed per workflow",
                      f"{w['messages']} / {w['envelopes_signed']}", "")
        table.add_row("transactions / rows / driver turns per workflow",
                      f"{w['transactions']} / {w['rows_written']} / {w['driver_turns']}", "")
        table.add_row("SQLite wall ms per transaction (fsync included)",
                      str(p["sqlite_wall_ms_per_transaction"]), "")
        table.add_row(f"garbage collector CPU ms per workflow (inside the parts above;"
                      f" threshold {r['gc_threshold']})", str(p["gc_ms_per_workflow"]), "")
        con.print(table)
    con.print(f"load average (1 min) {r['load_average_1m'][0]} -> {r['load_average_1m'][1]};"
              f" one forced write here {r['forced_write_ms']} ms")


@bench.command(name="node")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--workflows", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Workflows in each closed loop.")
@click.option("--concurrency", default="64", show_default=True, metavar="N[,N...]",
              help="Submitters of each closed loop, the peak being the best loop.")
@click.option("--envelope", type=click.Choice(["message", "turn", "both"]), default="both",
              show_default=True,
              help="Sign each message alone, or what one driver turn sends to a peer as one"
                   " envelope.")
@click.option("--crypto", type=click.Choice(["cryptography", "libsodium"]),
              default="cryptography", show_default=True, help="Whose Ed25519.")
@click.option("--layout", type=click.Choice(["threads", "loop"]), default="threads",
              show_default=True,
              help="Each agent's driver loop on a thread of its own (fsyncs overlap, one"
                   " GIL), or all three on one event loop.")
@click.option("--gc-threshold", type=click.IntRange(min=1), default=None,
              help="The garbage collector's first threshold during the run (Python's"
                   " default: 700).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the SQLite files go (default: a temporary directory).")
def node(as_json: bool, workflows: int, concurrency: str, envelope: str, crypto: str,
         layout: str, gc_threshold: int | None, data_dir: str | None) -> None:
    """The Node path alone: three NodeDrivers in one process with SQLite and signatures.

    No gRPC, no client stream, no daemon: each message is encoded, signed and
    verified, then posted to the receiver's driver loop in memory. What it prints is
    the floor under a daemon built on the Node, not the daemon's cost (bench commit)."""
    envelopes = ("message", "turn") if envelope == "both" else (envelope,)
    result = _node(workflows, _submitters(concurrency), envelopes, crypto, data_dir, layout,
                   gc_threshold)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_node(result)


def _submitters(text: str, option: str = "--concurrency") -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{text!r}: positive whole numbers separated by commas",
                                 param_hint=option)
    return counts


@bench.command(name="all")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per benchmark.")
def bench_all(as_json: bool) -> None:
    """Every benchmark, one after the other."""
    result = {"gossip": _gossip(30, True, True, 1), "commit": _commit(),
              "fanout": _fanout(20, 10, 1.0), "node": _node()}
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_gossip(result["gossip"])
        _print_commit(result["commit"])
        _print_fanout(result["fanout"])
        _print_node(result["node"])

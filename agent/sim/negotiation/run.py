"""The seeded runs of the negotiation simulator, and its command line.

One seed is one run of the simulated world (simulation.py: real cores, simulated
faults; its theory of operation says how a run goes): `seeded_config` draws the
seed's federation and faults, with coordinator takeover and classic 2PC as the
command line asks; `run(seed)` runs it and raises SimulationFailure naming the seed
and the command that replays it on any violation; `main` runs a range of seeds, on
`--jobs` processes, and prints one summary (runs, workflows and their ends, crashes,
events, refusals, the paths taken and the messages sent): for the same seeds, the
same summary whatever the number of jobs, but for the time it took.

    python -m fedorch.sim.negotiation.run --seeds 100000 [--start 0] [--jobs 2] [--takeover 3]
    python -m fedorch.sim.negotiation.run --seed 11 [--takeover 3] [--trace d2.w1]
    python -m fedorch.sim.negotiation.run --seeds 1000 --takeover 3 --keep-ended-s 5 --end 300

`--keep-ended-s` and `--end` shorten the simulator's retention (SIM_RETENTION: its
`late_message_s` stays, above the longest a message is delayed or held by a pause)
and lengthen each run (`Config.end`), so that retention forgets, during the run, the
workflows taken over (which wait two `late_message_s` after their last mark).

`--one-way` adds to each run a cut one way (config.draw_one_way: one or two agents
whose messages get out to nobody while everyone else's reach them), drawn apart from
the rest of the seed's faults; it needs `--takeover` (the runs that post membership
views to their Nodes).

`--seed` replays one run and prints its report; `--trace TEXT` prints, as it goes, each
message delivered, cut by the partition or lost whose text holds TEXT, and every
crash, restart and clock step: how one seed's failure is read.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from fedorch.sim.negotiation.config import Config, draw_one_way
from fedorch.sim.negotiation.simulation import Report, Simulation

__all__ = ["SIM_STEP_LEASE_S", "Report", "Simulation", "SimulationFailure", "main", "run",
           "seeded_config"]

# The step lease of the takeover schedule: three times the time to a DEAD verdict
# (Timing.dead_after_s), as the daemon's default is three times its profile's.
SIM_STEP_LEASE_S = 4.5


class SimulationFailure(AssertionError):
    """An invariant failed; the message starts with the seed that replays it."""


def seeded_config(seed: int, takeover_after_s: float | None = None, *,
                  classic: bool = False, keep_ended_s: float | None = None,
                  end: float | None = None, one_way: bool = False) -> Config:
    """The seed's random federation and faults; with `takeover_after_s`, coordinator
    takeover on (the takeover schedule: tests/sim/negotiation/test_takeover.py), and
    self-fencing with it (its runs post membership views, which the rule reads:
    SIM_STEP_LEASE_S; fence_check.py); `classic`: the workflows' own rounds in classic
    2PC (`--commit 2pc`, the daemon's `negotiation.commit: 2pc`: Timing.classic);
    `keep_ended_s`, `end`: the retention's keep_ended_s and the run's end instead of
    the simulator's (drawn after the seed's faults: the same run otherwise);
    `one_way`: a cut one way too (config.draw_one_way, a draw of its own)."""
    config = Config.random(random.Random(seed))
    if one_way:
        config = replace(config, one_way=draw_one_way(seed, config.names))
    if keep_ended_s is not None:
        retention = replace(config.timing.retention, keep_ended_s=keep_ended_s)
        config = replace(config, timing=replace(config.timing, retention=retention))
    if end is not None:
        config = replace(config, end=end)
    if classic:
        config = replace(config, timing=replace(config.timing, classic=True))
    if takeover_after_s is not None:
        config = replace(config, timing=replace(config.timing,
                                                takeover_after_s=takeover_after_s,
                                                step_lease_s=SIM_STEP_LEASE_S))
    return config


def run(seed: int, config: Config | None = None, *,
        takeover_after_s: float | None = None, classic: bool = False,
        keep_ended_s: float | None = None, end: float | None = None,
        one_way: bool = False) -> Report:
    """One seeded run; raises SimulationFailure (naming the seed) on any violation."""
    seeded = config is None  # a seed's random run: its clients' cancels too
    if config is None and (takeover_after_s is not None or classic or one_way
                           or keep_ended_s is not None or end is not None):
        config = seeded_config(seed, takeover_after_s, classic=classic,
                               keep_ended_s=keep_ended_s, end=end, one_way=one_way)
    report = Simulation(seed, config, cancels=seeded).run()
    if report.violations:
        switch = "" if takeover_after_s is None else f" --takeover {takeover_after_s:g}"
        switch += " --commit 2pc" if classic else ""
        switch += "" if keep_ended_s is None else f" --keep-ended-s {keep_ended_s:g}"
        switch += "" if end is None else f" --end {end:g}"
        switch += " --one-way" if one_way else ""
        raise SimulationFailure(
            f"seed {seed}: " + "; ".join(report.violations)
            + f" (replay: python -m fedorch.sim.negotiation.run --seed {seed}{switch})")
    return report


def _run_range(bounds: tuple[int, int, float | None, bool, float | None, float | None, bool]
               ) -> tuple[list[Report], list[str]]:
    start, stop, takeover_after_s, classic, keep_ended_s, end, one_way = bounds
    reports, failures = [], []
    for seed in range(start, stop):
        try:
            reports.append(run(seed, takeover_after_s=takeover_after_s, classic=classic,
                               keep_ended_s=keep_ended_s, end=end, one_way=one_way))
        except SimulationFailure as e:
            failures.append(str(e))
    return reports, failures


ALWAYS_TRACED = frozenset({"crash", "restart", "clock"})


def tracer(text: str, out: Callable[[str], None]) -> Callable[[float, str, str, object], None]:
    """A Simulation.trace that prints, one line each, the events whose text contains
    `text`, and every crash, restart and clock step (what a message met depends on them)."""
    def trace(now: float, kind: str, who: str, what: object) -> None:
        # One line an event: a spec's protobuf text spans lines of its own.
        shown = what if isinstance(what, str) else " ".join(repr(what).split())
        if kind in ALWAYS_TRACED or text in shown:
            out(f"{now:10.4f}  {kind:8} {who:14} {shown}")
    return trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedorch.sim.negotiation.run",
                                     description="Soak the commit protocol in simulation.")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeded runs")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--seed", type=int, help="replay one seed and print its report")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--takeover", type=float, metavar="SECONDS",
                        help="coordinator takeover on, after SECONDS of a silent or dead"
                             " coordinator (the takeover schedule); off by default")
    parser.add_argument("--commit", choices=("paxos", "2pc"), default="paxos",
                        help="the workflows' own rounds in Paxos Commit (default) or"
                             " classic 2PC")
    parser.add_argument("--trace", metavar="TEXT",
                        help="with --seed: print each message delivered, cut or lost"
                             " whose text contains TEXT (a workflow id, say; '' for"
                             " every one), with every crash, restart and clock step")
    parser.add_argument("--keep-ended-s", type=float, metavar="SECONDS",
                        help="the simulator's retention keeps an ended workflow this"
                             " long (default: SIM_RETENTION's, 30)")
    parser.add_argument("--end", type=float, metavar="SECONDS",
                        help="each run lasts this long in virtual time (default 110)")
    parser.add_argument("--one-way", action="store_true",
                        help="a cut one way in each run (with --takeover): one or two"
                             " agents whose messages get out to nobody for a while")
    args = parser.parse_args(argv)
    if args.trace is not None and args.seed is None:
        parser.error("--trace: only with --seed")
    if args.takeover is not None and not args.takeover > 0:
        parser.error("--takeover: a number of seconds above 0")
    if args.keep_ended_s is not None and not args.keep_ended_s >= 0:
        parser.error("--keep-ended-s: a number of seconds, 0 or above")
    if args.end is not None and not args.end > 0:
        parser.error("--end: a number of seconds above 0")
    if args.one_way and args.takeover is None:
        parser.error("--one-way: only with --takeover (runs that post membership views)")
    classic = args.commit == "2pc"
    if args.seed is not None:
        sim = Simulation(args.seed, seeded_config(args.seed, args.takeover,
                                                  classic=classic,
                                                  keep_ended_s=args.keep_ended_s,
                                                  end=args.end, one_way=args.one_way),
                         cancels=True)
        if args.trace is not None:
            sim.trace = tracer(args.trace, print)
        report = sim.run()
        print(report)
        return 1 if report.violations else 0
    started = time.perf_counter()
    chunk = max(1, min(1000, args.seeds // max(1, args.jobs * 8)))
    ranges = [(s, min(s + chunk, args.start + args.seeds), args.takeover, classic,
               args.keep_ended_s, args.end, args.one_way)
              for s in range(args.start, args.start + args.seeds, chunk)]
    reports: list[Report] = []
    failures: list[str] = []
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.Pool(args.jobs) as pool:
            for r, f in pool.imap_unordered(_run_range, ranges):
                reports.extend(r)
                failures.extend(f)
    else:
        for bounds in ranges:
            r, f = _run_range(bounds)
            reports.extend(r)
            failures.extend(f)
    elapsed = time.perf_counter() - started
    total = len(reports) + len(failures)
    print(f"runs {total}  failed {len(failures)}  {elapsed:.1f}s  "
          f"{total / elapsed:.0f} runs/s ({args.jobs} jobs)")
    print(f"workflows {sum(r.workflows for r in reports)}  "
          f"committed {sum(r.committed for r in reports)}  "
          f"aborted {sum(r.aborted for r in reports)}  "
          f"crashes {sum(r.crashes for r in reports)}  "
          f"coordinators dead forever {sum(len(r.dead_forever) for r in reports)}  "
          f"events {sum(r.events for r in reports)}  "
          f"refusals {sum(r.refusals for r in reports)}")
    stats: Counter[str] = Counter()
    for r in reports:
        stats.update(r.stats)
    print("paths: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())
                                if not k[0].isupper()))
    print("messages: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())
                                   if k[0].isupper() and " " not in k))
    for f in sorted(failures)[:20]:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

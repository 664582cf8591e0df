"""Messages per workflow of Paxos Commit, with every participant an acceptor and with
the bounded acceptor set (`negotiation.max_acceptors`).

One fan-out workflow of N steps, each on its own domain, coordinated by a domain that
holds no step (N + 1 agents), runs in the deterministic negotiation simulator with no
fault: the counts are the protocol's, not the machine's, and a run reproduces exactly.
"Before" makes every participant an acceptor (what every round did before the bound);
"after" is the default bound of 5. Every message any agent sends is counted, by type.

    python -m fedorch.bench.acceptor_messages [--sizes 3,10,20,50] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

SIZES = (3, 10, 20, 50)
EVERYONE = 1_001  # more acceptors than any workflow has participants: all of them
BOUNDED = 5       # the default negotiation.max_acceptors
# The messages of the commit decision itself (Paxos), as against PREPARE, votes, results.
CONSENSUS = ("Accept", "Accepted", "PaxosPrepare", "Promise", "Reject", "Decision",
             "DecisionQuery", "DecisionAnswer", "DecisionAck")


def measure(participants: int, max_acceptors: int, seed: int = 1) -> dict:
    """One workflow on `participants` domains; the messages sent until the run is quiet."""
    names = [f"d{i:02d}" for i in range(participants + 1)]
    placement = {f"s{i}": names[i + 1] for i in range(participants)}
    spec = spec_pb2.WorkflowSpec(name="w0", steps=[
        spec_pb2.StepSpec(id=s, capability="a") for s in placement])
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 1} for n in names},
        workflows=[Workflow(f"{names[0]}.w0", names[0], 1.0, spec, placement)],
        timing=Timing(max_rounds=1, max_acceptors=max_acceptors),
    )
    sim = Simulation(seed, config)
    report = sim.run()
    if report.violations or report.committed != 1:
        raise RuntimeError(f"{participants} participants, max_acceptors {max_acceptors}: "
                           f"committed {report.committed}, {report.violations}")
    tx = next(iter(sim.checker.txs.values()))
    stats = Counter({k: v for k, v in report.stats.items() if k[:1].isupper()})
    return {"participants": participants, "acceptors": len(tx.acceptors),
            "messages": sum(stats.values()),
            "consensus_messages": sum(stats[k] for k in CONSENSUS),
            "accepted": stats["Accepted"], "by_type": dict(sorted(stats.items()))}


def run_bench(sizes: tuple[int, ...] = SIZES) -> list[dict]:
    rows = []
    for n in sizes:
        before, after = measure(n, EVERYONE), measure(n, BOUNDED)
        rows.append({"participants": n, "before": before, "after": after})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes must be numbers separated by commas, got {args.sizes!r}")
    if any(n < 1 for n in sizes):
        parser.error("--sizes must be at least 1 each")
    rows = run_bench(sizes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| participants | acceptors before → after | Accepted before → after |"
          " consensus messages before → after | all messages before → after |")
    print("|---|---|---|---|---|")
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"| {r['participants']} | {b['acceptors']} → {a['acceptors']} |"
              f" {b['accepted']} → {a['accepted']} |"
              f" {b['consensus_messages']} → {a['consensus_messages']} |"
              f" {b['messages']} → {a['messages']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The seeded runs' check of sagas (core/node/compensating.py) at the end of a run,
for check.py (`Checker.finish`); each compensation attempt starting once and each
saga's end are checked as they happen, by the Checker's hooks. `checker` is the run's
Checker, typed loosely: check.py imports this module, never the reverse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


def check_sagas(checker: Any, sim: World) -> None:
    """Each compensation attempt starts once (compensation_started, throughout).
    At the end: a workflow ended SUCCEEDED has no compensation anywhere; one its
    coordinator (of any epoch) ended FAILED or CANCELLED has every SUCCEEDED step
    with a `compensate` block (as a coordinator's results or the step's own domain
    show it) COMPENSATED or COMPENSATION_FAILED at some coordinator (two epochs may
    both have ended it: either may have run it), and the coordinator that drives it
    now has no compensation left unended. Judged only while an agent that ended it
    as its coordinator still holds it (retention forgets a saga once it is over);
    not judged when a domain of an owed compensation is dead for good, or down."""
    dead = sim.dead_forever
    for summary in checker.sagas_ended.values():
        sim.stats[f"saga ended {summary}"] += 1
    alive = {name: a for name, a in sim.agents.items() if a.alive}
    for wf in sim.workflows:
        holders = [(name, a) for name, a in alive.items() if wf in a.disk.final
                   and (wf in a.disk.rows or wf in a.disk.committed)]
        drivers = [(name, a) for name, a in holders
                   if a.node.compensating.driver(wf) == name]
        if not drivers:
            continue
        sagas = sorted((a.disk.epochs.get(wf, (0, name))[0], name) for name, a in drivers
                       if any(k[0] == wf for k in a.disk.compensations))
        if len({epoch for epoch, _ in sagas}) < len(sagas):
            # Two claimants of one epoch that both told the end on: one drives the
            # saga, the other yields it to it (saga_plans.rival_end).
            checker.fail(f"saga: {wf} has two drivers of one epoch at the end of the"
                         f" run: {sagas}")
        info = drivers[0][1].node.running.info(wf)
        rows = {(name, k[1]): r for name, a in holders
                for k, r in a.disk.compensations.items() if k[0] == wf}
        state = getattr(drivers[0][1].disk.final[wf], "name", None)
        if state == "SUCCEEDED":
            if rows:
                checker.fail(f"saga: {wf} SUCCEEDED and is compensated: {sorted(rows)}")
            continue
        if state not in ("FAILED", "CANCELLED"):
            continue
        owed = set()
        for st in info.spec.steps:
            domain = alive.get(info.placement.get(st.id, ""))
            views = [a.disk.results.get(wf, {}) for _, a in drivers]
            if domain is not None:
                views.append(domain.disk.results.get(wf, {}))
            if st.HasField("compensate") and any(
                    getattr(v.get(st.id, (0, None))[1], "value", None) == "SUCCEEDED"
                    for v in views):
                owed.add(st.id)
        if {info.placement.get(st) for st in owed} & (dead | (set(sim.agents) - set(alive))):
            continue
        sim.stats["saga judged"] += 1
        ended = {step for (_, step), r in rows.items()
                 if r.state in ("COMPENSATED", "COMPENSATION_FAILED")}
        if owed - ended:
            checker.fail(f"saga: {wf} ended {state}, {sorted(owed - ended)} SUCCEEDED and"
                         f" not compensated (rows {sorted(rows)})")
        _check_runs(checker, sim, wf, state, holders, alive)
        for name, _ in drivers:
            left = {step: r.state for (holder, step), r in rows.items() if holder == name
                    and r.state not in ("COMPENSATED", "COMPENSATION_FAILED")}
            if left:
                checker.fail(f"saga: {name} drives {wf}, compensations not ended at the"
                             f" end of the run: {left}")


def _check_runs(checker: Any, sim: World, wf: str, state: str, holders: list,
                alive: dict) -> None:
    """Each run of a step that SUCCEEDED at a live domain (its own record, agent
    core/node/saga_runs.py: a step placed again may have SUCCEEDED in its lost domain
    and its new one) has a compensation in that domain, ended, at some coordinator:
    its step's first row or a further one. A row ended anywhere counts: a claimant
    that yielded its saga to a rival of its epoch keeps its rows as they were, no
    longer driven (saga_plans.yield_to), and they do not hide the driver's."""
    seen = [((k[1], r.domain), r.state) for _, a in holders
            for k, r in a.disk.compensations.items() if k[0] == wf]
    seen += [((k[1], k[2]), r.state) for _, a in holders
             for k, r in a.disk.extra_compensations.items() if k[0] == wf]
    where: dict = {}
    for key, row_state in seen:
        if where.get(key) not in ("COMPENSATED", "COMPENSATION_FAILED"):
            where[key] = row_state
    for name, a in alive.items():
        for step in a.disk.succeeded_here.get(wf, {}):
            sim.stats["saga run judged"] += 1
            if where.get((step, name)) not in ("COMPENSATED", "COMPENSATION_FAILED"):
                checker.fail(f"saga: {wf} ended {state}, {step} SUCCEEDED at {name} and"
                             f" not compensated there ({where.get((step, name))})")

"""The simulator's saga stories' shared parts: step and compensation ends, domains cut
off until healed (one place for the monkeypatching those stories share), and the
workflow of the stories of a step placed again."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.node.records import Timing
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import agent as sim_agent
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.run import Simulation


def steps_end(monkeypatch, succeeds: Callable[[str], bool]) -> None:
    """Every step attempt ends at once, SUCCEEDED where `succeeds(step)` (outputs naming
    the domain that ran it), else FAILED; an attempt of a workflow its domain no longer
    runs ends with nothing reported. Every compensation succeeds."""
    def done(agent, now, wf, step, attempt):
        agent.sim.fences.ended(agent.name, (wf, step, attempt))
        if wf not in agent.node.progress:
            return
        ok = succeeds(step)
        agent._step(now, sim_agent.StepEnded(wf, step, attempt, ok, {"by": agent.name},
                                             "" if ok else "boom"))

    def compensated(agent, now, wf, step, attempt):
        agent._step(now, sim_agent.CompensationEnded(wf, step, attempt, True, ""))

    monkeypatch.setattr(sim_agent.SimAgent, "step_done", done)
    monkeypatch.setattr(sim_agent.SimAgent, "compensation_done", compensated)


def cut_off(sim, cut: list[str], healed: list[bool]) -> None:
    """The domains named in `cut` (the story appends them as it cuts) are cut off until
    `healed` holds something: every message to or from them dropped, each DEAD in the
    others' views and every other SUSPECT in theirs (observed by the clock check as a
    view the simulator gave)."""
    views = sim.member_state

    def member_state(observer: str, name: str) -> str:
        if not healed and observer != name and (observer in cut or name in cut):
            state = "DEAD" if name in cut else "SUSPECT"
            sim.clock_check.observed(observer, name, state)
            return state
        return views(observer, name)

    def intercept(src, dst, msg, now):
        if not healed and (src in cut or dst in cut):
            return "drop"
        return None

    sim.member_state = member_state
    sim.intercept = intercept


def placed_again_story(seed: int, names: list[str], placement: dict[str, str],
                       timing: Timing) -> Simulation:
    """The stories of a step placed again: d0 coordinates d0.w0 among `names`, s0
    (idempotent, with a compensate block), s1 (needs s0, idempotent), s2 and s3, placed
    by `placement`; no cancels."""
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    steps = [spec_pb2.StepSpec(id="s0", capability="a", compensate=comp, idempotent=True),
             spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True),
             spec_pb2.StepSpec(id="s2", capability="a"),
             spec_pb2.StepSpec(id="s3", capability="a")]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow("d0.w0", "d0", 1.0, spec_pb2.WorkflowSpec(name="w0", steps=steps),
                            placement)],
        timing=timing,
    )
    return Simulation(seed, config, cancels=False)


def cut_as_s0_succeeds(sim, agent, now: float, cut: list[str], most: int) -> None:
    """In a crash hook: `agent`, not d0, whose run of d0.w0's s0 SUCCEEDED, is cut off
    (appended to `cut`) before it is told anything more, up to `most` domains."""
    if len(cut) < most and agent.name not in cut and agent.name != "d0" \
            and "s0" in agent.node.state.succeeded_here.get("d0.w0", {}):
        cut.append(agent.name)
        sim.view_change_at(now)


def cut_story(monkeypatch, sim, succeeds: Callable[[str], bool]) -> tuple[list[str], list[bool]]:
    """A saga story's opening: steps end as `succeeds` says (`steps_end`), and the
    domains the story appends to the first list returned are cut off (`cut_off`) until
    it appends to the second (healed)."""
    steps_end(monkeypatch, succeeds)
    cut: list[str] = []  # the domains cut off, in order
    healed: list[bool] = []
    cut_off(sim, cut, healed)
    return cut, healed


def crash_d0_then_heal(sim, cut: list[str], healed: list[bool], most: int,
                       ready: Callable[[object], bool]) -> list[float]:
    """A crash hook for `sim`: domains whose run of s0 SUCCEEDED are cut off
    (`cut_as_s0_succeeds`, up to `most`); once `most` are, d0 crashes the first time
    `ready(d0's agent)` holds, and when it is back the cuts heal. Returns the list the
    crash's time is appended to."""
    crashed: list[float] = []  # when d0 restarted, once

    def hook(agent, now, label):
        cut_as_s0_succeeds(sim, agent, now, cut, most)  # its run SUCCEEDED there
        if agent.name == "d0" and len(cut) == most and not crashed and ready(agent):
            crashed.append(now)
            return "crash"
        if crashed and not healed and sim.last_restart.get("d0", 0.0) >= crashed[0]:
            healed.append(True)  # d0 is back: the domains cut off come back
            sim.view_change_at(now)
        return None

    sim.crash_hook = hook
    return crashed

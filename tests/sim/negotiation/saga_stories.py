"""The simulator's saga stories' shared parts: step and compensation ends, and
domains cut off until healed (one place for the monkeypatching those stories share)."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.sim.negotiation import agent as sim_agent


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

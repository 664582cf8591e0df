"""Step and compensation ends for the simulator's saga stories: one place for the
monkeypatching those stories share."""

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

"""The checks of what the liar may not achieve in a negotiation simulation run.

Part of the invariant checker (check.py, whose header lists every check), run at the
finish: no honest domain admitted a workflow the liar coordinates (it takes part in
none, so any is a client's signed submission it replayed: liar.py), and every honest
domain's view of every other domain's keys is the genuine one, whatever key records
the liar forged or relayed (keyring.py). Their own module because they judge the
liar's doing alone, from the checker's YES votes and the run's keyring; functions of
the one `Checker`, as saga_check.py's are (typed loosely: check.py imports this
module, never the reverse).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


def check_no_replayed_submission(checker: Any, sim: World) -> None:
    """No honest domain voted YES in a workflow the liar coordinates: the liar takes
    part in no workflow, so any such workflow is a client's signed submission it
    replayed (liar.py)."""
    liar = sim.config.liar
    if liar is None:
        return
    for key, voters in checker.yes.items():
        if checker.txs[key].coordinator == liar:
            checker.fail(f"replay: {', '.join(sorted(voters))} admitted {key}, a signed"
                         f" submission {liar} replayed as a new workflow")


def check_keys_unchanged(checker: Any, sim: World) -> None:
    """Every honest domain's view of every other domain's keys is the genuine one:
    whatever records the liar forged or relayed (keyring.py) changed none."""
    expected = sim.keyring.expected
    for name, agent in sim.agents.items():
        for domain, keys in expected.items():
            if domain != name and agent.trust.keys_of(domain) != keys:
                checker.fail(f"keys: {name}'s view of {domain}'s keys changed")

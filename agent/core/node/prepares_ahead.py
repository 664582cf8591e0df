"""A submission's first PREPAREs sent with the write of its row, not after it.

Theory of operation
-------------------
A client's submission is written (the workflow's row, its request id, the first
round's record) before anything of it is told to the client. Its first round's
PREPAREs followed that write until now: one forced write in sequence on the path to
the commit. Under Paxos Commit they may go with it instead (the Outbox's `ahead`,
ready.py): in the Ready's `send_now`, handed to peers as the transaction starts.
A PREPARE goes so only to a peer that the turn sends nothing else after its write:
else it stays in its place among that peer's after-write messages, one envelope, as
it went before. Under load a turn carries votes, decisions and results for every
peer, and a PREPARE sent apart from them would cost the peer an envelope, a turn and
a transaction of its own per batch (fewer workflows a second at the peak); an idle
coordinator's turn, the unloaded path, has nothing else for its peers and its
PREPAREs leave one forced write sooner. The Outbox decides it when the Ready is
handed out, once the whole turn is known. Only these may go ahead:

- the first round of a submission taken in this turn (submitting.py names it while
  its Coordinator core starts): its row is in the same write, so a crash before that
  write leaves no trace of the workflow here at all. A later round's PREPAREs still
  follow its round record: a restored core knows its workflow and must know the
  rounds it asked about (coordinator_recovery.py);
- to a peer, never to this Node's own participant: its YES would be a hold of this
  Node for a workflow its own coordinator may not know after a restart, and nobody
  would ask about it (Termination tracks rounds other domains coordinate);
- under Paxos Commit only (the round has acceptors). Classic 2PC's decision is the
  coordinator's log alone: a participant in doubt asks the coordinator and nobody
  else may decide, and a restarted coordinator that does not know the workflow
  answers NOT_PREPARED, which decides nothing; it keeps the old order.

Why a crash before the write is safe. The coordinator restarted knows nothing of the
workflow: no row, no round, no Coordinator core. It never reuses the round or its
ballot 0: it would need the workflow again, and the id is new per submission (the
agent's wall clock in ms and 32 random bits, services.py; a retry of the client's
request id finds no request row, lost with the same write, and is a new workflow of
a new id). What it still receives about the lost round:

- a participant's vote: refused (a vote for no workflow of ours), nothing changes;
- a participant's DecisionQuery, once its lease passed: UNKNOWN with retention on
  (retention.py `forgotten_here`), else NOT_PREPARED (answer_query: no hold, no
  decision), neither of which decides; the participant asks the acceptors and runs
  a recovery ballot (termination.py). (Restarted under classic 2PC, the coordinator
  answers ABORT by presumption, core/workflow/presumed_abort.py: all the round can
  be.) No acceptor holds a value of the round
  (only ballot 0 could bring a COMMIT, and it was never sent), so the recovery
  proposer proposes its preferred value, ABORT, which is chosen; every YES voter
  learns it and releases its reservation. Nothing ran anywhere: a COMMIT needs the
  coordinator's ballot 0.
- a recovery ballot's PaxosPrepare or Accept at this Node's acceptor: taken as any
  other, on the round its coordinator stated (the signed round the PREPARE carried).

What a restart costs the client: its submission was never acknowledged, as before. A
retry of a submission signed by the client (not a domain's own) under the new id may
be refused at a participant that admitted the lost one (one signed submission, one
workflow id: core/identity/submission_guard.py): that retry ends ABORTED naming the
replay, and the client signs again with a new request id.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.rounds import SendPrepare


def sends_ahead(negotiation: Any, wf: str, a: SendPrepare) -> bool:
    """May this PREPARE leave before the write of its round (see the header)?"""
    return negotiation.submitting == wf and bool(a.acceptors) \
        and a.domain != negotiation.n.name

"""The rows the store reads and writes, as plain dataclasses: a workflow, a step, a
reservation and the PREPARE behind it, an acceptor record. How each is encoded in its
table is the table's code (store.py for workflows and steps, reservation_tables.py,
paxos_tables.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkflowRow:
    id: str
    name: str
    coordinator: str
    state: str
    spec: bytes
    reason: str = ""
    placement: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    round: int = 0
    refusals: list[dict] = field(default_factory=list)
    request_id: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    acceptors: list[str] = field(default_factory=list)  # Paxos Commit: of `round`
    # At the coordinator: the submitter's SignedSpec without its spec (that is `spec`).
    submission: bytes = b""
    # Coordinator takeover (agent/core/workflow/takeover.py): the epoch of `coordinator`
    # (0: the one the id names), and the epoch this domain granted and to whom (its
    # promise: never to two claimants of one epoch).
    epoch: int = 0
    granted_epoch: int = 0
    granted_to: str = ""


@dataclass
class StepRow:
    workflow_id: str
    step_id: str
    domain: str
    state: str
    attempts: int = 0
    outputs: dict = field(default_factory=dict)
    error: str = ""
    # The domains the step was placed on before, each lost (agent/runtime/replacement.py).
    replaced_from: list[str] = field(default_factory=list)


@dataclass
class ReservationRow:
    workflow_id: str
    round: int
    coordinator: str
    state: str
    steps: list[tuple[str, str]]
    lease_expires_ms: int
    coordinator_endpoint: str = ""


@dataclass
class HoldTxRow:
    """The PREPARE behind a Paxos Commit reservation (serialized PaxosTx and spec)."""

    workflow_id: str
    round: int
    tx: bytes
    spec: bytes
    placement: dict[str, str]
    coordinator_endpoint: str = ""
    # The coordinator's signed round (an Envelope, as received); b"" from an older
    # coordinator, or one that signed it only when an acceptor held no step.
    round_tx: bytes = b""


@dataclass
class AcceptorRow:
    """One acceptor record; ballots are (n, proposer), values serialized PaxosValues."""

    workflow_id: str
    round: int
    tx: bytes
    promised: tuple[int, str] | None = None
    accepted: tuple[int, str] | None = None
    accepted_value: bytes | None = None
    decided: bytes | None = None
    # The coordinator's signed round the record was made of (an Envelope, as received
    # and verified); b"" for a record of an older agent, or made of an older
    # coordinator's own unsigned message.
    round_tx: bytes = b""


"""What a Node keeps durably, and the agent-level messages it exchanges.

The negotiation cores define the consensus and decision messages; the rest of the
agent's protocol (PREPARE and votes, step results, the final state of a workflow,
acknowledgements, takeover claims) is defined here, as plain frozen dataclasses the
simulator sends as they are (the daemon's wire carries the same facts in protobuf).
`Disk` is the durable state, one dict (or set) per table: the Node reads a view of it
and says every change to it as a record in its `Ready` (agent/core/node/ready.py); a
driver applies those records to its own copy (SQLite rows in a real agent).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from fedorch.core.negotiation.acceptor import AcceptorRecord
from fedorch.core.negotiation.messages import Ballot, Key, TxInfo, Value, VoteIn
from fedorch.core.negotiation.participant import Hold
from fedorch.core.node.retention import Retention
from fedorch.core.node.takeover_grants import Certificate, SignedGrant, StatedRound
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2


@dataclass(frozen=True)
class Timing:
    lease_s: float = 8.0
    prepare_timeout_s: float = 2.0
    query_timeout_s: float = 2.0
    query_interval_s: float = 2.0
    resend_s: float = 1.0
    backoff_s: float = 0.5
    decision_resend_s: float = 3.0
    reliable_resend_s: float = 1.0
    # A participant's DecisionAck waits this long for a result of its own to stand for
    # it (commit_acks.py); 0: sent at once. Under the coordinator's commit_notice_s.
    decision_ack_s: float = 0.5
    stagger_s: float = 1.0   # participants start recovery ballots in turn, this far apart
    max_rounds: int = 2
    # Coordinator takeover (agent/core/workflow/takeover.py); None: off, as before it.
    takeover_after_s: float | None = None
    dead_after_s: float = 1.5  # membership: a crashed agent is DEAD this long after
    # Paxos Commit: at most this many acceptors (negotiation.max_acceptors); a
    # participant beyond it only learns the decision.
    max_acceptors: int = 5
    # `negotiation.commit: 2pc`: the workflow's own rounds in classic two-phase commit
    # (no acceptors, no Paxos message; decided by the coordinator's log alone).
    classic: bool = False
    # Retention of ended workflows inside the Node (retention.py); None: keep everything.
    retention: Retention | None = None
    # Self-fencing (self_fencing.py): a participant cut off this long from its
    # workflow's coordinator and other participants stops its steps; None: off (a
    # driver that posts no membership view must leave it off).
    step_lease_s: float | None = None


# ---- shell-level messages: what the cores leave to the wire protocol ---------------


@dataclass(frozen=True, eq=False)
class WfInfo:
    spec: spec_pb2.WorkflowSpec
    placement: dict[str, str]
    coordinator: str
    # The client's signed submission (agent/core/identity/submission.py) as far as the
    # simulator models it: no signature, but its fields (the coordinator it was signed
    # for, its request id and time) cannot be altered by whoever relays it.
    submission: spec_pb2.SignedSpec | None = None
    # Coordinator takeover: this round as its coordinator signed it, when it has an
    # acceptor that holds no step (takeover_grants.StatedRound; set on the PREPARE as it
    # leaves, kept by the participant with the rest): a claimant's proof of the round.
    stated: StatedRound | None = None
    # A re-placement round (replacement.py): the domain the round's step was lost
    # with; "" for a workflow's own rounds. The participant asked keeps it with the
    # PREPARE, and takes the round's COMMIT as a new placement of that step.
    lost: str = ""
    # A re-placement round: every domain the step was placed on before, oldest first
    # (`lost` last), so a new domain that drives the saga knows each run it may owe a
    # compensation for (authority_steps.placed_before). (): a workflow's own round, or
    # one PREPAREd before the list was kept (read as `lost` alone).
    before: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class PrepareMsg:
    tx: TxInfo
    steps: tuple[tuple[str, str], ...]
    info: WfInfo
    # A successor's re-placement round (replacement_successor.py): the coordinator
    # epoch it acts in (its rounds are that epoch's range, epoch_certificate.round_range)
    # and its certificate, checked by the candidate before anything else (authority.py).
    # 0 and (): the original coordinator's round.
    held_epoch: int = 0
    won: Certificate = ()


@dataclass(frozen=True)
class VoteMsg:
    key: Key
    domain: str
    yes: bool
    reason: str
    # A YES: the voter's signed statement of it (votes.py: its turn's Merkle path and
    # root signature), which goes into the COMMIT certificate as received. A NO needs
    # none (it goes into no certificate): b"".
    evidence: bytes = b""


@dataclass(frozen=True, eq=False)
class ResultMsg:
    workflow_id: str
    step_id: str
    attempt: int
    state: StepState
    outputs: dict
    error: str
    # The placement epoch (fencing token) of the step in the sender's view: 0 for a
    # step's first placement, the re-placement round's number after (replacement.py).
    # A result from an older placement than the receiver knows is refused.
    epoch: int = 0
    # A final result sent to the workflow's coordinator by the domain that ran the
    # step: that domain's signed statement of it (votes.result_statement, sealed with
    # its turn's other results: votes.py), kept by the coordinator's audit log as
    # evidence for proofs (docs/audit.md). b"": none (other results, the simulator's).
    evidence: bytes = b""
    # Its send's generation, which its acknowledgement names (AckMsg.gen; pending.py,
    # "Generations"): stamped by `Node.reliable`; 0: sent once, never kept.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True, eq=False)
class PlacedMsg:
    """The workflow's coordinator tells a participant that a re-placement round
    committed (replacement.py): `step_id` is on `domain` from placement `epoch` (the
    round's number) on, after `lost` was lost. `needs`: the results the coordinator
    holds of the steps it needs that SUCCEEDED, (step, attempt, outputs), so the new
    domain has its inputs even when their own domain is gone. `electorate`: the
    workflow's takeover electorate (the committed round's acceptors), which a new
    domain, new to the workflow, keeps as its own (its re-placement round, classic
    2PC, names none the others share).

    Told by a successor (replacement_handover.py): `held_epoch` is the coordinator
    epoch it acts in and `won` its certificate (a new domain not committed here takes
    the tell on it); `made`: the round's COMMIT handed out to its new domain, once every
    other member was told again.

    `void`: the holder of a later epoch (`held_epoch`, `won`) answers the new domain
    `domain`, in doubt on re-placement round `epoch`, that it knows no placement of that
    round and none can leave its COMMIT any more: the new domain releases its YES
    (replacement_handover.py, `void`; `step_id` and `lost` are empty)."""

    workflow_id: str
    step_id: str
    domain: str
    epoch: int
    lost: str
    needs: tuple[tuple[str, int, dict], ...] = ()
    electorate: tuple[str, ...] = ()
    held_epoch: int = 0
    won: Certificate = ()
    made: bool = False
    void: bool = False
    # Every domain the step was placed on before `domain`, oldest first (`lost` last):
    # the saga owes a compensation for a SUCCEEDED run in any of them
    # (authority_steps.placed_before). (): told before the list was kept.
    before: tuple[str, ...] = ()
    # Its send's generation, which its acknowledgement names (AckMsg.gen; pending.py,
    # "Generations"): stamped by `Node.reliable`; 0: sent once, never kept.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PlacementQuery:
    """A restarted participant asks the coordinator it follows where the workflow's
    steps are placed now, before it starts any of them (restart_check.py); so does one
    cut off from it, before it starts `starting`, (step, placement epoch) each, which
    the coordinator then counts as possibly started there (start_asks.py); so does the
    Node that drives it, back from a restart, of its electors, saying the epoch it
    drives in (`drives_in`: original_asks.py, "Its own steps")."""

    workflow_id: str
    starting: tuple[tuple[str, int], ...] = ()
    drives_in: int | None = None


@dataclass(frozen=True, eq=False)
class PlacementAnswer:
    """The coordinator that drives the workflow (in `epoch`) answers a PlacementQuery:
    its progress's view of every step, (step, placement epoch, domain: "" for a step
    lost and waiting for its new round), and its placements on record, (step, epoch,
    domain, lost), each taken as a PlacedMsg is (restart_check.py). An elector asked by
    the original back from a restart answers epoch 0 and nothing else when it holds
    epoch 0 (original_asks.py, "Its own steps")."""

    workflow_id: str
    epoch: int
    steps: tuple[tuple[str, int, str], ...]
    placements: tuple[tuple[str, int, str, str], ...] = ()
    # (step, the domains it was placed on before, oldest first) of each step placed
    # again whose list is on record (PlacedMsg.before).
    before: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class FinalMsg:
    workflow_id: str
    state: WorkflowState
    epoch: int = 0  # the sender's coordinator epoch
    # Every participant had acknowledged the COMMIT when it was sent: none is in doubt,
    # so none will run a recovery ballot that needs this workflow's acceptor records.
    settled: bool = False
    # The sender won `epoch`: its epoch certificate (the signed grants of a majority,
    # takeover_grants.py), checked like a claim's; a member that holds that epoch for a
    # claimant that lost it follows the winner and takes the end. () : none shown.
    won: Certificate = ()
    # The saga the sender drives (compensating.py): (step, domain, max attempts) of
    # each compensation it owes, as planned at the end; each participant writes it
    # (`plans`) until the sender tells the saga over. () : none owed (or not planned).
    owed: tuple[tuple[str, str, int], ...] = ()
    # The saga of this end is over (sent after the end, once its compensations all
    # ended, under its own resend key): the participants drop their plan.
    saga_over: bool = False
    # Its send's generation, which its acknowledgement names (AckMsg.gen; pending.py,
    # "Generations"): stamped by `Node.reliable`; 0: sent once, never kept.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ClaimMsg:
    """A participant claims coordinator epoch `epoch` (TakeoverClaim)."""

    workflow_id: str
    epoch: int
    # To an acceptor holding no step: the committed round the claimant proves (its
    # coordinator's signed round and a COMMIT of it, TakeoverClaim.round_tx / commit).
    proof: Round | None = None
    # The claimant has won `epoch`: its epoch certificate (the signed grants of a
    # majority of the electorate, takeover_grants.py). () : it has not (yet).
    won: Certificate = ()
    # With `proof`: that round as the original coordinator signed it (WfInfo.stated).
    stated: StatedRound | None = None
    # With `proof`: its COMMIT's certificate (the signed YES of every participant, as
    # the claimant learned it, votes.py), without which the proof shows no COMMIT.
    commit: tuple[VoteIn, ...] = ()
    # A claimant outside the electorate, claiming: the signed grants of `epoch` it
    # holds so far, which a member counts as given where it asks whether the claim
    # could win (takeover_claims.py `_cannot_win`). () : none, or not asked.
    grants: Certificate = ()


@dataclass(frozen=True)
class ClaimAnswerMsg:
    workflow_id: str
    epoch: int
    granted: bool
    held_epoch: int
    holder: str
    final: WorkflowState | None = None  # the answerer has ended it: how (no grant then)
    in_doubt: bool = False  # it holds a vote, no decision learned (TakeoverAnswer.in_doubt)
    # The certificate of `held_epoch` for `holder` the answerer holds, verified (its
    # own, or one another member showed it); a denial is followed only on it.
    won: Certificate = ()
    # A grant: the answerer's signed statement of it (takeover_grants.py), which the
    # claimant's certificate is made of.
    grant: SignedGrant | None = None
    # A grant (or a denial with the end: takeover_claims.py): the answerer's placements
    # on record, (step, epoch, domain, lost) of each step placed again (replacement.py),
    # which the claimant takes before it counts the grant (or takes the end): a
    # successor knows every new placement whose COMMIT left (the original sends one
    # only once a majority of the electorate holds it).
    placements: tuple[tuple[str, int, str, str], ...] = ()
    # A grant (or such a denial): (step, the domains it was placed on before, oldest first) of each of
    # those steps whose list is on record (PlacedMsg.before).
    before: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class CompensateMsg:
    """The workflow's coordinator tells the step's domain to run attempt `attempt` of
    the step's compensation (compensating.py)."""

    workflow_id: str
    step_id: str
    attempt: int
    # Its send's generation, which its acknowledgement names (AckMsg.gen; pending.py,
    # "Generations"): stamped by `Node.reliable`; 0: sent once, never kept.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CompensatedMsg:
    """The step's domain reports how attempt `attempt` of its compensation ended."""

    workflow_id: str
    step_id: str
    attempt: int
    ok: bool
    error: str = ""
    # Its send's generation, which its acknowledgement names (AckMsg.gen; pending.py,
    # "Generations"): stamped by `Node.reliable`; 0: sent once, never kept.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CompRow:
    """The coordinator's record of one step's compensation (compensating.py)."""

    domain: str
    max_attempts: int
    state: str = "PENDING"   # a core.workflow.compensation.CompState value
    attempts: int = 0
    error: str = ""


@dataclass(frozen=True)
class AckMsg:
    msg_id: tuple
    # The new domain of a re-placement round, acknowledging a tell of its placement
    # (msg_id "placed"), holds no YES of that round and learned no COMMIT of it: nothing
    # ever runs under it there (replacement_handover.py, "A void in a later epoch").
    void: bool = False
    # The generation of the send acknowledged (its message's `gen`): only that send's
    # entry is popped, not a newer one kept since under the same id (pending.py,
    # "Generations"). 0: names none: any. Not compared:
    # it is the same acknowledgement of the id whichever send it names.
    gen: int = field(default=0, compare=False)


@dataclass(frozen=True, eq=False)
class CoordRow:
    """The coordinator's workflow row: written before any PREPARE of a round leaves,
    or, for a submission's first round under Paxos Commit, in the write its first
    PREPAREs may leave with (prepares_ahead.py)."""

    workflow_id: str
    info: WfInfo          # spec, and the placement of `round`
    state: WorkflowState = WorkflowState.PENDING
    round: int = 0
    acceptors: tuple[str, ...] = ()
    committed: bool = False
    finished: bool = False
    reason: str = ""
    # `round`'s creation time (TxInfo.created_ms), so that a restored core states the
    # round as its PREPAREs did (the acceptors compare it): 0 before a round, or none.
    created_ms: int = 0


@dataclass
class Disk:
    """What survives a crash (SQLite tables in a real agent): one dict (or set) per table."""

    rows: dict[str, CoordRow] = field(default_factory=dict)
    cells: dict[Key, Value] = field(default_factory=dict)        # proposal cells, write-once
    records: dict[Key, Value] = field(default_factory=dict)      # coordinator decision records
    learned: dict[Key, Value] = field(default_factory=dict)      # decisions known here
    acceptor: dict[Key, AcceptorRecord] = field(default_factory=dict)
    # Each Hold's lease_expires is a monotonic instant of the run that wrote it: a
    # restore counts it again from its own `now` (participant.restarted), never reads it.
    # A committed hold stays PREPARED here: the COMMIT in `learned` says the rest
    # (negotiation.py; negotiation_restore.py decides it again).
    holds: dict[Key, Hold] = field(default_factory=dict)
    info: dict[Key, WfInfo] = field(default_factory=dict)        # PREPAREs taken part in
    committed: dict[str, int] = field(default_factory=dict)      # workflow -> committed round
    runs: set[tuple[str, str, int]] = field(default_factory=set)
    # workflow -> {step: (attempt, state, outputs, error)}, each step's result its own
    # row, keyed (workflow, step) (ready.RecordedResults): written once, not again with
    # every later result of its workflow.
    results: dict[str, dict[str, tuple]] = field(default_factory=dict)
    final: dict[str, WorkflowState] = field(default_factory=dict)
    final_acked: dict[str, set[str]] = field(default_factory=dict)
    ballots: dict[Key, Ballot] = field(default_factory=dict)     # last ballot per recovery
    # Coordinator takeover: the (epoch, coordinator) followed or acted as, and granted.
    epochs: dict[str, tuple[int, str]] = field(default_factory=dict)
    granted: dict[str, tuple[int, str]] = field(default_factory=dict)
    # An acting successor's epoch certificate (the grants it won with): workflow ->
    # (epoch, its grants), written with its Act and shown again after a restart.
    certificates: dict[str, tuple[int, Certificate]] = field(default_factory=dict)
    # A claim of ours withdrawn (core/workflow/takeover_claiming.py, Withdrawn):
    # workflow -> the epoch withdrawn, written with the withdrawal's `granted` (the
    # epoch followed again), dropped with the write of the next claim or epoch followed;
    # read back on restore (the claimant takes it up again on a member's late grant,
    # and never claims below it).
    withdrawn: dict[str, int] = field(default_factory=dict)
    # The members' signed grants of our claim, as received: workflow -> (the epoch
    # claimed, its grants), written with each grant counted, read back on restore by a
    # claimant still claiming that epoch (counted again, shown with its claim).
    claim_grants: dict[str, tuple[int, Certificate]] = field(default_factory=dict)
    # The domains that granted a claim of ours for an ended workflow's saga plan, and
    # are owed its end in their epoch once the claim is over (takeover_late_grants.py):
    # workflow -> {granter: the granted epoch}, written with the grant (a claim still
    # running: read back on restore) or with the tell (a grant after the claim), the
    # granter's entry dropped at its acknowledgement, told again after a restart (the
    # granter follows that epoch and waits for it).
    late_grants: dict[str, dict[str, int]] = field(default_factory=dict)
    # A later epoch's end taken here: workflow -> (epoch, its coordinator, its epoch
    # certificate), written with the end, shown to a coordinator of an older epoch that
    # still tells another end (EndNotices.on_final), so that it follows this one.
    end_proofs: dict[str, tuple[int, str, Certificate]] = field(default_factory=dict)
    # A domain that ended a workflow and granted a later epoch's claim for it: workflow
    # -> the saga's driver it followed until that grant, written with the grant, whose
    # tells it still takes while the holder has not shown it won (saga_unproven_holder.py).
    drivers_before: dict[str, str] = field(default_factory=dict)
    # A FAILED end this Node made as a participant acting in a later epoch: workflow ->
    # its reason (the failed steps), written with the end, shown by its status (the
    # original coordinator keeps its end's reason in its row).
    end_reasons: dict[str, str] = field(default_factory=dict)
    # The committed round's acceptors (the takeover electorate), kept at the commit.
    electorates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Signed submissions admitted here: key -> (workflow id, issued at ms).
    admitted: dict[bytes, tuple[str, int]] = field(default_factory=dict)
    # Retention (retention.py): workflow -> wall ms of its last end, decision, acceptor
    # record or acknowledgement here; and the workflows whose end said `settled`.
    endings: dict[str, int] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)
    # Retention of acceptor records (retention.py, acceptor.py): coordinator -> the
    # newest creation time (its wall ms) among the rounds of it whose acceptor record
    # this Node forgot; a round of it no newer, without a record here, is refused.
    horizons: dict[str, int] = field(default_factory=dict)
    # Cancels (cancel.py): workflow -> the reason of a cancel its coordinator took; and
    # a client's request id -> (workflow id, wall ms) of the submission it made here.
    cancels: dict[str, str] = field(default_factory=dict)
    requests: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Sagas (compensating.py): as coordinator, (workflow, step) -> its compensation;
    # as the step's domain, (workflow, step, attempt) -> (state, error, reported) of an
    # attempt run here ("running" written before it starts, "succeeded"/"failed" at its
    # end; reported: the coordinator acknowledged the report).
    compensations: dict[tuple[str, str], CompRow] = field(default_factory=dict)
    comp_runs: dict[tuple[str, str, int], tuple[str, str, bool]] = \
        field(default_factory=dict)
    # As driver: (workflow, step, domain) -> the compensation of a run of that step in
    # another domain than its row's in `compensations` (a step placed again that
    # SUCCEEDED in its lost domain and its new one owes one in each: saga_runs.py).
    extra_compensations: dict[tuple[str, str, str], CompRow] = field(default_factory=dict)
    # As a step's domain: workflow -> {step: (attempt, placement epoch)} of each run
    # made here that SUCCEEDED, of a step with a `compensate` block (written with its result): the
    # proof a compensation told here undoes a run made here, where the step may have
    # been placed again since (saga_runs.py).
    succeeded_here: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    # workflow -> {step: the domain whose run made the SUCCEEDED result held in
    # `results`}, of a step with a `compensate` block, written with that result: the
    # plan owes its compensation there (saga_results.py, `domain_of`). No row (a
    # file of an older build): the step's placement now, as before.
    result_domains: dict[str, dict[str, str]] = field(default_factory=dict)
    # As a participant told an end that owes a saga: workflow -> the owed compensations
    # (step, domain, max attempts) of its end notice (FinalMsg.owed), until its driver
    # tells the saga over (FinalMsg.saga_over). Open: retention keeps the workflow.
    plans: dict[str, tuple[tuple[str, str, int], ...]] = field(default_factory=dict)
    # Re-placement (replacement.py): workflow -> {step: (epoch, domain, lost)} of each
    # step placed again by a committed round (the coordinator's, written with the
    # round's decision; a participant's, when told; the new domain's at the COMMIT);
    # and, at the coordinator, workflow -> the last round number a re-placement round
    # may have used (written before its first PREPARE: a restart never reuses one).
    placements: dict[str, dict[str, tuple[int, str, str]]] = field(default_factory=dict)
    replaced_rounds: dict[str, int] = field(default_factory=dict)
    # The coordinator's refusals (core.negotiation.rounds.Refusal): workflow -> (round,
    # domain, steps, reason) of each, written with the round record that follows them
    # or with the round's end; shown by its status, given back to a restored core.
    refusals: dict[str, tuple[tuple[int, str, tuple[str, ...], str], ...]] = \
        field(default_factory=dict)
    # Re-placement: workflow -> {step: every domain it was placed on before its
    # placement in `placements`, oldest first (that placement's `lost` last)}, written
    # with it (PlacedMsg.before): the saga owes a compensation for a SUCCEEDED run in
    # any of them (authority_steps.placed_before). A step placed again with no row
    # here (written before the list was kept) is read from `placements` as before.
    earlier_domains: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # Retention (ended_records.py): workflow -> (end state, epoch held, its holder, the
    # epoch an asker is told the end in, or NOTHING (-1) or IF_DRIVER_GONE (-2), wall ms
    # forgotten) of each ended workflow retention forgot, kept `keep_end_records_s` and
    # answered to late askers.
    ended_records: dict[str, tuple[WorkflowState, int, str, int, int]] = \
        field(default_factory=dict)
    # Retention (ended_records.py): workflow -> (epoch, its holder, its certificate as
    # received) of a record's end made by a successor, beside its row in `ended_records`
    # and dropped with it: told to the original coordinator back unaware of that end.
    ended_proofs: dict[str, tuple[int, str, Certificate]] = field(default_factory=dict)


def copy_hold(h: Hold) -> Hold:
    """A hold as written to disk: never aliased with the core's own object."""
    # Built directly: dataclasses.replace walks the fields and re-runs __init__'s
    # checks, which cost more than the copy itself (a hold is written at every vote).
    return Hold(h.workflow_id, h.round, h.coordinator, h.state, list(h.steps),
                h.lease_expires, h.coordinator_endpoint, h.next_query, h.tx)


TABLES = tuple(f.name for f in fields(Disk))

"""The node engine's audit log: what the Node decided, appended to the domain's chain.

Theory of operation
-------------------
The older engine (`shells`, removed) appended a record of each act to the audit log in
the transaction that made the act durable. The node engine keeps its state in node.db
and the audit log stays in agent.db (beside the checkpoints, `fedorch audit` and the
console read it there), and two SQLite files have no common transaction. So the log
follows node.db instead: a record is made only of a write group node.db has
committed, never of one a crash could still undo.

- `AuditedWrites` wraps the Durable port under the held ports of write_behind.py
  (beside the status view's WriteNotice): its `write` returns only once the turn's
  groups are committed (or, after a storage fault, once a retry wrote every kept
  group), and then hands those groups to `NodeAuditLog.written`.
- `NodeAuditLog.written` reads the groups' ops and notes, in order, and makes the
  records of the same kinds and data the older engine wrote:
  `submitted` (a new workflow row, round 0, with the submitter's signed spec and
  signature), `vote` (a YES: the `yes_voted` note of the prepare
  record, its steps from the hold written with it), `decision` (a coordinator's
  decision record newly written: its write-once cell won), `learned` (a decision
  newly learned here), `step_started` (a run added under its idempotency key),
  `step_ended` (a step run here reached a final state: "step end"),
  `result_received` (at the coordinator, a final result of another domain's step:
  "step result") and `workflow_ended` (at the coordinator, an outcome or a
  Finished row in a final state). A group written again (a
  restore that re-decides nothing writes no op) makes no act: acts follow
  ops, and the Node writes a write-once cell, a learned decision or a run once.
- A client's cancel, once the coordinator's client service takes it, is recorded
  there (`client_request`, cancels.py), written alone
  before the Node is told: it precedes the `workflow_ended` it leads to.
- A NO vote changes no table (presumed abort needs no record), so no group tells of
  it: `AuditedNode`, around what the driver steps, sees the PREPAREs going in and the
  Ready's NO votes coming out, and records each NO (with the steps and spec of its
  PREPARE) when the Ready is taken, as it leaves. A crash may lose that record; it
  never leaves a record of anything undone, since the vote changed nothing.
- Cheap: the acts of a turn are queued in memory as they are (kind, workflow,
  data, wall time); one task (`run`, owned by the engine's TaskGroup) writes
  everything queued as ONE transaction of agent.db (`Store.apply`, the store's group
  commit), and whatever queued meanwhile forms the next. It waits `BATCH_S` after the
  first act queued before it writes (no deadline while nothing is queued): at most one
  audit transaction per driver turn and at most 1/BATCH_S per second. A transaction
  costs far more than its records (the hop to aiosqlite's thread and back, BEGIN,
  COMMIT and its fsync): written as soon as queued, one per turn, the log cost the
  participants as much as the coordinator, whose records are twice theirs.
- One record per workflow and batch: the acts of one workflow in a batch are ONE
  record of kind `acts` (audit_table.ACTS: `{"acts": [{"kind", "time_ms", "data"},
  ...]}`, in the order they came, each with its own time), encoded and chained once
  (`take`, when the batch is written): each act written as canonical JSON by its
  kind's writer (core/audit/acts.py, the same bytes as `canonical` at a fraction of
  its cost), the record's body joined from them. A record costs more than an act (its row and
  its index entry, its hash, its canonical JSON call): 17 acts per three-domain
  workflow over the three agents were 17 records, and at the peak are about 10
  (a workflow spans several batches), fewer at lower rates. The readers of a
  workflow's records (`fedorch audit show` and `proof`, the console) read an `acts`
  record as its acts, each with the record's seq and hash (audit_table.acts); the
  chain, the checkpoints and `verify` see records, as before. No signature per
  record: the chain is signed by the Audit's checkpoints.
- Evidence for proofs (attestations.py, given as `Records(evidence=...)`): a COMMIT's
  `decision` keeps its certificate (the round and every participant's signed YES, as
  the value holds them); a `result_received` keeps the result as the domain that ran
  it signed it, checked as it is recorded; a `submitted` and a `workflow_ended` keep
  the coordinator's attestation, sealed with the batch's others when the batch is
  taken (one signature per audit transaction: signed one by one, those two
  signatures were 40% of what this log cost the coordinator's event loop). The
  results this domain sends its coordinators are sealed per turn by `AuditedNode`.
  Without `evidence`, none of them (null), and no proof can be built.
- `close()` writes what is still queued when the engine stops, before the daemon
  signs its last checkpoint and closes agent.db, for at most CLOSE_S. While agent.db
  cannot be written (its store retries a storage fault), acts wait in memory up to
  MAX_QUEUED; beyond, and at a stop that gives up, they are counted as lost
  (`fedorch_node_audit_records_total{outcome="lost"}`, which counts acts), never
  silently dropped.

What it cannot say: a crash between node.db's commit and the audit's loses the
acts queued then, at most BATCH_S of them plus one transaction's (the log is
behind node.db by the queued acts, never ahead: an act recorded names only what is
durable). A proof needs the original coordinator's records of the whole workflow
(docs/audit.md: not one a successor ended).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fedorch.core.audit import proof as proofs
from fedorch.core.audit.acts import act_text
from fedorch.core.audit.chain import b64, canonical
from fedorch.core.negotiation.abort_reasons import refusals_text
from fedorch.core.node.inputs import Message
from fedorch.core.node.ready import ADD, DELETE, PUT, Ready, Write
from fedorch.core.node.records import CoordRow, PrepareMsg, ResultMsg, VoteMsg
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine.attestations import Attestations
from fedorch.runtime.node_engine.layer import NodeLayer, Refuse
from fedorch.runtime.node_engine.reload import Reconfigure
from fedorch.runtime.ports import Durable

__all__ = ["AuditedNode", "AuditedWrites", "NodeAuditLog", "Records", "acts_texts",
           "spec_sha256"]

log = logging.getLogger("fedorch.node_engine")

# The write groups (the Node's points, core/node) whose rows end a workflow.
_END_POINTS = frozenset({"workflow outcome", "Finished"})

# One record: (kind, workflow id, data).
Entry = tuple[str, str, dict[str, object]]

BATCH_S = 0.1  # the acts queued this long after the first are one transaction
# While agent.db cannot be written (its store retries a storage fault until it can),
# acts wait in memory up to this many; more are dropped and counted as lost.
MAX_QUEUED = 200_000
CLOSE_S = 5.0  # at a stop, the last acts are given this long to be written


def spec_sha256(message: Any) -> str:
    """The hash of a PREPARE's spec or of the policy, as the `vote` records carry it."""
    # A spec's bytes are those its rows were written with (node_codec_protos.py).
    return hashlib.sha256(node_codec().proto_bytes.of(message)).hexdigest()


def outputs_sha256(outputs: Any) -> str:
    """`proofs.outputs_value_hash` without its check of the value: the Node holds only
    outputs its boundary took as JSON data, whose canonical text is the same (one
    encoder, the same options); anything else is hashed (and refused) the long way."""
    if type(outputs) is dict:
        try:
            return hashlib.sha256(canonical(outputs)).hexdigest()
        except (TypeError, ValueError):
            pass
    return proofs.outputs_value_hash(outputs)


def _step_state(state: object) -> str:
    return str(state)  # a StepState is a StrEnum: its value


class Records:
    """The translation of durable write groups and NO votes into audit entries (no I/O).

    `node`: the Node (read for what a group does not carry: a placement, a round's
    refusals); `results`: the results table as durable now (the restored one), kept
    in step with the groups to tell which step a results row changed; `evidence`:
    the signing and checking of what proofs need (attestations.py; None: records
    without it)."""

    def __init__(self, domain: str, node: Any, results: Mapping[str, Mapping], *,
                 policy_sha256: str, evidence: Attestations | None = None) -> None:
        self.domain = domain
        self.node = node
        self.evidence = evidence
        self.results: dict[str, Mapping] = dict(results)
        self.policy_sha256 = policy_sha256
        self._infos: dict = {}  # a batch's PREPAREs taken and holds, by transaction
        self._holds: dict = {}
        self._ops = {("rows", PUT): self._row, ("records", PUT): self._decision,
                     ("learned", PUT): self._learned, ("runs", ADD): self._run,
                     ("results", PUT): self._result, ("results", DELETE): self._forget,
                     ("info", PUT): self._info, ("holds", PUT): self._hold}
        # Most of a turn's ops are of tables no act is made of: passed over by name.
        self._tables = frozenset(table for table, _ in self._ops)

    # ---- durable groups ---------------------------------------------------------------

    def of_writes(self, writes: Sequence[Write]) -> list[Entry]:
        out: list[Entry] = []
        self._infos, self._holds = {}, {}
        ops, tables = self._ops, self._tables
        for w in writes:
            for op in w.ops:  # `in` and a subscript, not .get: no call per op
                if op.table in tables and (op.table, op.kind) in ops:
                    ops[(op.table, op.kind)](w.point, op.key, op.value, out)
            for note in w.notes:
                if note[0] == "yes_voted":
                    self._yes(note[1], out)
        return out

    def _info(self, point: str, key: Any, info: Any, out: list[Entry]) -> None:
        self._infos[key] = info

    def _hold(self, point: str, key: Any, hold: Any, out: list[Entry]) -> None:
        self._holds[key] = hold

    def _row(self, point: str, wf: str, row: CoordRow, out: list[Entry]) -> None:
        if row.round == 0 and row.state is WorkflowState.NEGOTIATING and not row.finished:
            out.append(self._submitted(row))
        elif row.state in TERMINAL and point in _END_POINTS:
            out.append(self._ended(row))

    def _submitted(self, row: CoordRow) -> Entry:
        """The `submitted` record: the submitter's signed spec and
        signature, and the attestation sealed with the batch (see the header)."""
        wf, signed = row.workflow_id, row.info.submission
        if signed is None:  # the services sign what a client did not (never None there)
            return (proofs.SUBMITTED, wf, {
                "spec_sha256": spec_sha256(row.info.spec), "spec": None, "principal": "",
                "peer": "", "request_id": "", "client_signature": None,
                "attestation": None})
        data: dict[str, object] = {
            "spec_sha256": hashlib.sha256(signed.spec).hexdigest(), "spec": b64(signed.spec),
            "principal": signed.principal, "peer": "", "request_id": signed.request_id,
            "client_signature": b64(signed.signature), "attestation": None}
        if self.evidence is not None:
            self.evidence.submission(row, data)
        return (proofs.SUBMITTED, wf, data)

    def _ended(self, row: CoordRow) -> Entry:
        """The `workflow_ended` record, with the attestation sealed with the batch."""
        data: dict[str, object] = {"state": row.state.name, "reason": row.reason,
                                   "attestation": None}
        if self.evidence is not None:
            self.evidence.final(row, self.results.get(row.workflow_id, {}), data)
        return (proofs.ENDED, row.workflow_id, data)

    def _decision(self, point: str, key: tuple, value: Any, out: list[Entry]) -> None:
        wf, round_ = key
        reason = ""
        if not value.commit:
            core = self.node.coordinators.get(wf)
            refused = [r for r in getattr(core, "refusals", ()) if r.round == round_]
            reason = refusals_text(refused) if refused else ""
        certificate = None
        if value.commit and self.evidence is not None:
            # Every participant's signed YES as the COMMIT holds it (votes.py evidence).
            certificate = {"round": round_, "votes": [b64(v.raw) for v in value.votes]}
        out.append((proofs.DECISION, wf, {
            "round": round_, "outcome": "COMMIT" if value.commit else "ABORT",
            "reason": reason, "certificate": certificate}))

    def _learned(self, point: str, key: tuple, value: Any, out: list[Entry]) -> None:
        out.append(("learned", key[0], {"round": key[1],
                                        "outcome": "COMMIT" if value.commit else "ABORT"}))

    def _run(self, point: str, run: tuple, value: Any, out: list[Entry]) -> None:
        wf, step, attempt = run
        out.append(("step_started", wf, {"step": step, "attempt": attempt}))

    def _result(self, point: str, key: tuple[str, str], result: tuple,
                out: list[Entry]) -> None:
        """One results row, (workflow, step) (core/node/ready.py, RecordedResults)."""
        wf, step = key
        results = self.results  # `in` and subscripts, not .get: a result per step
        before = results[wf] if wf in results else {}
        if step in before and before[step] == result:
            return  # the same result again
        results[wf] = {**before, step: result}
        here = point == "step end"  # a step run here ended
        ours = wf.rpartition(".")[0] == self.domain  # at its coordinator
        if not here and not ours:
            return  # another domain's result, not at its coordinator: nothing to record
        attempt, state, outputs, error = result
        if state in TERMINAL_STEP_STATES:
            digest = outputs_sha256(outputs)
            if self.evidence is not None and ours:
                self.evidence.hashed(wf, step, result, digest)  # for the end's attestation
            data = {"step": step, "attempt": attempt, "state": _step_state(state),
                    "outputs_sha256": digest, "evidence": None}
            if here:
                data["error"] = error
                out.append((proofs.STEP_ENDED, wf, data))
            else:  # another domain's, at its coordinator
                row = self.node.state.rows.get(wf)
                moved = self.node.state.placements.get(wf, {}).get(step)
                epoch, domain = (moved[0], moved[1]) if moved is not None else \
                    (0, row.info.placement.get(step, "") if row is not None else "")
                if self.evidence is not None:
                    epoch, data["evidence"] = self.evidence.result_evidence(
                        wf, step, attempt, data["state"], data["outputs_sha256"], domain,
                        epoch)
                data["domain"], data["epoch"] = domain, epoch
                out.append((proofs.RESULT, wf, data))

    def _forget(self, point: str, key: tuple[str, str], value: Any,
                out: list[Entry]) -> None:
        wf, step = key
        left = {s: r for s, r in self.results.get(wf, {}).items() if s != step}
        if left:
            self.results[wf] = left
            return
        self.results.pop(wf, None)  # compacted by the Node's retention
        if self.evidence is not None:
            self.evidence.forget(wf)

    def _yes(self, tx: Any, out: list[Entry]) -> None:
        hold = self._holds.get(tx.key)
        info = self._infos.get(tx.key) or self.node.state.info.get(tx.key)
        out.append(self._vote(tx.workflow_id, tx.coordinator, tx.round, True, "",
                              [s for s, _ in hold.steps] if hold is not None else [],
                              info.spec if info is not None else None))

    # ---- NO votes ---------------------------------------------------------------------

    def no_vote(self, coordinator: str, vote: VoteMsg, prepare: PrepareMsg | None) -> Entry:
        steps = [s for s, _ in prepare.steps] if prepare is not None else []
        return self._vote(vote.key[0], coordinator, vote.key[1], False, vote.reason, steps,
                          prepare.info.spec if prepare is not None else None)

    def _vote(self, wf: str, coordinator: str, round_: int, yes: bool, reason: str,
              steps: list[str], spec: Any) -> Entry:
        return ("vote", wf, {"coordinator": coordinator, "round": round_, "yes": yes,
                             "reason": reason, "steps": steps,
                             "policy_sha256": self.policy_sha256,
                             "spec_sha256": spec_sha256(spec) if spec is not None else ""})


def acts_texts(queued: Sequence[tuple[str, str, dict, int]]) -> list[tuple[str, list[str]]]:
    """Acts queued (kind, workflow, data, wall ms) as each workflow's acts written as
    canonical JSON (`act_text`), in the order each workflow's first act came, its
    acts in the order they came: one ACTS record each (read back as those acts by
    audit_table.acts)."""
    by_workflow: dict[str, list[str]] = {}
    for kind, wf, data, time_ms in queued:
        text = act_text(kind, time_ms, data)
        if wf in by_workflow:  # `in`, not .get: no call per act
            by_workflow[wf].append(text)
        else:
            by_workflow[wf] = [text]
    return list(by_workflow.items())


class NodeAuditLog:
    """The acts queued for agent.db and the one task that writes them (see the
    header). `audit`: the Agent's runtime/audit.Audit (its `record` makes a statement
    and tells the checkpoint loop); `store`: the Agent's Store (agent.db); `now_ms`:
    wall milliseconds, each act's time."""

    def __init__(self, records: Records, audit: Any, store: Any, *,
                 batch_s: float = BATCH_S,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.records = records
        self.audit = audit
        self.store = store
        self.batch_s = batch_s
        self.now_ms = now_ms
        self._queued: list[tuple[str, str, dict, int]] = []
        self._wake = asyncio.Event()
        self.appended = 0      # acts written, in all
        self.written_records = 0  # the ACTS records they were written as
        self.transactions = 0  # agent.db transactions they took
        self.lost = 0          # acts a failed write took with it, or dropped
        self._overflowing = False  # MAX_QUEUED reached (said once, until a write)
        self._writing = 0  # acts in the transaction out

    def written(self, writes: Sequence[Write]) -> None:
        """node.db committed these groups (AuditedWrites): queue their acts."""
        self._queue(self.records.of_writes(writes))

    def no_votes(self, entries: list[Entry]) -> None:
        self._queue(entries)

    def _queue(self, entries: list[Entry]) -> None:
        if not entries:
            return
        if len(self._queued) >= MAX_QUEUED:
            if not self._overflowing:
                self._overflowing = True
                log.error("audit log: agent.db takes no records; more than %d acts wait,"
                          " the node engine's next are lost (counted)", MAX_QUEUED)
            self.lost += len(entries)
            return
        now = self.now_ms()
        # A list built at once: a generator here was resumed, a call, per act.
        self._queued.extend([(kind, wf, data, now) for kind, wf, data in entries])
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queued)

    def take(self) -> tuple[int, list]:
        """What is queued, taken: how many acts, and the statements of their records
        (one ACTS record per workflow; each act written as canonical JSON once, by
        its kind's writer, and the record's body joined from them: core/audit/acts.py)."""
        queued, self._queued = self._queued, []
        evidence = getattr(self.records, "evidence", None)
        if evidence is not None:  # the batch's attestations: one signature
            evidence.seal_pending()
        record = self.audit.record_acts
        return len(queued), [record(wf, texts) for wf, texts in acts_texts(queued)]

    async def run(self) -> None:
        """Write what is queued, one transaction at a time, until cancelled: `batch_s`
        after the first act queued (a window that gathers turns, not a poll)."""
        while True:
            await self._wake.wait()
            if self.batch_s > 0:
                await asyncio.sleep(self.batch_s)
            self._wake.clear()
            await self._write_batch()  # what queues meanwhile waits for its own window
            if self._queued:
                self._wake.set()

    async def _write_batch(self) -> None:
        if not self._queued:
            return
        acts, batch = self.take()
        self._writing = acts  # left set if cancelled: close() counts them lost
        try:
            await self.store.apply(batch)
        except Exception as e:  # agent.db refused: the records are lost, said so
            self._writing = 0
            self.lost += acts
            log.error("audit log: %d acts of the node engine not written: %s: %s",
                      acts, type(e).__name__, e)
            return
        self._writing = 0
        self.appended += acts
        self.written_records += len(batch)
        self.transactions += 1
        self._overflowing = False

    async def close(self) -> None:
        """Write what is still queued (the engine stops; agent.db is still open), for
        at most CLOSE_S: a disk that takes nothing must not hold the stop."""
        async def drain() -> None:
            while self._queued:
                await self._write_batch()
        try:
            await asyncio.wait_for(drain(), CLOSE_S)
        except TimeoutError:  # the transaction out was cancelled with the drain
            unwritten = len(self._queued) + self._writing
            self.lost += unwritten
            log.error("audit log: %d acts of the node engine not written before the"
                      " stop", unwritten)
            self._queued, self._writing = [], 0


class AuditedWrites:
    """A Durable port that hands each committed turn's groups to the audit log."""

    def __init__(self, durable: Durable, audit: NodeAuditLog) -> None:
        self.durable = durable
        self.audit = audit

    def write(self, writes: Sequence[Write]) -> None:
        self.durable.write(writes)  # raises unless committed: then nothing is recorded
        self.audit.written(writes)


class AuditedNode(NodeLayer):
    """What the driver steps, around the node it would step: PREPAREs going in are
    kept for the turn, and the NO votes of the Ready taken are recorded; with
    evidence (attestations.py), the results going in are kept for their records and
    the final results the Ready sends its coordinators are sealed; a reload's
    Reconfigure (reload.py) changes the policy hash votes are recorded with (a YES of
    the same turn stepped before it is recorded with the new one: its record is made
    after the turn's write)."""

    def __init__(self, inner: Any, domain: str, audit: NodeAuditLog) -> None:
        super().__init__(inner)
        self.domain = domain
        self.audit = audit
        self.evidence = audit.records.evidence
        self._prepares: dict = {}

    def step(self, now: float, event: object) -> None:
        kind = type(event)
        if kind is Message and type(event.msg) is PrepareMsg:
            self._prepares[event.msg.tx.key] = event.msg
        elif kind is Message and type(event.msg) is ResultMsg and self.evidence is not None:
            self.evidence.heard(event.src, event.msg)
        elif kind is Reconfigure:  # a reload's policy rules the votes from now on
            self.audit.records.policy_sha256 = spec_sha256(event.policy)
        self.inner.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        # What `step` keeps of each input, for the whole turn before it goes in: the
        # Node never reads it (the records are made from the turn's Ready and writes).
        for event in events:
            kind = type(event)
            if kind is Message:
                msg = event.msg
                if type(msg) is PrepareMsg:
                    self._prepares[msg.tx.key] = msg
                elif type(msg) is ResultMsg and self.evidence is not None:
                    self.evidence.heard(event.src, msg)
            elif kind is Reconfigure:
                self.audit.records.policy_sha256 = spec_sha256(event.policy)
        self.pass_batch(now, events, refuse)

    def ready(self) -> Ready:
        ready = self.inner.ready()
        prepares, self._prepares = self._prepares, {}
        noes = [self.audit.records.no_vote(out.to, out.msg, prepares.get(out.msg.key))
                for outs in (ready.send_now, ready.send_after_write) for out in outs
                if type(out.msg) is VoteMsg and not out.msg.yes
                and out.msg.domain == self.domain]
        if noes:
            self.audit.no_votes(noes)
        return self.evidence.seal_results(ready) if self.evidence is not None else ready

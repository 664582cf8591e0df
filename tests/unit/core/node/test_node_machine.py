"""A small federation of Nodes under Hypothesis: submissions, cancels, lost, duplicated
and reordered messages, timers, step ends, and crashes at any write of a Ready followed
by a restore from the writes applied, on the same monotonic clock or on another one (a
reboot: the clock a Node reads is true time plus its boot's offset, and a restore may
draw a new offset, far below or far above the old). The driver here is a minimal one
(the simulator's is agent/sim/negotiation/agent.py) that steps a peer's message only
past the authority table, as every driver does (a Node takes no other: inputs.py);
the invariants are the Node's, and no lease fires early in true time; a cancel taken is on disk before what it
causes leaves, no attempt starts where a cancel or an end is on record, an ended
workflow's attempts are stopped, and every end of a workflow is its coordinator's."""

from __future__ import annotations

import random

from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import Decision, DecisionQuery, Value
from fedorch.core.node import (
    Acks,
    Cancel,
    MemberState,
    Message,
    Node,
    StepEnded,
    Submit,
    Tick,
    authority,
)
from fedorch.core.node.authority import ACK_TYPES
from fedorch.core.node.ready import apply
from fedorch.core.node.records import (
    ClaimAnswerMsg,
    ClaimMsg,
    Disk,
    FinalMsg,
    Timing,
    VoteMsg,
)
from fedorch.core.node.retention import Retention
from fedorch.core.node.takeover_grants import SignedEvidence
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

NAMES = ["d0", "d1", "d2"]
# A boot's monotonic clock minus true time: a restore keeps its Node's or draws another.
BOOT_OFFSETS = (0.0, 10_000.0, 1_000_000.0)
# Times summed along different paths and offsets: equal instants may differ by rounding.
EPSILON_S = 1e-6


class Federation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0  # true time; a Node reads it plus its boot's offset
        self.offsets = dict.fromkeys(NAMES, 0.0)
        self.reserved_at: dict[tuple[str, tuple], float] = {}  # first written, true time
        self.queried: set[tuple[str, tuple]] = set()
        self.disks = {n: Disk() for n in NAMES}
        self.nodes = {n: self._node(n, 0) for n in NAMES}
        self.boots = dict.fromkeys(NAMES, 0)
        self.net: list[tuple[str, str, object, float]] = []  # (src, dst, msg, sent at)
        self.running: list[tuple[str, tuple[str, str, int]]] = []
        self.started: set[tuple[str, str, int]] = set()  # every attempt ever started
        self.decided: dict[tuple, bool] = {}  # every decision ever on a disk
        self.submitted = 0
        self.workflows: list[tuple[str, str]] = []  # (coordinator, workflow id)
        for n in NAMES:
            self._drive(n)

    timing = Timing(max_rounds=2)

    def _node(self, name: str, boot: int) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 2, "b": 1}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name) * 101 + boot),
                    wall_ms=self._wall_ms(self.offsets[name]),
                    disk=self.disks[name], now=self.clock(name), evidence=self._evidence(),
                    sign_grant=fake_signer(name), sign_vote=fake_signer(name),
                    verify_vote=fake_verify)

    def _evidence(self):
        return None  # no coordinator takeover: nothing to check

    @staticmethod
    def _wall_ms(offset: float):
        """The host's wall clock, which a reboot does not restart: true time."""
        return lambda now: int((now - offset) * 1000)

    def clock(self, name: str) -> float:
        """The monotonic clock of `name`'s current boot."""
        return self.now + self.offsets[name]

    def _drive(self, name: str, crash_at: int | None = None) -> None:
        """Do the Node's Ready as a driver does; crash_at: stop after that many writes
        (nothing is sent), and restore from what was applied."""
        node = self.nodes[name]
        ready = node.ready()
        if crash_at is not None and crash_at < len(ready.writes):
            for w in ready.writes[:crash_at]:
                self._written(name, w)
                apply(self.disks[name], w.ops)
            self._restore(name)
            return
        for out in ready.send_now:
            self._sent(name, out.to, out.msg)
        for w in ready.writes:
            self._written(name, w)
            apply(self.disks[name], w.ops)
        for out in ready.send_after_write:
            self._check_written(name, out.msg)
            self._sent(name, out.to, out.msg)
        for out in ready.send_now:
            self._check_written(name, out.msg)
        disk = self.disks[name]
        for run in ready.start_steps:
            assert run not in self.started, f"{name} started {run} again"
            assert run[0] not in disk.cancels and run[0] not in disk.final, \
                f"{name} started {run} with a cancel or an end of {run[0]} on record"
            self.started.add(run)
        self.running += [(name, run) for run in ready.start_steps]
        stopped = {(name, run) for run in ready.stop_steps}
        self.running = [r for r in self.running if r not in stopped]
        node.advance(ready)

    def _written(self, name: str, write) -> None:
        """A write group applied to `name`'s disk."""
        self._reserved(name, write.ops)

    def _reserved(self, name: str, ops) -> None:
        for op in ops:
            if op.table == "holds" and op.kind == "put":
                self.reserved_at.setdefault((name, op.key), self.now)

    def _sent(self, name: str, to: str, msg: object) -> None:
        """On the network; a participant's first query about a hold is its lease firing:
        never sooner than a lease after the reservation was written, in true time,
        whatever clocks its boots read; sooner only when its view says the coordinator
        is DEAD or LEFT (member_loss.py), as the Node was told. A coordinator's question
        about its own round goes with its recovery ballot (coordinator_doubt.py)."""
        if isinstance(msg, DecisionQuery) and (name, msg.key) not in self.queried \
                and msg.key[0].partition(".")[0] != name:
            self.queried.add((name, msg.key))
            reserved = self.reserved_at.get((name, msg.key))
            gone = self.nodes[name].members.get(msg.key[0].partition(".")[0]) \
                in ("DEAD", "LEFT")
            assert reserved is None or gone or self.now + EPSILON_S >= reserved + \
                self.timing.lease_s, f"{name} asked about {msg.key} at {self.now}, its" \
                f" reservation written at {reserved}: the lease fired early"
        self.net.append((name, to, msg, self.now))

    def _check_written(self, name: str, msg: object) -> None:
        """What a message claims about its sender's disk is on that disk when it leaves."""
        disk = self.disks[name]
        if isinstance(msg, VoteMsg) and msg.yes:
            assert msg.key in disk.holds or msg.key in disk.learned \
                or msg.key[0] in disk.final, f"{name} voted YES on {msg.key} before writing it"
        if isinstance(msg, FinalMsg) and msg.state is WorkflowState.CANCELLED \
                and msg.workflow_id in disk.rows:
            # Made before it is told; or, with takeover, told before it is made
            # (cancel.py): the row still RUNNING, the cancel on record all the same.
            told_first = self.timing.takeover_after_s is not None \
                and disk.rows[msg.workflow_id].state is WorkflowState.RUNNING
            assert msg.workflow_id in disk.cancels and (
                told_first or disk.rows[msg.workflow_id].state is WorkflowState.CANCELLED), \
                f"{name} told {msg.workflow_id} CANCELLED before recording its cancel"
        if isinstance(msg, Decision) and msg.value.commit and msg.sender == name \
                and msg.key[0] in disk.rows:
            assert disk.committed.get(msg.key[0]) == msg.key[1], \
                f"{name} announced COMMIT of {msg.key} before recording it"

    def _restore(self, name: str) -> None:
        self.boots[name] += 1
        self.running = [(n, r) for n, r in self.running if n != name]
        self.nodes[name] = self._node(name, self.boots[name])
        self._drive(name)

    def _step(self, name: str, event: object) -> None:
        """Step `name` as a driver does: a peer's message only once the authority table
        lets it through (a `Message` is one whose authority was checked: inputs.py),
        each acknowledgement of an `Acks` by its own rule (node_engine/boundary.py)."""
        node = self.nodes[name]
        try:
            if isinstance(event, Message):
                authority.check(node, event.src, event.msg)
            elif isinstance(event, Acks):
                acks, _ = authority.check_acks(node, event.src, event.acks)
                event = Acks(event.src, acks) if acks else None
            if event is not None:
                node.step(self.clock(name), event)
        except (Refused, RemoteProtocolError):
            pass  # refused: what it decided before still stands
        self._drive(name)

    # ---- rules ---------------------------------------------------------------------

    @rule(coordinator=st.sampled_from(NAMES), caps=st.lists(st.sampled_from("ab"),
                                                              min_size=1, max_size=3),
          unplaceable=st.booleans())
    def submit(self, coordinator, caps, unplaceable=False):
        """A submission; `unplaceable`: its placer found no domain for its last step
        (it ends ABORTED at once, submitting.py)."""
        self.submitted += 1
        steps = [spec_pb2.StepSpec(id=f"s{i}", capability=c) for i, c in enumerate(caps)]
        wf = f"{coordinator}.w{self.submitted}"
        self.workflows.append((coordinator, wf))
        refused = {steps[-1].id: "no eligible domain"} if unplaceable else None
        self._step(coordinator, Submit(wf, spec_pb2.WorkflowSpec(name="w", steps=steps),
                                       request_id=f"request-{wf}", unplaceable=refused))
        row = self.disks[coordinator].rows.get(wf)
        if unplaceable and row is not None:  # written (no crash before the row)
            assert row.state is WorkflowState.ABORTED and row.round == 0, row

    @precondition(lambda self: self.workflows)
    @rule(data=st.data())
    def retry_a_submission(self, data):
        """A client's retry (the same request id) under a new workflow id: once the first
        attempt's row is on disk, the retry makes nothing new."""
        coordinator, wf = data.draw(st.sampled_from(self.workflows))
        recorded = f"request-{wf}" in self.disks[coordinator].requests
        self.submitted += 1
        retry = f"{coordinator}.w{self.submitted}"
        spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
        self._step(coordinator, Submit(retry, spec, request_id=f"request-{wf}"))
        if recorded:
            assert retry not in self.disks[coordinator].rows, f"{retry} made by a retry of {wf}"
        else:  # lost with a crash before its row: the retry is the submission
            self.workflows.append((coordinator, retry))

    @precondition(lambda self: self.workflows)
    @rule(data=st.data())
    def cancel(self, data):
        """A client's cancel at the workflow's coordinator, at any moment of its life."""
        coordinator, wf = data.draw(st.sampled_from(self.workflows))
        self._step(coordinator, Cancel(wf, "by the machine"))

    @precondition(lambda self: self.net)
    @rule(data=st.data())
    def deliver(self, data):
        i = data.draw(st.integers(0, len(self.net) - 1))
        src, dst, msg, sent_at = self.net.pop(i)
        if self.deliverable(sent_at):
            self._step(dst, Message(src, msg))

    def deliverable(self, sent_at: float) -> bool:
        """Whether a message sent then is still taken (any age, here)."""
        return True

    @precondition(lambda self: any(type(m[2]) in ACK_TYPES for m in self.net))
    @rule(data=st.data())
    def deliver_acks(self, data):
        """The acknowledgements queued from one Node to another, in their order, as one
        `Acks` input (an envelope's run of them: boundary.py)."""
        pairs = sorted({(m[0], m[1]) for m in self.net if type(m[2]) in ACK_TYPES})
        src, dst = data.draw(st.sampled_from(pairs))
        run = [m for m in self.net if (m[0], m[1]) == (src, dst) and type(m[2]) in ACK_TYPES]
        self.net = [m for m in self.net if not any(m is r for r in run)]
        acks = tuple(m[2] for m in run if self.deliverable(m[3]))
        if acks:
            self._step(dst, Acks(src, acks))

    @precondition(lambda self: self.net)
    @rule(data=st.data(), copy=st.booleans())
    def drop_or_duplicate(self, data, copy):
        i = data.draw(st.integers(0, len(self.net) - 1))
        if copy:
            self.net.append(self.net[i])
        else:
            self.net.pop(i)

    @rule(name=st.sampled_from(NAMES), dt=st.floats(0.0, 3.0))
    def fire_timer(self, name, dt):
        self.now += dt
        timer = self.nodes[name].get_timer()
        if timer is not None:
            self.now = max(self.now, timer - self.offsets[name])
        self._step(name, Tick())
        after = self.nodes[name].get_timer()
        now = self.clock(name)
        assert after is None or after > now, f"{name}: timer {after} <= {now}"

    @precondition(lambda self: self.running)
    @rule(data=st.data(), ok=st.booleans())
    def end_step(self, data, ok):
        name, (wf, step, attempt) = self.running.pop(
            data.draw(st.integers(0, len(self.running) - 1)))
        self._step(name, StepEnded(wf, step, attempt, ok, {"by": name} if ok else {},
                                   "" if ok else "failed"))

    @rule(name=st.sampled_from(NAMES), at=st.integers(0, 6),
          offset=st.sampled_from(BOOT_OFFSETS))
    def crash_and_restore(self, name, at, offset):
        """A crash after `at` writes of the next Ready (a Tick makes one), or none; the
        restore reads the clock of a boot with `offset` (the same, or a reboot's)."""
        node = self.nodes[name]
        try:
            node.step(self.clock(name), Tick())
        except RemoteProtocolError:
            pass
        self.offsets[name] = offset
        self._drive(name, crash_at=at)
        if self.nodes[name] is node:  # the Ready was shorter: crash after it
            self._restore(name)

    # ---- invariants ----------------------------------------------------------------

    @invariant()
    def atomicity(self):
        seen = self.decided  # since the start: what a node forgot stays decided
        for disk in self.disks.values():
            for key, value in [*disk.learned.items(), *disk.records.items()]:
                assert isinstance(value, Value)
                assert seen.setdefault(key, value.commit) == value.commit, \
                    f"{key}: COMMIT at one node, ABORT at another"
        committed = {wf for d in self.disks.values() for wf in d.committed}
        for disk in self.disks.values():
            for wf, row in disk.rows.items():
                if wf in committed:  # CANCELLED only if cancelled after its COMMIT
                    assert row.state is not WorkflowState.ABORTED and not (
                        row.state is WorkflowState.CANCELLED and not row.committed), \
                        f"{wf}: committed at a participant, {row.state.name} at its coordinator"

    @invariant()
    def a_cancel_taken_ends_cancelled_and_ends_agree(self):
        """A cancel on record: its workflow ends nowhere but CANCELLED (its coordinator
        took it before any end); every end of a workflow is its coordinator's; an
        ended workflow has no attempt running where it ended."""
        for name, disk in self.disks.items():
            for wf in disk.cancels:
                row = disk.rows.get(wf)  # none at a successor that took it
                void = disk.epochs.get(wf, (0, name))[1] != name  # a later epoch's holder
                assert row is None or void or row.state in (
                    WorkflowState.NEGOTIATING, WorkflowState.RUNNING,
                    WorkflowState.CANCELLED), \
                    f"{wf}: cancel taken at {name}, ended {row.state.name}"
            for wf, row in disk.rows.items():
                if row.state is WorkflowState.CANCELLED and row.committed:
                    for other in self.disks.values():
                        end = other.final.get(wf)
                        assert end in (None, WorkflowState.CANCELLED), \
                            f"{wf} CANCELLED at {name}, {end} elsewhere"
        for name, (wf, _, _) in self.running:
            assert wf not in self.disks[name].final, f"{name} still runs an attempt of {wf}"

    @invariant()
    def nothing_started_twice(self):
        runs = [r for _, r in self.running]
        assert len(runs) == len(set(runs))


Federation.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_a_federation_of_nodes = Federation.TestCase


class ForgettingFederation(Federation):
    """The same federation with retention on, short enough that it forgets while the
    rules run (a fire_timer moves time up to 3 s): a message older than
    `late_message_s` is refused on arrival, as the daemon's replay window refuses it.
    The invariants hold over everything ever decided or started, forgotten or not."""

    timing = Timing(max_rounds=2, retention=Retention(
        keep_ended_s=4.0, max_ended_workflows=1, late_message_s=2.0))

    def deliverable(self, sent_at: float) -> bool:
        return self.now - sent_at <= self.timing.retention.late_message_s

    @invariant()
    def forgotten_is_forgotten_everywhere_in_the_node(self):
        """What a node's tables no longer hold, it holds no core of either."""
        for name, node in self.nodes.items():
            for wf in [*dict.keys(node.coordinators), *node.coordinators.ended]:
                assert wf in self.disks[name].rows, f"{name}: a core of {wf}, no row"


ForgettingFederation.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_a_federation_of_forgetting_nodes = ForgettingFederation.TestCase


def test_the_federation_runs_a_workflow_to_its_end_when_nothing_fails():
    """The machine's harness is not vacuous: delivered in order, a two-step workflow
    commits at its participants and ends SUCCEEDED everywhere it ran."""
    f = Federation()
    f.submit(coordinator="d0", caps=["a", "b"])
    for _ in range(500):
        if f.net:
            src, dst, msg, _ = f.net.pop(0)
            f._step(dst, Message(src, msg))
        elif f.running:
            name, (wf, step, attempt) = f.running.pop(0)
            f._step(name, StepEnded(wf, step, attempt, True, {}, ""))
        else:
            break
    f.atomicity()
    assert f.disks["d0"].rows["d0.w1"].state is WorkflowState.SUCCEEDED
    ran = [d for d in f.disks.values() if "d0.w1" in d.committed]
    assert ran and all(d.final["d0.w1"] is WorkflowState.SUCCEEDED for d in ran)


def fake_signer(name: str):
    """A signature only `name`'s signer makes (its name and the bytes, as a test key)."""
    return lambda data: b"signed by " + name.encode() + b":" + data


def fake_verify(signer: str, data: bytes, signature: bytes) -> bool:
    return signature == fake_signer(signer)(data)


class Evidence(SignedEvidence):
    """The takeover checks a signing agent makes: a certificate by its grants' (fake)
    signatures; a round proof from what the federation wrote: it holds when some domain
    learned a COMMIT of that round of that placement."""

    def __init__(self, machine: TakingOverFederation) -> None:
        super().__init__(fake_verify, self.commit_learned)
        self.m = machine

    def commit_learned(self, wf: str, proof) -> bool:
        key = (wf, proof.round)
        return any(key in d.learned and d.learned[key].commit and key in d.info
                   and frozenset(d.info[key].placement.values()) == proof.participants
                   for d in self.m.disks.values())


class WatchingFederation(Federation):
    """The same federation with membership views: they come in as `MemberState` inputs
    (any view, any time: views disagree, come and go, a DEAD one may be alive), and a
    restored Node is told its view again. DEAD and LEFT act on negotiations
    (member_loss.py): in-doubt participants recover at once, rounds waiting for a
    silent participant abort. The invariants above hold (atomicity: a COMMIT only from
    every YES, whatever the views say), and a first query comes before its lease only
    from a Node whose view says the coordinator is gone."""

    def __init__(self) -> None:
        self.views = {n: dict.fromkeys((m for m in NAMES if m != n), "ALIVE") for n in NAMES}
        super().__init__()
        for n in NAMES:
            self._tell(n)

    def _tell(self, name: str) -> None:
        node = self.nodes[name]
        for member, state in self.views[name].items():
            node.step(self.clock(name), MemberState(member, state))
        self._drive(name)

    def _restore(self, name: str) -> None:
        super()._restore(name)
        if self.nodes[name].members != self.views[name]:
            self._tell(name)

    @rule(observer=st.sampled_from(NAMES), member=st.sampled_from(NAMES),
          state=st.sampled_from(["ALIVE", "SUSPECT", "DEAD", "LEFT"]))
    def membership_changes(self, observer, member, state):
        if observer == member:
            return
        self.views[observer][member] = state
        self._step(observer, MemberState(member, state))


WatchingFederation.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_a_federation_of_nodes_watching_membership = WatchingFederation.TestCase


def test_the_watching_federation_recovers_before_the_lease_when_told_dead():
    """Not vacuous: d0's round is prepared at d1 and d2, whose votes are lost; d0 is
    DEAD in their views, and they learn ABORT before any lease would have fired."""
    f = WatchingFederation()
    f.submit(coordinator="d0", caps=["a", "b"])
    f.net = [m for m in f.net if m[0] != "d0" or "Prepare" in type(m[2]).__name__]
    for _ in range(20):  # the PREPAREs arrive; what anyone sends to d0 is lost
        if not f.net:
            break
        src, dst, msg, _ = f.net.pop(0)
        if dst != "d0":
            f._step(dst, Message(src, msg))
    voters = [n for n in ("d1", "d2") if f.nodes[n].termination.in_doubt()]
    assert voters, "nobody was left in doubt"
    for n in ("d1", "d2"):
        f.membership_changes(observer=n, member="d0", state="DEAD")
    for _ in range(200):
        if f.net:
            src, dst, msg, _ = f.net.pop(0)
            if dst != "d0":
                f._step(dst, Message(src, msg))
        elif any(f.nodes[n].termination.in_doubt() for n in voters):
            f.fire_timer(name=min(voters, key=lambda n: f.nodes[n].get_timer() or 1e9),
                         dt=0.0)
        else:
            break
    assert f.now < f.timing.lease_s
    assert all(not f.nodes[n].termination.in_doubt() for n in voters)
    assert all(not f.disks[n].learned[k].commit for n in voters for k in f.disks[n].learned)


class TakingOverFederation(WatchingFederation):
    """The watching federation with coordinator takeover on. Invariants: at most one
    domain acts in each epoch of a workflow; a grant is on its granter's disk before
    its answer leaves; the coordinators of different epochs never end a workflow
    differently."""

    timing = Timing(max_rounds=2, takeover_after_s=3.0)

    def __init__(self) -> None:
        self.acting: dict[tuple[str, int], str] = {}
        self.ends: dict[str, set[object]] = {}
        super().__init__()

    def _evidence(self):
        return Evidence(self)

    def _written(self, name: str, write) -> None:
        super()._written(name, write)
        for what, *facts in write.notes:
            if what == "acting":
                wf, epoch = facts[0], facts[1]
                other = self.acting.setdefault((wf, epoch), name)
                assert other == name, f"{wf}: {other} and {name} both act in epoch {epoch}"
            elif what == "coordinator_ended":
                wf, state = facts[0], facts[2]
                self.ends.setdefault(wf, set()).add(state)
                assert len(self.ends[wf]) == 1, f"{wf} ended differently: {self.ends[wf]}"

    def _check_written(self, name: str, msg: object) -> None:
        super()._check_written(name, msg)
        if isinstance(msg, ClaimAnswerMsg) and msg.granted:
            granted = self.disks[name].granted.get(msg.workflow_id, (0, ""))
            assert granted[0] >= msg.epoch, \
                f"{name} granted epoch {msg.epoch} of {msg.workflow_id} before writing it"

    @initialize(coordinator=st.sampled_from(NAMES))
    def a_committed_workflow(self, coordinator):
        """Every example starts with a workflow committed (its messages delivered in
        order, its attempts still running): there is something to take over."""
        self.submit(coordinator=coordinator, caps=["a", "b"])
        for _ in range(200):
            if not self.net:
                break
            src, dst, msg, _ = self.net.pop(0)
            self._step(dst, Message(src, msg))


TakingOverFederation.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_a_federation_of_nodes_taking_over = TakingOverFederation.TestCase


def test_the_taking_over_federation_takes_a_workflow_over():
    """Not vacuous: d0 commits a workflow whose steps are on d1 and d2, then goes DEAD
    in every view; the others take it over, and it ends everywhere it ran."""
    f = TakingOverFederation()
    f.submit(coordinator="d0", caps=["a", "b"])
    steps = 0
    for _ in range(500):
        if f.net:
            src, dst, msg, _ = f.net.pop(0)
            if src != "d0" and dst != "d0":
                f._step(dst, Message(src, msg))
            elif steps == 0:  # d0's negotiation goes through; after it, d0 is gone
                f._step(dst, Message(src, msg))
        elif f.running and steps == 0:
            steps = 1
            for n in ("d1", "d2"):
                f.membership_changes(observer=n, member="d0", state="DEAD")
        elif f.running:
            name, (wf, step, attempt) = f.running.pop(0)
            f._step(name, StepEnded(wf, step, attempt, True, {}, ""))
        else:
            break
    ran = [n for n, d in f.disks.items() if "d0.w1" in d.committed and n != "d0"]
    assert ran, "the workflow did not commit"
    assert f.acting and set(f.acting.values()) <= set(ran)
    assert all(f.disks[n].final["d0.w1"] in {WorkflowState.SUCCEEDED} for n in ran)


def _deliver(f: Federation, src: str, dst: str, kind: type) -> None:
    """The first message of `kind` queued from `src` to `dst`, delivered now."""
    i = next(i for i, m in enumerate(f.net) if m[:2] == (src, dst) and type(m[2]) is kind)
    f._step(dst, Message(src, f.net.pop(i)[2]))


def test_a_cancel_told_after_its_teller_granted_a_later_epoch_is_refused_where_it_lands():
    """A cancel overtaken (Hypothesis's story, shrunk): d1 takes a cancel and tells
    CANCELLED in epoch 0; d0, which sees d1 DEAD, claims epoch 1 and d1 and d2 grant it
    before the notices land. At d2 and at d0 the epoch-0 notice is refused (the
    authority table: an end of an epoch below the one held), so d0, winning with d2
    LEFT in its view, ends the workflow FAILED on its loss verdict alone, and it ends
    FAILED everywhere; d1's cancel is void under the epoch it granted. Stepped past the
    table, d2 kept CANCELLED and d0 took it on after telling FAILED: two ends."""
    f = TakingOverFederation()
    f.a_committed_workflow(coordinator="d1")
    f._step("d1", Cancel("d1.w1", "by the client"))
    assert "d1.w1" in f.disks["d1"].cancels
    f.membership_changes(observer="d0", member="d1", state="DEAD")
    _deliver(f, "d0", "d1", ClaimMsg)
    _deliver(f, "d0", "d2", ClaimMsg)
    assert f.disks["d2"].granted["d1.w1"] == (1, "d0")
    _deliver(f, "d1", "d2", FinalMsg)  # CANCELLED, epoch 0
    assert "d1.w1" not in f.disks["d2"].final, "an end below the epoch granted, taken"
    f.membership_changes(observer="d0", member="d2", state="LEFT")
    _deliver(f, "d1", "d0", ClaimAnswerMsg)  # d0 wins epoch 1
    f.membership_changes(observer="d1", member="d0", state="LEFT")
    _deliver(f, "d1", "d0", FinalMsg)  # CANCELLED, epoch 0, at the holder of epoch 1
    for _ in range(200):
        if not f.net:
            break
        src, dst, msg, _ = f.net.pop(0)
        f._step(dst, Message(src, msg))
        f.a_cancel_taken_ends_cancelled_and_ends_agree()
    assert not f.net
    ends = {n: d.final.get("d1.w1") for n, d in f.disks.items()}
    assert ends == dict.fromkeys(NAMES, WorkflowState.FAILED), ends
    assert f.disks["d1"].rows["d1.w1"].state is WorkflowState.FAILED
    assert f.ends == {"d1.w1": {WorkflowState.FAILED}}  # made by d0 alone, in epoch 1


def test_coordinators_made_under_one_view_of_the_peers_share_their_options():
    node = Node("c1", policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 1},
                timing=Timing(), peers=["c1", "c2", "c3"], rng=random.Random(1), now=0.0)
    first = node.consensus()
    assert node.consensus() is first  # not one copy per workflow kept
    assert sorted(first.extra_acceptors()) == ["c2", "c3"]
    node.peers = ["c1", "c2", "c4"]  # the membership view changed: new options
    later = node.consensus()
    assert later is not first and sorted(later.extra_acceptors()) == ["c2", "c4"]
    assert sorted(first.extra_acceptors()) == ["c2", "c3"]  # made under the old view

"""Votes in the Node (core/node/votes.py, authority.py): a COMMIT is believed only with
every participant's own signed YES, whoever shows it; other statements (results,
attestations) sealed the same way, never confused with votes; a PREPARE asking a step
here against its spec's own constraints gets a NO saying why, and its round ends."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import Decision, TxInfo, Value, VoteIn
from fedorch.core.node import Message, Node, Submit
from fedorch.core.node.authority import check
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg, WfInfo
from fedorch.core.node.votes import (
    carried,
    constraints_refusal,
    evidence_holds,
    result_statement,
    seal_statements,
    seal_votes,
    stand_in_signer,
    stand_in_verify,
    statement_holds,
    vote_statement,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.core.node.federation import Federation

NAMES = ["d0", "d1", "d2"]
WF = "d0.w"
KEY = (WF, 1)


class Voting(Federation):
    """d0 coordinates WF over d1 and d2; each Node checks every message it is handed
    against the authority table first, as a driver does, counting refusals by reason.
    `trusted`: whose signatures the vote port believes (a revoked domain leaves it)."""

    def __init__(self) -> None:
        self.trusted = set(NAMES)
        self.refused: Counter[str] = Counter()
        super().__init__(NAMES)

    def verify(self, domain: str, data: bytes, signature: bytes) -> bool:
        return domain in self.trusted and stand_in_verify(domain, data, signature)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                    timing=Timing(max_rounds=1), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), verify_vote=self.verify,
                    disk=self.disks[name], now=self.now)

    def step(self, name: str, *inputs: object):
        for event in inputs:
            if type(event) is Message:
                try:
                    check(self.nodes[name], event.src, event.msg)
                except Refused as e:
                    self.refused[e.reason] += 1
                    raise RemoteProtocolError(e.detail) from None
        return super().step(name, *inputs)


def prepared() -> tuple[Voting, dict[str, VoteMsg]]:
    """WF prepared at d1 and d2 (both voted YES); their votes held back from d0."""
    fed = Voting()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"), spec_pb2.StepSpec(id="s2", capability="a")])
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2"}))
    fed.deliver(keep=lambda src, dst, msg: type(msg) is VoteMsg)
    votes = {msg.domain: msg for _, _, msg in fed.net if type(msg) is VoteMsg}
    assert set(votes) == {"d1", "d2"} and all(v.yes and v.evidence for v in votes.values())
    fed.net = []
    return fed, votes


def vote_in(msg: VoteMsg) -> VoteIn:
    return VoteIn(msg.key[1], msg.domain, msg.yes, msg.reason, msg.evidence)


def forged(voter: str, *, by: str, key=KEY) -> VoteIn:
    """`voter`'s YES of `key`, signed with `by`'s key."""
    (raw,) = seal_votes(stand_in_signer(by), [vote_statement(key, voter, True)])
    return VoteIn(key[1], voter, True, "", raw)


def decide(fed: Voting, at: str, *votes: VoteIn) -> None:
    """d0 (a party: the coordinator) tells `at` a COMMIT with these votes."""
    fed.step(at, Message("d0", Decision(KEY, Value(True, votes), "d0")))


def test_a_commit_with_every_participants_signed_yes_is_taken():
    fed, votes = prepared()
    decide(fed, "d1", vote_in(votes["d1"]), vote_in(votes["d2"]))
    assert fed.disks["d1"].learned[KEY].commit and WF in fed.disks["d1"].committed
    assert not fed.refused


@pytest.mark.parametrize("case", ["another domain's key", "the voter's stand-in text",
                                  "no evidence", "another round", "another workflow",
                                  "a NO's evidence"])
def test_a_commit_whose_vote_another_domain_made_is_refused_and_counted(case):
    """A lying coordinator cannot speak for d2: every way of making d2's YES without
    d2's key refuses the whole message (`forged_vote`), and nothing is learned."""
    fed, votes = prepared()
    d2 = {"another domain's key": forged("d2", by="d0"),
          "the voter's stand-in text": VoteIn(1, "d2", True, "", b"d0.w/1/d2/yes"),
          "no evidence": VoteIn(1, "d2", True, "", b""),
          "another round": VoteIn(1, "d2", True, "", forged("d2", by="d2", key=(WF, 2)).raw),
          "another workflow": VoteIn(1, "d2", True, "",
                                     forged("d2", by="d2", key=("d0.x", 1)).raw),
          "a NO's evidence": VoteIn(1, "d2", True, "", seal_votes(
              stand_in_signer("d2"), [vote_statement(KEY, "d2", False)])[0])}[case]
    with pytest.raises(RemoteProtocolError):
        decide(fed, "d1", vote_in(votes["d1"]), d2)
    assert fed.refused == Counter({"forged_vote": 1})
    assert KEY not in fed.disks["d1"].learned


def test_a_commit_missing_a_participants_vote_is_refused():
    fed, votes = prepared()
    with pytest.raises(RemoteProtocolError, match="lacks a YES vote"):
        decide(fed, "d1", vote_in(votes["d1"]))
    assert KEY not in fed.disks["d1"].learned


def test_a_revoked_voters_vote_counts_for_nothing():
    fed, votes = prepared()
    fed.trusted.discard("d2")  # d2's key revoked (or never trusted) at d1
    with pytest.raises(RemoteProtocolError):
        decide(fed, "d1", vote_in(votes["d1"]), vote_in(votes["d2"]))
    assert fed.refused == Counter({"forged_vote": 1})
    assert KEY not in fed.disks["d1"].learned


def test_a_yes_reaches_its_coordinator_only_with_its_voters_signature():
    fed, votes = prepared()
    bad = VoteMsg(KEY, "d2", True, "", forged("d2", by="d1").raw)
    with pytest.raises(RemoteProtocolError):
        fed.step("d0", Message("d2", bad))
    assert fed.refused == Counter({"forged_vote": 1})
    fed.step("d0", Message("d1", votes["d1"]), Message("d2", votes["d2"]))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].committed
    assert all(fed.disks[n].learned[KEY].commit for n in ("d1", "d2"))
    # The certificate every party holds is the voters' evidence as they sent it.
    assert {v.raw for v in fed.disks["d1"].learned[KEY].votes} \
        == {votes["d1"].evidence, votes["d2"].evidence}


def test_a_participant_signs_its_votes_of_one_turn_once():
    fed = Voting()
    node = fed.nodes["d1"]
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    signed_before = node.stats["vote roots signed"]
    prepares = [PrepareMsg(TxInfo(wf, 1, "d0", ("d1",), ("d0", "d1")), (("s", "a"),),
                           WfInfo(spec, {"s": "d1"}, "d0")) for wf in ("d0.a", "d0.b", "d0.c")]
    ready = fed.step("d1", *[Message("d0", p) for p in prepares])
    sent = [o.msg for o in ready.send_after_write if type(o.msg) is VoteMsg]
    assert len(sent) == 3 and all(v.yes for v in sent)
    assert node.stats["vote roots signed"] == signed_before + 1
    # One root signature, at the end of each evidence; each vote holds on its own.
    assert len({v.evidence[-32:] for v in sent}) == 1
    assert all(node.votes.holds(v.key, "d1", True, v.evidence) for v in sent)


@given(n=st.integers(1, 40), data=st.data())
def test_every_vote_of_a_sealed_batch_holds_and_no_changed_byte_does(n, data):
    """Any number of votes in one turn: each one's path leads to the one signed root;
    a byte changed anywhere (statement, path, signature) and it holds no more."""
    sign = stand_in_signer("d1")
    statements = [vote_statement((f"d0.w{i}", 1), "d1", True) for i in range(n)]
    sealed = seal_votes(sign, statements)
    roots = set()
    for i, raw in enumerate(sealed):
        assert evidence_holds(stand_in_verify, (f"d0.w{i}", 1), "d1", True, raw)
        roots.add(raw[-32:])
    assert len(roots) == 1  # one signature for the batch
    i = data.draw(st.integers(0, n - 1))
    raw = sealed[i]
    at = data.draw(st.integers(0, len(raw) - 1))
    changed = raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]
    assert not evidence_holds(stand_in_verify, (f"d0.w{i}", 1), "d1", True, changed)


@given(wf=st.text(max_size=12), round_=st.integers(0, 2**62), domain=st.text(max_size=8),
       yes=st.booleans())
def test_a_statement_is_the_canonical_json_of_its_facts(wf, round_, domain, yes):
    import json
    assert vote_statement((wf, round_), domain, yes) == json.dumps(
        ["vote", wf, round_, domain, yes], separators=(",", ":"),
        ensure_ascii=False).encode("utf-8", "surrogatepass")


def test_a_certificate_held_here_is_not_checked_again():
    """Every Accepted and decision of a round repeats its certificate: a copy of a value
    this Node took (each vote checked then) is taken without checking again, and a
    value that differs in one vote is checked."""
    fed, votes = prepared()
    checked = []
    node = fed.nodes["d1"]
    holds = node.votes.holds
    node.votes.holds = lambda *a: checked.append(a[1]) or holds(*a)
    value = Value(True, (vote_in(votes["d1"]), vote_in(votes["d2"])))
    decide(fed, "d1", *value.votes)
    assert len(checked) == 2
    check(node, "d0", Decision(KEY, value, "d0"))  # the value it learned: not again
    assert len(checked) == 2
    with pytest.raises(Refused):
        check(node, "d0", Decision(KEY, Value(True, (value.votes[0], forged("d2", by="d0"))),
                                   "d0"))
    assert len(checked) == 4


# ---- other statements: results and attestations (audit evidence) ---------------------


@given(n=st.integers(1, 20), data=st.data())
def test_every_statement_of_a_sealed_batch_holds_and_no_changed_byte_does(n, data):
    """Results sealed in one turn (seal_statements): each holds as its domain's, under
    one signature; a byte changed anywhere, or another domain named, and it does not."""
    statements = [result_statement("d0.w", f"s{i}", 1, "SUCCEEDED", "ab" * 32, 0, "d1")
                  for i in range(n)]
    sealed = seal_statements(stand_in_signer("d1"), statements)
    assert len({raw[-32:] for raw in sealed}) == 1
    for statement, raw in zip(statements, sealed, strict=True):
        assert carried(raw) == statement
        assert statement_holds(stand_in_verify, "d1", statement, raw)
        assert not statement_holds(stand_in_verify, "d2", statement, raw)
    i = data.draw(st.integers(0, n - 1))
    at = data.draw(st.integers(0, len(sealed[i]) - 1))
    changed = sealed[i][:at] + bytes([sealed[i][at] ^ 1]) + sealed[i][at + 1:]
    assert not statement_holds(stand_in_verify, "d1", statements[i], changed)


def test_a_vote_is_never_a_statement_nor_a_statement_a_vote():
    """Their roots are signed after different contexts: the same bytes sealed as votes
    do not hold as statements, and the reverse."""
    vote = vote_statement(KEY, "d1", True)
    as_vote = seal_votes(stand_in_signer("d1"), [vote])[0]
    as_statement = seal_statements(stand_in_signer("d1"), [vote])[0]
    assert evidence_holds(stand_in_verify, KEY, "d1", True, as_vote)
    assert not evidence_holds(stand_in_verify, KEY, "d1", True, as_statement)
    assert statement_holds(stand_in_verify, "d1", vote, as_statement)
    assert not statement_holds(stand_in_verify, "d1", vote, as_vote)


@given(wf=st.text(max_size=12), step=st.text(max_size=6), attempt=st.integers(0, 2**40),
       state=st.sampled_from(["SUCCEEDED", "FAILED"]), digest=st.text(max_size=64),
       epoch=st.integers(0, 2**40), domain=st.text(max_size=8))
def test_a_result_statement_is_the_canonical_json_of_its_facts(wf, step, attempt, state,
                                                               digest, epoch, domain):
    import json
    assert result_statement(wf, step, attempt, state, digest, epoch, domain) == json.dumps(
        ["result", wf, step, attempt, state, digest, epoch, domain], separators=(",", ":"),
        ensure_ascii=False).encode("utf-8", "surrogatepass")


def test_junk_is_no_statement():
    for junk in (b"", b"\x00", b"\xff\xff\x00", b"\x00\x01a\xff"):
        assert carried(junk) is None
        assert not statement_holds(stand_in_verify, "d1", b"a", junk)
    assert carried("text") is None


# ---- a NO by the spec's own constraints ---------------------------------------------

LABELS = {"d0": {}, "d1": {"zone": "open"}, "d2": {"zone": "vault"}}


class Bounded(Voting):
    """Voting's federation, each Node with its labels (LABELS)."""

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                    timing=Timing(max_rounds=1), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), verify_vote=self.verify,
                    disk=self.disks[name], now=self.now, labels=LABELS[name])


def bound_spec(**constraints: object) -> spec_pb2.WorkflowSpec:
    step = spec_pb2.StepSpec(id="s1", capability="a")
    step.constraints.domains.extend(constraints.get("domains", []))
    step.constraints.labels.update(constraints.get("labels", {}))
    return spec_pb2.WorkflowSpec(name="w", steps=[step])


CASES = [
    ({"domains": ["d2"]}, "invalid PREPARE: constraints: step 's1' may run only in d2, not d1"),
    ({"labels": {"zone": "vault"}},
     "invalid PREPARE: constraints: step 's1' wants zone=vault; d1 has zone=open"),
    ({"labels": {"rack": "r1"}},
     "invalid PREPARE: constraints: step 's1' wants rack=r1; d1 has no label rack"),
]


@pytest.mark.parametrize(("constraints", "why"), CASES)
def test_a_step_placed_against_its_constraints_gets_a_no_saying_why(constraints, why):
    """d0 places s1 on d1 where the spec's own constraints forbid it: d1 votes NO with
    the reason (not a refusal of the message: nothing refused, nothing held), and d0's
    round ends at once, the workflow ABORTED naming d1's reason; no timer had to pass."""
    fed = Bounded()
    fed.step("d0", Submit(WF, bound_spec(**constraints), placement={"s1": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: type(msg) is VoteMsg)
    [(_, to, vote)] = [m for m in fed.net if type(m[2]) is VoteMsg]
    assert (to, vote.domain, vote.yes, vote.reason) == ("d0", "d1", False, why)
    assert not fed.refused and fed.disks["d1"].holds == {}
    fed.deliver()
    row = fed.disks["d0"].rows[WF]
    assert row.state is WorkflowState.ABORTED and why in row.reason, row.reason
    assert [r[1:] for r in fed.disks["d0"].refusals[WF]] == [("d1", ("s1",), why)]


def test_a_step_its_constraints_allow_here_is_voted_on():
    """The same constraints, placed where they hold (d2: named, and labelled
    zone=vault), get a YES, and the workflow runs."""
    fed = Bounded()
    fed.step("d0", Submit(WF, bound_spec(domains=["d2"], labels={"zone": "vault"}),
                          placement={"s1": "d2"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    assert set(fed.disks["d2"].holds) == {KEY}


def test_the_labels_a_reconfigure_gives_are_the_ones_checked_and_a_no_stays_a_no():
    """d1 refuses zone=vault while labelled zone=open; the same PREPARE again after a
    reconfigure gave it zone=vault keeps its NO (a round refused stays refused), and a
    new workflow's PREPARE is now voted YES."""
    fed = Bounded()
    spec = bound_spec(labels={"zone": "vault"})
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1"}))
    [(_, _, prepare)] = [m for m in fed.net if type(m[2]) is PrepareMsg]
    fed.deliver()
    d1 = fed.nodes["d1"]
    d1.reconfigure(policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                   labels={"zone": "vault"})
    fed.step("d1", Message("d0", prepare))
    [(_, _, again)] = fed.net
    assert not again.yes and "d1 has zone=open" in again.reason
    fed.net = []
    fed.step("d0", Submit("d0.w2", spec, placement={"s1": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows["d0.w2"].state is WorkflowState.RUNNING
    assert set(fed.disks["d1"].holds) == {("d0.w2", 1)}


def test_a_round_voted_yes_keeps_its_yes_when_the_labels_change():
    """d1 voted YES with zone=vault; the same PREPARE again after its labels changed
    is answered YES again (its hold stands), never a NO contradicting its vote."""
    fed = Bounded()
    fed.step("d0", Submit(WF, bound_spec(labels={"zone": "vault"}), placement={"s1": "d2"}))
    [(_, _, prepare)] = [m for m in fed.net if type(m[2]) is PrepareMsg]
    fed.deliver(keep=lambda src, dst, msg: type(msg) is VoteMsg)
    fed.net = []
    fed.nodes["d2"].reconfigure(policy=config_pb2.Policy(accept_from=["*"]),
                                capacities={"a": 4}, labels={"zone": "open"})
    fed.step("d2", Message("d0", prepare))
    [(_, _, again)] = fed.net
    assert again.yes and set(fed.disks["d2"].holds) == {KEY}


@pytest.mark.parametrize(("constraints", "why"), CASES)
def test_constraints_refusal_names_the_first_step_asked_that_may_not_run_here(
        constraints, why):
    spec = bound_spec(**constraints)
    spec.steps.append(spec_pb2.StepSpec(id="free", capability="a"))
    assert constraints_refusal("d1", LABELS["d1"], spec, (("free", "a"), ("s1", "a"))) == why
    assert constraints_refusal("d1", LABELS["d1"], spec, (("free", "a"),)) == ""
    assert constraints_refusal("d1", LABELS["d1"], spec, (("absent", "a"),)) == ""

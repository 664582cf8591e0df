"""The node engine's input boundary: a NodeTurn envelope in, `Message`s posted.

Theory of operation
-------------------
Each envelope of a peer's `NodeTurns` stream (or of a `NodeTurn` call, still served
for a peer one version older) is checked alone, whatever else its stream carried.
Nothing a peer sends reaches the Node before four checks, in this order:

1. the envelope (`open_message`, as every peer message of the daemon): its Ed25519
   signature over the body bytes *as received*, by a key the trust store holds for
   the sender and has not revoked; addressed to this domain; a `node_turn` payload;
   inside the replay window, its nonce never seen;
2. the payload decodes with `NodeCodec` (which builds registered types only) to a
   tuple;
3. each message is of a type the Node exchanges with peers (core/node/authority.py
   `MESSAGE_TYPES`: never an input the driver alone may give, such as a `Submit`, a
   `StepEnded` or a `Tick`);
4. the envelope's signer has authority over each message (core/node/authority.py,
   the table the simulator applies too), as the Node knows the facts *when it steps
   the message*.

1-3 are checked here, on receipt (`TurnBoundary.receive`): a refused envelope posts
nothing, a message of a refused type is dropped alone and the others are posted as
`Message(sender, msg)` to the driver loop, but for acknowledgements (`AckMsg`,
`DecisionAck`): each run of consecutive ones is posted as ONE `Acks(sender, acks)`
input (core/node/inputs.py), in its place among the others, so the Node and the layers
around it take a peer's acknowledgements in one step instead of one step each (they
ride first in an envelope: runtime/node_engine/transport.py), and 4 is checked for
them in one pass (authority.check_acks: an acknowledgement without authority is
refused alone, the others are stepped). 4 is checked inside the driver's turn,
right before the Node steps the message (`AuthorizedNode`, the Node as the driver
sees it): the facts it reads may be in flight when the envelope arrives. A decision
posted from one envelope and not stepped yet, and the step result that follows it in
the next envelope, would be refused on receipt (the workflow is not committed here
*yet*) and then resent a second later; at step time the decision has been stepped.
A message without authority is refused as the Node refuses bad input
(`RemoteProtocolError`): the driver counts and logs it, and nothing of it reaches
the Node. So is one whose fields the table cannot even read (the codec builds only
registered types, but checks no field's type: a key that is not a tuple). Every refusal is counted by reason (`refused`, and the agent's
`fedorch_rejected_messages_total{reason}`).

Own messages skip check 4. A message the Node addresses to itself (a coordinator's
PREPARE to its own participant and that participant's vote, its proposer's Accept to
its own acceptor, that acceptor's Accepted, the Node's own Decision: 5 of a
coordinator's 16 inputs per workflow on the commit bench, 2 of a participant's 7) is
kept by the driver and stepped first in its next turn (runtime/driver.py, `loopback`),
or, were the transport handed one, posted straight back; either way it reaches
`AuthorizedNode` as `Message(me, msg)`. The table answers whether `src` may say
`msg`; for `src` this Node the answer is the Node's own: it made the message in its
own step from its own state, and the table's rules grant a domain what it says of
itself (its vote, its round as coordinator, its acceptor's acceptance, its decision).
Checking it again was a second check of what the Node's step already decided: a
third of the coordinator's checks. What keeps `Message(me, ...)` the Node's own is
check 1 here: an envelope whose verified sender is this domain is refused whole
(`self_sent`), since a domain never sends itself an envelope (the loopback keeps
its messages in the process), so only a holder of this domain's signing key could
make one, and that holder already speaks for the domain. The simulator keeps
checking every delivery, own ones included, each a millisecond after its send
(sim/negotiation/boundary.py): its soaks (takeover, crashes, a lying domain) never
saw the table refuse a Node's own message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from fedorch.core.identity.authority import Refused, coordinator_of
from fedorch.core.identity.envelope import AuthError, open_message
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.submission import SubmissionError, check_prepare_submission
from fedorch.core.identity.submission_guard import Admission
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node import authority
from fedorch.core.node.inputs import Acks, Message
from fedorch.core.node.node import Node
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.node_codec import CodecError, NodeCodec
from fedorch.runtime.node_engine.layer import NodeLayer, Refuse, StepBroken
from fedorch.runtime.ports import Clock

__all__ = ["AuthorizedNode", "EnvelopeRefused", "TurnBoundary", "signed_submissions"]

log = logging.getLogger("fedorch.node_engine")


class EnvelopeRefused(Exception):
    """A whole envelope refused: `reason` a short label, the message the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TurnBoundary:
    def __init__(self, domain: str, trust: TrustStore, guard: ReplayGuard, clock: Clock,
                 codec: NodeCodec, post: Callable[[object], None],
                 on_refused: Callable[[str], None] | None = None) -> None:
        """`post`: the driver loop's; `on_refused(reason)`: told of each refusal (the
        agent's metric)."""
        self.domain = domain
        self.trust = trust
        self.guard = guard
        self.clock = clock
        self.codec = codec
        self.post = post
        self.on_refused = on_refused or (lambda reason: None)
        self.refused: Counter[str] = Counter()
        self.posted = 0  # messages posted
        self.inputs = 0  # inputs they were posted as (a run of acknowledgements: one)

    def _refuse(self, reason: str) -> None:
        self.refused[reason] += 1
        self.on_refused(reason)

    def receive(self, envelope: peer_pb2.Envelope) -> tuple[str, list[Refused]]:
        """Checks 1-3 and post (see the header). Returns the verified sender and the
        messages refused; EnvelopeRefused when nothing of it may be looked at."""
        clock = self.clock
        try:
            body = open_message(envelope, self.trust, self.guard, me=self.domain,
                                now_ms=clock.wall_ms(), mono_ms=int(clock.monotonic() * 1000),
                                expect="node_turn")
        except AuthError as e:
            reason = e.label or "unauthenticated"
            self._refuse(reason)
            log.warning("refused a NodeTurn envelope (%s): %s", reason, e.reason)
            raise EnvelopeRefused(reason, e.reason) from None
        sender = body.sender
        if sender == self.domain:  # never sent: own messages stay in the process
            self._refuse("self_sent")
            log.warning("refused a NodeTurn envelope signed as this domain itself")
            raise EnvelopeRefused("self_sent", "an envelope from this domain to itself")
        try:
            msgs = self.codec.decode(body.node_turn.messages, checked=True)
        except CodecError as e:
            self._refuse("undecodable")
            log.warning("refused a NodeTurn from %s: %s", sender, e)
            raise EnvelopeRefused("undecodable", f"messages do not decode: {e}") from None
        if not isinstance(msgs, tuple):
            self._refuse("undecodable")
            raise EnvelopeRefused("undecodable", "messages are not a tuple")
        refused: list[Refused] = []
        acks: list[object] = []  # the run of acknowledgements under way
        post, ack_types = self.post, authority.ACK_TYPES
        for msg in msgs:
            cls = type(msg)
            if cls in ack_types:
                acks.append(msg)
                continue
            if acks:
                self._post_acks(sender, acks)
                acks = []
            if cls not in authority.MESSAGE_TYPES:
                e = Refused("not_a_message",
                            f"{type(msg).__name__} is not a message a peer may send")
                self._refuse(e.reason)
                log.warning("refused %s from %s: %s", type(msg).__name__, sender, e.detail)
                refused.append(e)
                continue
            self.posted += 1
            self.inputs += 1
            post(Message(sender, msg))
        if acks:
            self._post_acks(sender, acks)
        return sender, refused

    def _post_acks(self, sender: str, acks: list[object]) -> None:
        """A run of consecutive acknowledgements: one `Acks` input (see the header)."""
        self.posted += len(acks)
        self.inputs += 1
        self.post(Acks(sender, tuple(acks)))


# What the table raises on a value the checked decoding let through that it cannot
# read (or one stepped without it): a field of the wrong shape, refused as malformed.
_UNREADABLE = (TypeError, AttributeError, IndexError, KeyError, ValueError)


def _malformed(e: Exception) -> Refused:
    return Refused("malformed", f"{type(e).__name__}: {e}")


class AuthorizedNode(NodeLayer):
    """The Node as the driver steps it: every peer's `Message` is checked against the
    authority table first (check 4 of the header; the Node's own are not: the
    header's "Own messages"); a refusal is a RemoteProtocolError, which the driver
    counts and logs, and the Node never sees the message."""

    def __init__(self, node: Any, on_refused: Callable[[str], None] | None = None) -> None:
        super().__init__(node)
        self.node = node
        # The src of the Node's own looped messages (none known: every message checked).
        self.own = getattr(node, "name", None)
        self.on_refused = on_refused or (lambda reason: None)
        self.refused: Counter[str] = Counter()

    def step(self, now: float, event: object) -> None:
        if type(event) is Acks:
            self._step_acks(now, event)
            return
        if type(event) is Message and event.src != self.own:
            self._check(event)
        self.node.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        """The innermost loop of a turn (node_engine/layer.py): each message checked
        right before the Node steps it (the facts the table reads are those the inputs
        before it made), a refused one refused alone and the turn going on."""
        node, step, check, own = self.node, self.node.step, authority.check, self.own
        for event in events:
            kind = type(event)
            try:
                if kind is Message and event.src != own:
                    try:
                        check(node, event.src, event.msg)
                    except Refused as e:
                        raise self._refusal(event, e) from None
                    except _UNREADABLE as e:
                        raise self._refusal(event, _malformed(e)) from None
                elif kind is Acks:
                    self._step_acks(now, event)
                    continue
                step(now, event)
            except RemoteProtocolError as e:
                refuse(event, e)
            except Exception as e:
                raise StepBroken(event) from e

    def _check(self, event: Message) -> None:
        """The authority table on one message; its refusal, counted, raised as a
        RemoteProtocolError."""
        try:
            authority.check(self.node, event.src, event.msg)
        except Refused as e:
            raise self._refusal(event, e) from None
        except _UNREADABLE as e:
            raise self._refusal(event, _malformed(e)) from None

    def _refusal(self, event: Message, e: Refused) -> RemoteProtocolError:
        self.refused[e.reason] += 1
        self.on_refused(e.reason)
        return RemoteProtocolError(f"{type(event.msg).__name__} from {event.src} refused"
                                   f" ({e.reason}): {e.detail}")

    def _step_acks(self, now: float, event: Acks) -> None:
        """Each acknowledgement checked by its own rule (authority.check_acks): those
        that hold are stepped as one input; each other one is counted and logged, and
        refused as one RemoteProtocolError after the rest was stepped."""
        acks, refusals = authority.check_acks(self.node, event.src, event.acks)
        for e in refusals:
            self.refused[e.reason] += 1
            self.on_refused(e.reason)
        if acks:
            self.node.step(now, event if not refusals else Acks(event.src, acks))
        if refusals:
            raise RemoteProtocolError(
                f"{len(refusals)} acknowledgements from {event.src} refused"
                f" ({refusals[0].reason}): {refusals[0].detail}")


def signed_submissions(trust: TrustStore) -> Callable[..., Admission | None]:
    """The Node's `admit` hook at a participant: a PREPARE's signed submission is checked
    (core/identity/submission.py `check_prepare_submission`: the
    submitter's signature over the spec, by the key its coordinator vouches for, or by
    the coordinator's own key from the trust store for a spec it signed itself; the spec
    to run is the one signed), then bound to one workflow id (`Node.check_submission`).
    A refusal is a RemoteProtocolError: no vote, and nothing is said to a coordinator
    that relays a forgery. Once it passed, the Node votes: NO, saying why, on a step
    asked here against the signed spec's own constraints (core/node/votes.py
    `constraints_refusal`, against the Node's labels), else its policy weighs the
    principal the spec names, qualified as its coordinator vouches for it
    (negotiation.py, `principal_of`)."""

    def admit(node: Any, now: float, tx: Any, info: Any) -> Admission | None:
        signed = info.submission
        if signed is not None:
            try:
                # A successor's round (a later epoch's range, its certificate checked
                # by the authority table) relays what the original coordinator vouched for.
                voucher = tx.coordinator if epoch_of_round(tx.round) == 0 \
                    else coordinator_of(tx.workflow_id)
                check_prepare_submission(signed, coordinator=voucher, spec=info.spec,
                                         trust=trust)
            except SubmissionError as e:
                raise RemoteProtocolError(f"submission: {e}") from None
        return Node.check_submission(node, now, tx, info)

    return admit

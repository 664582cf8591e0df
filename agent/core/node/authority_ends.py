"""Who tells a workflow's end and who claims its coordination: the authority rules of
end notices and takeover claims.

Theory of operation
-------------------
An end notice (`FinalMsg`) comes from the coordinator of the epoch held here (the
original, or a successor that showed its epoch's certificate), or of a later one (a
participant known here, or any domain that shows that epoch's certificate: a new
domain this Node never learned of, or the original placing no step that won a later
epoch, is still the proven coordinator, takeover soak seeds 114857, 117530, 103863), never
below the epoch this Node holds, except where it is let through only to be
acknowledged or answered and never taken: the same end told on from an overtaken
epoch, a rival claimant's end of the epoch held here, or an older epoch's end
answered with the later end and its proof (EndNotices.answer_overtaken), or, the
original coordinator's at a participant that ended the workflow with no such proof,
with the later epoch and its holder (EndNotices.show_later_epoch: an answer grants
nothing and says only what is held). A Node not committed to the workflow takes an
end only from a proven holder of a later epoch (a new domain in doubt on a
re-placement round), or, in epoch 0 and unproven, from a domain that round's PREPARE
names (a member's word: replacement_handover.py) while it holds no later epoch of
another, or as an elector holding no step (elector_ends.py), or, once it ended the
workflow on an end told while in doubt (the original's epoch-0 notice of a verdict
told before it is made), from a proven holder of a later epoch with its certificate
(`_told_end_kept`), so that told_ends.py replaces that end, which was never made (its
argument holds whether the COMMIT reached this Node or not: a proven epoch is of a
committed workflow, and the kept end is not this Node's own); and never below an
epoch it granted (the argument of domain_loss.py). Refused as "not committed here
yet", a participant back in doubt kept the FAILED its original told and never made
(it granted epoch 1 next) against epoch 1's SUCCEEDED everywhere else (takeover
one-way soak seed 197102921). Nor does a Node committed here take an
end without a certificate below an epoch it granted to another, though it follows no
epoch yet (a new domain committed by that claimant's own re-placement round: takeover
soak seed 18300721). The epoch granted here to the end's
sender, later than the epoch followed (granted as an acceptor before this Node was
committed: a new domain of that claimant's re-placement round), is held by that
sender, as follow_end takes it: its end is taken even from the original coordinator,
which is no participant (takeover soak seed 115316). Safe: no grant changes, and a
rival's end of that epoch needs its certificate as at any holder. A takeover claim
comes from a participant, the original coordinator, or a claimant that was granted an
epoch here, or from anyone once the workflow ended here (no saga plan open): it is
answered with the end alone, which grants nothing; its answer from anyone (the claim
core checks what it says).

The same end, proven. The proven holder of an epoch older than the one held here
(its notice shows that epoch's certificate) that tells the very end this Node holds is
let through only to be acknowledged (EndNotices.on_final then changes nothing: the
end is kept already, `later_end_replaces` replaces it by no equal end, and neither
`later_end` nor `rival_end` follows an epoch below the one held). Sound though this
Node granted or follows a later epoch: an acknowledgement says only "this end is
held here", and counts toward its teller making it (domain_loss.py); refused to an
older epoch's end because the later epoch may decide another end, on the grant given
here. But this Node ended the workflow: it takes no end below an epoch it granted or
followed, so the end it holds is the one told in the latest epoch it knows, and it
answers every later claim with that end alone, no grant (takeover_claims.py). The
end acknowledged is that end; no epoch this Node helped win is told another by it,
and the acknowledgement changes no state here. A saga's plan or end, or another end
(the original's loss verdict after a successor ended it otherwise), is refused or
answered as before. Refused as stale, the holder resent its notice for ever and
retention kept the workflow (takeover soak seed 194000193: the original coordinator,
following epoch 2, whose claimant told on FAILED without a proof, refused epoch 1's
certified FAILED).

The same end, unproven. Two notices of the very end this Node holds are let through
only to be acknowledged, though no certificate comes with them. (1) The original
coordinator's epoch-0 notice, where the later epoch held here is this Node's own: a
claim it never won, in which it told that end on. An acknowledgement counts toward the
original making its end (a loss verdict told before it is made, domain_loss.py); a
Node holding a later epoch acknowledges no older end so that the verdict's majority
and that epoch's claimant's majority never meet at it. But the one epoch past 0 this
Node granted is its own, and it ended the workflow with that very end and told it on
there (an end made here is never replaced: told_ends.py), so the verdict made on its
word is the end its epoch holds. Where the later epoch is another's, that holder may
decide otherwise: answered with that epoch as before (EndNotices.show_later_epoch).
Refused so, the original, its view holding this Node alive, claimed nothing and
resent its end for ever (test_fence_check.py's scripted run: a participant cut off
past its lease claims epoch 1 and, healed, tells the original's FAILED on in it).
(2) A rival claimant's end of the epoch held here for another, from a domain not known
here as a member: taken as a member's is (the rival clause below; its quorum argument
names electors, not members), but never followed (EndNotices.on_final leaves it out of
`rival_end`, which would yield to it by rank). Refused as another holder's epoch, the
rival, which had yielded its saga to the better claimant, resent its end for ever
(test_saga_check_twice_driver_crash.py's scripted run, seed 5). Another end from
either is answered or refused as before.

Settled. `FinalMsg.settled` (every participant had acknowledged the COMMIT when the
notice went) says nothing of the end; the original coordinator sets it on any notice
of a round all acknowledged. The same end told on from an overtaken epoch is let
through with it as without it (`same_end_told_on`), only to be acknowledged; the mark
is never acted on from an epoch older than the one held here (EndNotices.on_final:
a later epoch may have run re-placement rounds whose records the mark would let
retention drop), so the stale sender still has no say. Refused for that field alone,
the original, a participant too, resent its FAILED of epoch 0 every 8 s to the holder
of epoch 1, ended FAILED alike, to the run's end (takeover soak seed 222000312).

The same end, its proof kept. An elector holding no step that took an epoch's end
with its holder's certificate (`end_proofs`) acknowledges that holder's notice of the
very same end of that epoch told again with no certificate (a late granter of its
claim told the end in its epoch, takeover_late_grants.py `told`, which carries none):
nothing is taken (the end and its proof are kept already: elector_ends.py only
acknowledges), and the acknowledgement says what the first one said. Another end, or
another teller, with no certificate is refused as before. Refused, the holder resent
it for ever (takeover soak seed 222002831: d4, a re-placement's new domain that held
d1's CANCELLED of epoch 1 with its proof, refused d1's late-grant tell of it).

Pure: reads the Node, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedorch.core.identity.authority import Facts, Refused, authorize, coordinator_of
from fedorch.core.node.authority_steps import epoch_of
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg


def final(node: Any, src: str, msg: FinalMsg, votes: Any,
           proven_epoch: Callable[[str, int, str, Any], bool] | None) -> None:
    held, participants = epoch_of(node.state, msg.workflow_id)
    if held is None and msg.epoch >= 1 and msg.won and proven_epoch is not None \
            and _replacement_yes(node, msg.workflow_id) \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # The holder of a later epoch answers a new domain in doubt on a re-placement
        # round with the end it made (replacement_handover.py): its YES is released.
        return
    if held is None and msg.epoch == 0 and not msg.won \
            and _no_other_holder(node, msg.workflow_id, src) \
            and src in _replacement_members(node, msg.workflow_id):
        # A member of the workflow, asked by a new domain in doubt on a re-placement
        # round, answers with the end it holds and cannot prove (replacement_handover.py,
        # "A member's end"): its YES is released, as a claimant takes a member's word.
        # Never past an epoch granted or followed here held by another: a Node that
        # holds a later epoch takes no older end (told_ends.py says why); the holder
        # itself tells the one end of its epoch (takeover soak seed 115435).
        return
    if held is None and _elector_only(node, msg.workflow_id):
        _final_at_elector(node, src, msg, proven_epoch)
        return
    if msg.epoch > 0 and held is None \
            and not _told_end_kept(node, src, msg, proven_epoch):
        raise Refused("not_known", f"an end of {msg.workflow_id} in epoch {msg.epoch},"
                                   " not committed here yet")
    if held is None:
        # Not committed here (a new domain), it may still have granted a later epoch to
        # a claimant, as an acceptor: an elector takes an end only while it holds no
        # later epoch (domain_loss.py), or the winner drives on while it has ended the
        # workflow (takeover soak seed 10000987). Our own claim is no coordinator yet.
        granted = node.state.granted.get(msg.workflow_id, (0, ""))
        if granted[0] > msg.epoch and granted[1] != node.name:
            held = granted
    elif not msg.won and _granted_later(node, msg.workflow_id, max(held[0], msg.epoch)):
        # An epoch granted here to another, later than the one followed (a new domain
        # committed by that claimant's own re-placement round follows no epoch yet),
        # and an older end with no certificate: a grant is a promise, so it is refused
        # as at any elector (the argument of domain_loss.py). Taken, the original's
        # loss verdict (told before it is made, never made: it granted the successor
        # next) ended the step the successor had just placed here, and the successor
        # waited for it for ever (takeover soak seed 18300721).
        held = node.state.granted[msg.workflow_id]
    elif not msg.won and _claiming_later(node, msg.workflow_id, max(held[0], msg.epoch)):
        # Our own claim of a later epoch, not won: an older end with no certificate is
        # refused as under a grant to another (its teller may have told it and never
        # made it, and voids it once it grants a later claim). Taken, the claimant made
        # it its own in the epoch it claimed at once, and, its acknowledgement lost in a
        # crash, the teller granted the next claim, whose winner ended the workflow
        # otherwise (takeover soak seed 28000322). The claim learns the end from its
        # answers (takeover_claims.py), or wins and decides.
        held = node.state.granted[msg.workflow_id]
    elif msg.epoch > held[0] and node.state.granted.get(msg.workflow_id) == (msg.epoch, src):
        # The end of the epoch granted here to its sender, granted as an acceptor before
        # this Node was committed (a new domain of that very claimant's re-placement
        # round: `epochs` names no holder): its sender holds that epoch here, as
        # follow_end takes it, even where it is no participant (the original
        # coordinator back and acting past a gone holder: takeover soak seed 115316).
        held = (msg.epoch, src)
    if msg.won and held is not None and msg.epoch == held[0] and src != held[1] \
            and proven_epoch is not None \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # Its epoch certificate: the holder of that epoch here claimed it and lost.
        held = (msg.epoch, src)
    if same_end_told_on(node, src, msg, held, participants):
        # An end told on in an epoch since overtaken (a claimant that learned the end
        # before its claim won: the takeover core's Announce), to a member that has
        # ended the workflow alike: taken only to be acknowledged (EndNotices.on_final
        # does nothing else with the end of a workflow ended here), or the claimant
        # would resend it until the workflow is forgotten, and it is kept until
        # acknowledged. Another end (an original coordinator's loss verdict,
        # domain_loss.py, after a successor ended it on results) is refused below,
        # never acknowledged: the verdict would be made on our word; its sender is
        # told the later epoch's end and follows it. So too the original's epoch-0
        # same end where that later epoch is this Node's own (the header, "The same
        # end, unproven").
        return
    if held is not None and msg.epoch < held[0] and msg.won \
            and node.state.final.get(msg.workflow_id) == msg.state \
            and not msg.owed and not msg.saga_over and not msg.settled \
            and proven_epoch is not None \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # The proven holder of an overtaken epoch tells the very end this Node holds
        # (taken from a later epoch's holder, which brought it with no proof: so no
        # later end is kept to answer with): taken only to be acknowledged (the header,
        # "The same end, proven"). Refused as stale, its holder resent it for ever and
        # kept the workflow (takeover soak seed 194000193).
        return
    if held is not None and msg.epoch == held[0] >= 1 and src != held[1] \
            and node.state.final.get(msg.workflow_id) == msg.state \
            and participants is not None \
            and (src in participants or src == msg.workflow_id.rpartition(".")[0]):
        # A rival claimant's end of the epoch held here for another (two claimants of
        # one epoch that both told on the end they learned): the same end, taken only
        # to settle who drives the saga (saga_plans.rival_end: the better end is
        # followed, the other acknowledged), or both would resend for ever.
        return
    if held is not None and msg.epoch == held[0] >= 1 \
            and node.state.final.get(msg.workflow_id) == msg.state \
            and held[1] == node.name and src != node.name:
        # The same, to a claimant that told the end on in its epoch, from a rival not
        # known here as a member (a new domain the original placed a step on while we
        # were cut off: we refused that placement, not ended yet, so never wrote it):
        # taken only to be acknowledged and answered with our end, never followed
        # (saga_plans.rival_end). Refused, both drove the epoch's saga for ever.
        return
    if held is not None and msg.epoch == held[0] >= 1 and src not in (held[1], node.name) \
            and node.state.final.get(msg.workflow_id) == msg.state and not msg.won \
            and not msg.owed and not msg.saga_over and not msg.settled:
        # A rival claimant's end of the epoch held here for another, the very end this
        # Node holds, from a domain not known here as a member (a new domain whose
        # placement this Node never wrote): taken only to be acknowledged, never
        # followed (EndNotices.on_final leaves the stranger out of `rival_end`; the
        # header, "The same end, unproven"). Refused, the rival, which had yielded its
        # saga to the better claimant, resent its end for ever (the scripted run of
        # test_saga_check_twice_driver_crash.py, seed 5).
        return
    if held is not None and msg.epoch > held[0] and msg.won \
            and src not in (participants or ()) and proven_epoch is not None \
            and proven_epoch(msg.workflow_id, msg.epoch, src, msg.won):
        # The end of a later epoch from its proven holder, a domain this Node does not
        # know as a participant (a new domain whose placement it refused, told in an
        # older epoch than one it granted: placed_here.py): the certificate, a majority
        # of the electorate's signed grants, names the coordinator of that epoch, as a
        # placement known here would. Refused, this Node, back as the lost domain and
        # asking a holder that granted the later epoch since (which answers no more),
        # would hold its step for ever (takeover soak seed 114857). So too the original
        # coordinator, a participant nowhere, that won a later epoch past a holder gone
        # in its view (takeover_overtaken.py) and ended the workflow (seed 117530).
        return
    if held is not None and msg.epoch < held[0] and participants is not None \
            and (src in participants or src == msg.workflow_id.rpartition(".")[0]) \
            and node.end_notices.end_proof(msg.workflow_id) is not None:
        # An end told in an epoch since overtaken, to a member that ended the workflow
        # in a later one and keeps that end's proof: let through only to be answered
        # with that end and proof, never acknowledged nor taken (EndNotices.on_final,
        # `answer_overtaken`): its sender (an original coordinator back after its
        # successor ended the workflow and died) follows the later epoch.
        return
    if shows_later_epoch(node, src, msg):
        # The original coordinator's end of an older epoch, at a participant that ended
        # the workflow in a later one with no proof kept (its end came from an epoch-0
        # notice or a claimant's Announce): let through only to be answered with the
        # later epoch and its holder (EndNotices.show_later_epoch), never acknowledged
        # nor taken, so the original claims past a gone holder (takeover soak seed
        # 101830: refused silently, it stayed RUNNING for ever).
        return
    authorize("cancel", src, Facts(workflow_id=msg.workflow_id, epoch=msg.epoch,
                                   held=held, participants=participants))


def same_end_told_on(node: Any, src: str, msg: FinalMsg, held: tuple[int, str] | None,
                     participants: Any) -> bool:
    """Is `msg` the very end this Node holds, told with no certificate in an epoch older
    than the one held here, by a member, or by the original coordinator in epoch 0 (no
    saga plan nor end) where that later epoch is this Node's own: taken only to be
    acknowledged (the header, "The same end, unproven")?"""
    wf = msg.workflow_id
    if held is None or msg.epoch >= held[0] or participants is None \
            or node.state.final.get(wf) != msg.state or msg.won:
        return False  # (`settled` let through, never acted on: the header, "Settled")
    return src in participants or (src == coordinator_of(wf) and msg.epoch == 0
                                   and held[1] == node.name
                                   and not msg.owed and not msg.saga_over)


def shows_later_epoch(node: Any, src: str, msg: FinalMsg) -> bool:
    """Is `msg` the original coordinator's end notice of an epoch older than the one
    followed here, at a participant that ended the workflow and keeps no proof of that
    end (EndNotices.show_later_epoch answers it with the later epoch)? Not where the
    original is a participant too, nor, the later epoch held or granted here this
    Node's own, to the very end held here (each taken only to be acknowledged)."""
    wf = msg.workflow_id
    held, participants = epoch_of(node.state, wf)
    if held is None or participants is None or msg.epoch >= held[0]:
        return False
    granted = node.state.granted.get(wf, (0, ""))
    top = granted if granted[0] > held[0] else held  # a later grant counts (`final`)
    return src == coordinator_of(wf) and src not in participants \
        and wf in node.state.final and not msg.owed and not msg.saga_over \
        and node.end_notices.end_proof(wf) is None \
        and not same_end_told_on(node, src, msg, top, participants)


def _elector_only(node: Any, wf: str) -> bool:
    """Does this Node hold no step and no vote of `wf` (with takeover: an elector
    only, an acceptor of its committed round, whether its records say so or its
    Accept was lost)? It keeps a held end told to it (elector_ends.py)."""
    d = node.state
    return getattr(node, "takeover", None) is not None and wf not in d.rows \
        and wf not in d.committed and not node.participant.keys_of(wf)


def _final_at_elector(node: Any, src: str, msg: FinalMsg,
                      proven: Callable[[str, int, str, Any], bool] | None) -> None:
    """An end at an elector holding no step: from the coordinator of the epoch it names,
    never below the epoch it granted or followed (it acknowledges an end only while it
    holds no later epoch: the argument of domain_loss.py); a successor's with its
    certificate. An older epoch's end reaches it only to be answered with the later end
    it keeps (EndNotices.answer_overtaken), or, none kept, with the later epoch it holds
    (elector_ends.py)."""
    d = node.state
    wf = msg.workflow_id
    followed = d.epochs.get(wf, (0, coordinator_of(wf)))
    granted = d.granted.get(wf, (0, ""))
    held = granted if granted[0] > followed[0] else followed
    if msg.epoch < held[0] and (wf not in d.final or node.end_notices.end_proof(wf) is not None):
        return  # answered, never acknowledged: with the later end, or the later epoch
    kept = d.end_proofs.get(wf)
    if msg.epoch >= 1 and not msg.won and kept is not None and kept[:2] == (msg.epoch, src) \
            and d.final.get(wf) is msg.state and not msg.owed and not msg.saga_over:
        return  # its holder's very end, kept with its proof (the header, "The same
        # end, its proof kept"): only acknowledged
    if msg.epoch >= 1:
        if not msg.won or proven is None or not proven(wf, msg.epoch, src, msg.won):
            raise Refused("not_coordinator", f"{src} told an end of {wf} in epoch"
                                             f" {msg.epoch} without its certificate")
        if msg.epoch == held[0]:
            held = (msg.epoch, src)  # it won the epoch we granted (to it or a rival)
    authorize("cancel", src, Facts(workflow_id=wf, epoch=msg.epoch, held=held))


def _told_end_kept(node: Any, src: str, msg: FinalMsg,
                   proven: Callable[[str, int, str, Any], bool] | None) -> bool:
    """Is `msg` the end of a later epoch, with its certificate, at a Node not committed
    to the workflow that ended it on an end told while it was in doubt (the original's
    epoch-0 notice: told_ends.py may replace it)?"""
    wf = msg.workflow_id
    return wf in node.state.final and msg.epoch >= 1 and bool(msg.won) \
        and proven is not None and proven(wf, msg.epoch, src, msg.won)


def _replacement_yes(node: Any, wf: str) -> bool:
    """Does this Node hold a YES of a re-placement round of `wf` (replacement.py)?"""
    d = node.state
    return any(getattr(d.info.get(k), "lost", "") for k in node.participant.keys_of(wf))


def _replacement_members(node: Any, wf: str) -> set[str]:
    """The domains the PREPARE of a re-placement round of `wf` we hold a YES of names
    (its coordinator, its placement and the lost domain), this Node aside."""
    d = node.state
    members: set[str] = set()
    for k in node.participant.keys_of(wf):
        info = d.info.get(k)
        if getattr(info, "lost", ""):
            members |= set(info.placement.values()) | {info.lost, info.coordinator}
    members.discard(node.name)
    return members


def _granted_later(node: Any, wf: str, epoch: int) -> bool:
    """Did this Node grant an epoch of `wf` later than `epoch` to another domain?"""
    granted, holder = node.state.granted.get(wf, (0, ""))
    return granted > epoch and holder != node.name


def _claiming_later(node: Any, wf: str, epoch: int) -> bool:
    """Does this Node claim an epoch of `wf` later than `epoch`, a claim not won (no act
    of it on record: `epochs` names it only once it acts or tells an end on), and hold
    no end of it (a claim for an open saga plan takes its driver's notices as before)?"""
    d = node.state
    granted = d.granted.get(wf, (0, ""))
    return granted[0] > epoch and granted[1] == node.name and d.epochs.get(wf) != granted \
        and wf not in d.final


def _no_other_holder(node: Any, wf: str, src: str) -> bool:
    """Does this Node grant or follow no epoch >= 1 of `wf`, or only one `src` holds?"""
    d = node.state
    epoch, holder = max(d.granted.get(wf, (0, "")), d.epochs.get(wf, (0, "")))
    return epoch == 0 or holder == src


def claim(node: Any, src: str, msg: ClaimMsg, votes: Any, proven: Any) -> None:
    # A participant claims; so may the original coordinator, told of a later epoch whose
    # holder is gone (agent/core/workflow/takeover_overtaken.py): grants decide.
    d = node.state
    if msg.workflow_id in d.final \
            and not node.compensating.plans.plan_open(msg.workflow_id):
        # Ended here, no saga plan open: the claim is answered with the end alone, no
        # grant (takeover_claims.py), whoever claims. A step's domain placed again
        # twice over is named in no placement kept here (only a step's latest is), yet
        # holds its round's reservation and, claiming, refuses the tell of its step's
        # move; refused too, it never learned the end (2PC takeover soak seed 65000697).
        return
    participants = epoch_of(d, msg.workflow_id)[1]
    if participants is not None:
        participants = participants | {coordinator_of(msg.workflow_id)}
        # And the claimant granted an epoch here: a rival our claim yielded to
        # (core/workflow/takeover_split.py: it "wins with our vote"), maybe a new domain
        # whose placement never reached us; refused, it never could (2PC seed 9100469).
        granted = d.granted.get(msg.workflow_id, (0, ""))
        if granted[0] >= 1:
            participants.add(granted[1])
    authorize("takeover_claim", src, Facts(
        workflow_id=msg.workflow_id, epoch=msg.epoch, participants=participants))


def claim_answer(node: Any, src: str, msg: ClaimAnswerMsg, votes: Any, proven: Any) -> None:
    authorize("takeover_answer", src, Facts(workflow_id=msg.workflow_id))

"""The seeded runs' liveness checks of takeovers (core/node/takeover.py) and of the
undecided once their coordinator is DEAD (core/node/member_loss.py), for check.py.

Run at `Checker.finish` in runs with membership views (with takeover), from the
Checker's records (who voted YES when, who learned what when, who ended what when):

* `check_takeovers`: a committed workflow whose coordinator died for good ends at
  every live participant within a bound after the last fault, if a majority of its
  electorate lives;
* `check_undecided_recovery`: an in-doubt YES voter whose view says its coordinator
  is DEAD learns the decision within one recovery of being told, not a lease (its
  times to resolve are the run's `undecided after coordinator DEAD` stats, over the
  samples of `undecided_after_death`). The network's hits on that voter's recovery
  (`network_hit`: its questions, ballot messages and their answers lost, cut off or
  slowed) each cost it up to one resend, so the bound grows with them: a fixed
  allowance alone is too tight where every live acceptor is needed (takeover soak
  seed 88000620: the dead coordinator one of four acceptors, so the ballot waited for
  each of the other three, through six lost and nine slowed messages).

The takeover deadline allows for the network's hits on the workflow's end notices and
their acknowledgements too (`end_hit_cost`). An end told before it is made is made
once enough electors acknowledged it (domain_loss.py), so the end at its teller, and
at those it told, waits for that exchange; the Node resends an end notice until it is
acknowledged, its backoff doubling to at most `END_RESEND_MOST_S`, so each notice or
acknowledgement the network loses costs one resend at most (`END_RESEND_MOST_S`), and
one it holds costs its delay, or one resend if that is shorter. Hits on the exchange
with an agent dead for good cost nothing (no end waits for it). The fixed slack alone
is unfair while the network still delays or loses messages (before `chaos_end`): no
bound without them holds against a run of hits on one exchange (takeover soak seed
102933: the successor's end told 8.4 s before the deadline, the participant's three
acknowledgements, sent at once each time it was told, held 11.4, 8.6 and 5.9 s on
the way, the end made 0.5 s past the deadline; seed 108589: a loss verdict told to a
domain while it was down, its resend backed off to 8 s by the time it was back, two
acknowledgements and a notice lost, the end made 5.4 s past the deadline).

`checker` is the run's Checker (check.py), typed loosely: check.py imports this
module, never the reverse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    Key,
    PaxosPrepare,
    Promise,
    Reject,
)
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    FinalMsg,
    PlacementAnswer,
    PlacementQuery,
)

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


# The undecided after their coordinator's DEAD, while the network still loses and
# delays messages: the questions (every query_interval_s) and a ballot's messages (every
# resend_s) each sent this many times more at most.
CHAOS_RECOVERY_QUERIES = 2

# A takeover's end: its claim round, then the steps left (each up to 0.6 s, retried) and
# results resent with backoff to the successor; bounded by two leases of the simulation.
TAKEOVER_SLACK_LEASES = 2

# The most a Node's resend of an end notice backs off to (Node.tick, `resend_due`): what
# a lost end notice or acknowledgement may cost the end (`end_hit_cost`).
END_RESEND_MOST_S = 8.0

# The messages by which an in-doubt participant learns its decision (termination.py
# and proposer.py): its questions and their answers, its ballot and the Decision.
RECOVERY_MESSAGES = (DecisionQuery, DecisionAnswer, PaxosPrepare, Promise, Accept,
                     Accepted, Reject, Decision)

# The successor's own exchange before its end (see the header): its claims and their
# answers, and a restored driver's asks of its electorate and their answers
# (original_asks.py), each resent on a schedule that backs off to less than
# END_RESEND_MOST_S.
TAKEOVER_EXCHANGE = (ClaimMsg, ClaimAnswerMsg, PlacementQuery, PlacementAnswer)


def network_hit(hits: dict[tuple[str, Key], list[tuple[float, str, float | None]]],
                src: str, dst: str, msg: object, now: float,
                delay: float | None = None,
                ends: dict[str, list[tuple[float, str, str, float | None]]] | None = None,
                ) -> None:
    """The network lost or cut off `msg` at `now` (`delay` None), or held it `delay`
    s more than usual: noted for its sender and its receiver, each with the other
    side, if it is one of a recovery's messages (`check_undecided_recovery`); in
    `ends`, by workflow, if it is an end notice or its acknowledgement, or one of
    the takeover's exchange before the end (`TAKEOVER_EXCHANGE`; `end_hit_cost`)."""
    if ends is not None:
        if isinstance(msg, (FinalMsg, *TAKEOVER_EXCHANGE)):
            ends.setdefault(msg.workflow_id, []).append((now, src, dst, delay))
        elif isinstance(msg, AckMsg) and len(msg.msg_id) > 1 and msg.msg_id[0] == "final":
            ends.setdefault(msg.msg_id[1], []).append((now, src, dst, delay))
    if not isinstance(msg, RECOVERY_MESSAGES):
        return
    key = msg.tx.key if isinstance(msg, (PaxosPrepare, Accept)) else msg.key
    hits.setdefault((src, key), []).append((now, dst, delay))
    hits.setdefault((dst, key), []).append((now, src, delay))


def hit_cost(checker: Any, sim: World, voter: str, key: Key, start: float,
             learned: float) -> float:
    """What the network's hits on `voter`'s recovery of `key` between `start` and
    `learned` may have cost it: a resend for each message lost, cut off or held past
    a resend, its delay for one held less; nothing for one to or from an agent dead
    for good (no ballot waits for it)."""
    resend = sim.config.timing.resend_s
    return sum(resend if delay is None else min(delay, resend)
               for at, peer, delay in checker.hits.get((voter, key), ())
               if start <= at < learned and peer not in sim.dead_forever)


def end_hit_cost(checker: Any, sim: World, wf: str, start: float, ended: float) -> float:
    """What the network's hits on `wf`'s end notices and their acknowledgements between
    `start` and `ended` may have cost its end (see the header): a resend at its most
    for each lost or cut off, its delay for one held (a resend at most); nothing for
    one to or from an agent dead for good."""
    return sum(END_RESEND_MOST_S if delay is None else min(delay, END_RESEND_MOST_S)
               for at, src, dst, delay in checker.end_hits.get(wf, ())
               if start <= at < ended and src not in sim.dead_forever
               and dst not in sim.dead_forever)


def _bucket(seconds: float | None) -> str:
    """A time-to-resolve as a bucket of the run's stats (a histogram over seeds)."""
    if seconds is None:
        return "never"
    for edge in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0):
        if seconds < edge:
            return f"resolved in < {edge:g} s"
    return "resolved in >= 16 s"


def check_takeovers(checker: Any, sim: World) -> None:
    """A committed workflow whose coordinator died for good ends at every live
    participant within takeover_after_s (+ DEAD's delay) + TAKEOVER_SLACK_LEASES
    leases after the last fault (the electorate's, or that participant's own
    restart, or the death of a participant gone for good), if a majority of its
    electorate (the committed round's acceptors; a workflow on two domains too)
    lives; later by what the network's hits on the end's exchange cost it
    (`end_hit_cost`). A participant gone for good (a coordinator that ran steps
    itself counts as one) has its steps failed by the successor's loss verdict, whose
    end, told to every elector, is made once enough acknowledged it (domain_loss.py):
    the live majority is enough."""
    t = sim.config.timing
    for wf, coord in sim.workflows.items():
        round_ = checker.committed(wf)
        tx = checker.txs.get((wf, round_)) if round_ is not None else None
        if coord not in sim.dead_forever or tx is None \
                or checker.blocked_2pc(sim, tx.key):  # nobody knows it committed
            continue
        # The takeover electorate: the round's acceptors (Paxos Commit), else these.
        # An extra acceptor that never heard of the round (its Accept was lost, the
        # coordinator died) grants on the claimant's proof of it: every member counts.
        electorate = set(tx.acceptors) or set(tx.participants) | {coord}
        live = tuple(sorted(electorate - sim.dead_forever))
        if len(live) < len(electorate) // 2 + 1:
            continue
        lost = set(tx.participants) & sim.dead_forever
        calm = max(sim.calm_since(live), sim.died_at.get(coord, 0.0),
                   *(sim.died_at.get(p, 0.0) for p in lost))
        for p in tx.participants:
            if p == coord or not sim.agents[p].alive:
                continue
            if checker._exempt_past_life(sim, p, tx.key):
                # In doubt past the round's life, refused by its acceptors: it stays so,
                # never decided wrongly (docs/retention.md, "The limit it documents";
                # seed 94025371 with --keep-ended-s 10: a participant that crashed as it
                # accepted the COMMIT, twice more while recovering, its round past its
                # life at the third acceptor: test_world_retention_takeover.py).
                continue
            # From the participant's own last restart too (its last fault): a
            # participant back late, outside the electorate, learns the end by its
            # own look at the dead coordinator (takeover_after_s after its restart).
            start = max(calm, sim.last_restart.get(p, 0.0))
            deadline = start + t.takeover_after_s + t.dead_after_s \
                + TAKEOVER_SLACK_LEASES * t.lease_s
            at = checker.ended_at.get((p, wf))
            if at is not None:  # and the network's hits on its end's exchange (header)
                deadline += end_hit_cost(checker, sim, wf, start, at)
            if at is None or at > deadline:
                when = "never" if at is None else f"at {at:.2f}"
                checker.fail(f"takeover: {p} ended {wf} {when}, deadline {deadline:.2f}"
                             f" (coordinator {coord} dead for good)")

def undecided_after_death(checker: Any, sim: World) -> list[tuple[str, Key, float, float | None]]:
    """Each YES voter left in doubt when its Node was told its coordinator is DEAD
    (or LEFT), as (voter, key, when it could start: the later of that telling, its
    YES and the calm of its acceptors and itself, when it learned or None), where
    the bound applies: its view said so until it learned (a coordinator back
    ALIVE may compete with the recovery), the voter did not restart since, and a
    majority of the acceptors but the coordinator lives."""
    samples = []
    for key, voters in checker.yes.items():
        tx = checker.txs[key]
        live = [a for a in tx.acceptors if a != tx.coordinator
                and a not in sim.dead_forever]
        if len(live) < tx.majority:
            continue
        for voter in voters:
            if voter in sim.dead_forever or not sim.agents[voter].alive:
                continue
            yes = checker.yes_at[(voter, key)]
            learned = checker.learned_at.get((voter, key))
            restart = sim.last_restart.get(voter, 0.0)
            for start, end in sim.membership.gone_told.get((voter, tx.coordinator), ()):
                told = max(start, yes)
                if start < restart or learned is not None and learned <= told \
                        or end is not None and end <= told:
                    continue
                if end is not None and (learned is None or end < learned):
                    break  # back ALIVE in its view before it learned
                calm = sim.calm_since((*live, voter))
                samples.append((voter, key, max(told, calm), learned))
                break
    return samples

def check_undecided_recovery(checker: Any, sim: World) -> None:
    """Non-blocking, and fast (core/node/member_loss.py): an in-doubt YES voter
    whose view says its coordinator is DEAD learns the decision within one recovery
    of being told (`dead_after_s` after the death, or its YES or the calm of its
    acceptors if later), not after its whole lease: its turn to propose (its rank
    among the participants × `stagger_s`, + up to `backoff_s`), then one ballot,
    its two phases each resent once; while the network still loses or delays
    messages (before `chaos_end`), each hop may need resending too:
    CHAOS_RECOVERY_QUERIES repeats of the questions and as many of a ballot, or what
    the network's hits on the voter's recovery messages between the telling and the
    learning may have cost it (`hit_cost`), whichever is more: a ballot that needs
    every live acceptor waits for the unluckiest of them in each phase."""
    t = sim.config.timing
    c = sim.config
    for voter, key, start, learned in undecided_after_death(checker, sim):
        if learned is None and (voter, key) in checker.past_life:
            continue  # refused past the round's life: in doubt (see the header)
        took = None if learned is None else learned - start
        sim.stats[f"undecided after coordinator DEAD: {_bucket(took)}"] += 1
        tx = checker.txs[key]
        others = sorted((p for p in tx.participants if p != tx.coordinator),
                        key=lambda p: (p not in tx.acceptors, p))
        rank = others.index(voter) if voter in others else len(others)
        bound = rank * t.stagger_s + t.backoff_s + 2 * t.resend_s
        slack = 0.0
        if start < c.chaos_end and (c.loss or c.slow):
            slack = CHAOS_RECOVERY_QUERIES * (t.query_interval_s + t.resend_s)
        if learned is not None:
            slack = max(slack, hit_cost(checker, sim, voter, key, start, learned))
        bound += slack
        if took is None or took > bound:
            when = "never" if learned is None else f"at {learned:.2f}"
            checker.fail(f"undecided: {voter} learned {key} {when}, told its coordinator"
                         f" {tx.coordinator} DEAD and calm at {start:.2f}, bound"
                         f" {bound:.2f} s (one recovery)")

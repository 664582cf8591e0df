"""Coordinator takeover: who finishes a committed workflow whose coordinator is gone.

Theory of operation
-------------------
A committed workflow has a coordinator *epoch*: 0 is the coordinator its id names;
each takeover moves it on by one. Every domain of the workflow's *electorate* holds,
durably, the highest epoch it has granted and the domain it granted it to: that pair
is "the coordinator as known here".

The electorate is fixed when the workflow commits and is the same set at every domain
that counts grants in it:

- Paxos Commit: the committed round's acceptors (`acceptors`: its coordinator, its
  participants up to `max_acceptors`, and the ALIVE members added up to
  `min_acceptors`). The signed PREPARE names them, so every participant and
  acceptor of the round knows the same set, and it never changes afterwards (a
  later re-placement round is classic 2PC and carries no acceptors). Nothing is
  added to it, not even the participants beyond `max_acceptors`: adding "the
  domains with steps now" would make the set depend on when a domain looked (a
  re-placement moves a step), and two claimants counting majorities of two
  different sets could both win. An extra acceptor holds no step, but it answers
  claims like any member (it keeps its grant durably), so a workflow on two domains
  whose coordinator dies is taken over by the surviving participant with the extra
  acceptor's grant: 2 of 3. A participant that is no acceptor may claim; its own
  grant does not count, the acceptors' do.
- Classic 2PC: there are no acceptors; the electorate is the domains the committed
  round placed steps on plus the original coordinator. With one participant besides
  a dead coordinator that is 1 of 2: such a workflow waits for its coordinator (see
  docs/failure-model.md).

One `Takeover` per committed workflow per participant, fed by the shell:

- `Watch(state)`: the membership state of the coordinator known here (ALIVE,
  SUSPECT, DEAD, LEFT, or "" when unknown). DEAD or LEFT makes it *gone* at once;
  anything but ALIVE for `takeover_after_s` (silent: a partition, a stall) too. ""
  is no silence seen but a view not had: silence counts from the view's first word
  (seed 68000128: a Node stalled as it restarted claimed at its first SUSPECT).
- `Timer`: `now` passed `get_timer()`.
- `Grant(voter, epoch)` / `Deny(voter, epoch, held_epoch, holder, proven)`: answers to
  our claim or to an acting coordinator's ask (`proven`: see Denials).
- `Adopted(epoch, coordinator)`: this domain granted (or learned) a coordinator at
  `epoch` (see `may_grant`), from another claimant, an end notice, or its own claim.
- `EndKnown()`: the workflow has ended, as the shell verified it: an end notice of an
  epoch below our claim (the coordinator followed here until a claim wins, so its end
  is taken) or a member's answer to our claim.
- `Proven(epoch, coordinator)`: the shell verified an epoch certificate (a majority of
  the electorate's signed grants, agent/core/workflow/epoch_certificate.py) showing
  that `coordinator` won `epoch`: an acting successor's claim, or its answer to ours.

When the known coordinator is gone, the *successor* is the lowest domain name among
the live participants (`successor`): deterministic, so with one membership view
everywhere exactly one domain claims. The successor claims `epoch + 1`: it grants
itself, asks every other electorate member (`SendClaim`), and acts (`Act`) only
once a majority of the electorate has granted that epoch to it. The participants
outside the electorate (`audience`) hear the claim once it has won, and again until
they answer: it is how they learn whom to send their results to (their grants count
for nothing). Not before: one that granted a claim that then lost would refuse the
old coordinator's end for ever.

Safety (never two coordinators acting in one epoch) does not depend on views
agreeing: a domain grants an epoch at most once (`may_grant`: a higher epoch, or the
same epoch to the same claimant again), and two majorities of one electorate meet,
so at most one claimant gathers a majority for an epoch. Views that disagree (a
partition) can only make two domains claim one epoch: at most one wins. The denials
name the domain each voter holds the epoch for, and from them a claimant decides at
once who goes next, by rank (agent/core/workflow/takeover_split.py): it follows a
better-ranked (lower-named) rival that answered itself or that leaves it no majority
to reach; the best-ranked claimant claims the next epoch at once when this one is
lost (unless a rival may have won it: its proof tells), and asks the rivals that
yield to it again (`rival_again_s`, doubling) for their votes. Only what the denials
cannot settle (a member it needs stays silent) waits for the claim timeout, as before.
A coordinator whose epoch is over (the old one returning, or a claimant that lost)
learns it by `Adopted` and follows: the shell refuses every coordinator message of a
lower epoch.

Why a majority of the acceptors, and not of the domains with steps, is enough: safety
rests only on (a) one fixed electorate, the same at every domain that counts, and (b)
each member granting an epoch at most once, durably, before its answer leaves. (a)
holds because the committed round's acceptors are signed into its PREPARE and never
change; (b) because a grant is written (the workflow row, or for an acceptor holding
no step its own grant record) before the answer. Any two majorities of the acceptors
share a member, which granted that epoch to one claimant only. The claimant is a
participant, or the original coordinator claiming past a gone holder
(takeover_overtaken.py; a claim from any other domain is refused), so the winner has
steps of its own or signed the round; a winning majority holds the claimant itself unless it is a participant
beyond `max_acceptors`, and the participants that granted it refuse, from then on,
every coordinator message of the older epoch (the others once they hear of it). A
participant added later by re-placement is no member either: it may claim, but its
own grant does not count.

Liveness needs a majority of the electorate alive and connected: under Paxos Commit,
with `min_acceptors` 3 (the default), one participant, the dead coordinator and one
extra acceptor: the participant and the extra acceptor. Under classic 2PC, with two
participants and the original coordinator dead, both must be up.

Roles (`Role`) and the one transition table (`TABLE`; CLAIMING's: takeover_claiming.py,
ACTING's: takeover_acting.py):

    FOLLOWING --Watch/Timer: known coordinator gone, we are the successor--> CLAIMING
              (the successor is next in line once those before it let
              takeover_after_s pass without a claim; never an epoch below one we
              withdrew, even across a restart: takeover_claiming.py, Restarted)
    CLAIMING  --Grant: majority--> ACTING (the claim, with its proof, once to each granter)
    ACTING    --Timer--> ACTING (the claim again to those that have not granted it)
    ACTING    --Deny(later epoch, from a member, its holder DEAD/LEFT here), or
              Proven(the same)--> CLAIMING that epoch + 1 (takeover_overtaken.py)
    ACTING    --Watch--> ACTING (who is gone noted)
    CLAIMING, ACTING --Deny(proven)--> as Proven(held_epoch, holder)
    CLAIMING, ACTING --Deny(later epoch, unproven)--> the same role (Unproven; Denials)
    ACTING    --Deny(later epoch, unproven, from a member, its holder gone here:
              `holder_gone`)--> CLAIMING that epoch + 1 (Denials)
    CLAIMING  --Deny(the coordinator we claimed past, as itself, its lower epoch; we
              outside the electorate, no member's grant of any claim since we last
              followed another)--> FOLLOWING it (Withdrawn:
              takeover_claiming.py)
    FOLLOWING --Grant(of the epoch we withdrew, from a member)--> CLAIMING that
              epoch again, that grant counted (Withdrawn: takeover_claiming.py)
    FOLLOWING --Asked(by a member, a claim of ours withdrawn)--> FOLLOWING (the
              claim of the epoch withdrawn sent to it again: its grant lost on the
              way comes again, as the Grant above; takeover_claiming.py)
    CLAIMING  --Deny(our epoch, held for a rival)--> (takeover_split.resolve)
              FOLLOWING the best-ranked rival, if it answered itself or leaves us no
              majority; CLAIMING the next epoch when ours is lost, no better-ranked
              rival is known and none may have won; else CLAIMING (and the
              worse-ranked rivals that answered themselves asked again: Timer)
    CLAIMING  --Timer: claim timed out, rivals known--> CLAIMING the next epoch if we
              rank best; else FOLLOWING the best-ranked rival
    CLAIMING  --Timer: claim timed out, no answer--> CLAIMING (the same epoch, asked again;
              the next one if voters holding a later epoch, unproven, leave no majority)
    any       --Adopted(higher epoch, someone else)--> FOLLOWING
    ACTING    --(nothing but a higher epoch ends it)
    CLAIMING, ACTING (epoch >= 1) --EndKnown--> Announce(epoch); the core is done
    FOLLOWING, CLAIMING --Proven(epoch >= ours, another)--> FOLLOWING it (a rival
              claimant of that very epoch too, and a follower of a claimant that lost
              it); ACTING --Proven(higher epoch)--> FOLLOWING

Why a proven winner is followed at once, even by a claimant of the same epoch: a
certificate holds the grants of a majority of the electorate for (epoch, coordinator),
and every other majority shares a member with it, which granted that epoch to the
winner only; so no other claimant of that epoch can gather a majority, ever, and a
claim of it is dead. Waiting for the claim timeout to find that out by denials (then
claiming the next epoch, or following the rival, by name) only delays the workflow: by
two claim timeouts, and, for the lower name, a second takeover that overthrows a
successor already acting. The domain that follows the winner records it as the holder
of that epoch (its own claim of it is dropped, its claims stop), and may then grant it
that epoch when asked again (`may_grant`: the same epoch to the same holder), which
is only its word for what a majority already said.

Why a claimant announces an end it did not make: the members that granted its claim
follow it, and refuse every word of a lower epoch, the old coordinator's end notice
too; the claimant learned the end (from a member's answer to its claim, or from an
older epoch's notice with that epoch's certificate: one without it refuses while its
claim has not won, agent/core/node/authority_ends.py). Were it to end the workflow only here, the granters would
wait for it for ever: it is alive, so nobody claims past it, and it never acts. So it
tells the end, as it received it, to every participant and the original coordinator in
its claimed epoch, which those that granted it hold for it, and is done: it never
`Act`s, no outcome of its own is made, nor is a claim sent any more. A member that
holds a later epoch refuses that notice; it follows a later claimant, whose claim to
us is answered with the end (the shell's `ended meanwhile`). See docs/decisions.md.

Denials. A denial naming a later epoch is followed only on proof: a `Deny` whose
certificate of it the shell verified (`proven`) is the `Proven` it shows; else it is
the voter's word (`Unproven`; the core does not ask that voter again in this epoch).
A claimant keeps claiming (the voter grants ours to no one: the split rule
counts it out; left with no majority by such voters, it claims the next epoch at its
claim timeout, one at a time: that epoch's claimant may have died before it won); an
acting coordinator keeps acting, unless the shell says the named holder is gone in
its view (`holder_gone`, DEAD or LEFT): then it claims that epoch + 1 at once. A
holder that won shows its certificate to its granters as it wins, so one gone without
showing it never will, and the voter, following it, refuses our epoch for ever
(takeover soak seed 20801425: the original won epoch 2 over the acting successor and
died for good at once; the successor's end was refused for ever). A claim is safe
whatever the word (it acts only on a majority's grants); a word proven later is
followed, never claimed past, by a successor (takeover_overtaken.py), so two
successors do not overthrow each other on it. That cannot make two epochs act: it leaves the core
where a lost denial would, and grants, not following, keep coordinators apart. A claim
wins only on a majority's grants; a round runs only on fresh grants of the asker's own
epoch (round_mandate.py), impossible once a later epoch won (its majority meets every
set those grants must fill); end notices of a lower epoch are refused where a later
one is held.

An acting successor proves its epoch to third parties (the candidates of the rounds
that place lost steps again) with the grants themselves: each names, signed, the
committed round and the electorate it is counted in, and a majority of them is an
epoch certificate (agent/core/workflow/epoch_certificate.py, where the argument that
a stranger can check it, and that two certificates of one epoch cannot both exist,
is written out). Its rounds are numbered in its epoch's own range there.

Pure: no I/O, time comes in as `now`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from fedorch.core.workflow import takeover_acting as acting
from fedorch.core.workflow import takeover_claiming as claiming
from fedorch.core.workflow.takeover_claiming import restored as claiming_restored
from fedorch.core.workflow.takeover_events import (
    Act,
    Action,
    Adopted,
    Announce,
    Asked,
    Deny,
    EndKnown,
    Grant,
    Input,
    Persist,
    Proven,
    Role,
    SendClaim,
    Timer,
    Unproven,
    Watch,
    majority,
    may_grant,
    successor,
)

__all__ = ["TABLE", "Act", "Action", "Adopted", "Announce", "Asked", "Deny", "EndKnown", "Grant",
           "Input", "Persist", "Proven", "Role", "SendClaim", "Takeover", "Timer", "Unproven",
           "Watch", "majority", "may_grant", "successor"]

GONE_AT_ONCE = frozenset({"DEAD", "LEFT"})
DEFAULT_TAKEOVER_AFTER_S = 10.0


class Takeover:
    """One committed workflow's coordinator epoch, as one domain of its electorate sees it."""

    def __init__(self, me: str, original: str, participants: Collection[str], *,
                 acceptors: Collection[str] = (),
                 epoch: int = 0, coordinator: str | None = None,
                 takeover_after_s: float = DEFAULT_TAKEOVER_AFTER_S,
                 claim_timeout_s: float = 5.0, rival_again_s: float = 0.2,
                 claiming: bool = False, withdrawn: int | None = None,
                 granted_by: Collection[str] = (), predecessor: str | None = None) -> None:
        if not participants:
            raise ValueError("a committed workflow has participants")
        if epoch < 0:
            raise ValueError("epochs start at 0")
        self.me = me
        self.original = original
        self.participants = frozenset(participants)
        # Paxos Commit: the committed round's acceptors, as they are (see the docstring);
        # classic 2PC: the participants and the original coordinator.
        self.electorate = frozenset(acceptors) or (self.participants | {original})
        # Who hears a claim: the electorate, and the participants outside it (beyond
        # max_acceptors, or added by re-placement), whose grants do not count but who
        # learn from the claim whom to send their results to.
        self.audience = self.electorate | self.participants
        self.epoch = epoch
        self.coordinator = coordinator if coordinator is not None else original
        self.takeover_after_s = takeover_after_s
        self.claim_timeout_s = claim_timeout_s
        self.rival_again_s = rival_again_s
        self.role = Role.ACTING if self.coordinator == me else Role.FOLLOWING
        self._unseen_since: float | None = None  # coordinator not ALIVE since
        self._unnamed = False  # ... the view never naming it ("") since then
        self._gone = False
        self._grants: set[str] = set()
        self._claim_deadline: float | None = None
        self._dead: frozenset[str] = frozenset()
        # Successors that were due to claim and did not (one that knows the workflow
        # ended claims nothing), and since when we wait for the current one.
        self._passed: set[str] = set()
        self._waiting: tuple[str, float] | None = None
        # Split claims (agent/core/workflow/takeover_split.py): voter -> the other domain
        # it holds our claimed epoch for; the coordinator we took over from; when to ask
        # again the worse-ranked rivals that yield to us, and the pause before that.
        self._denied: dict[str, str] = {}
        # Voters that denied our claimed epoch naming a later one without proof (Denials).
        self._unproven: set[str] = set()
        self._predecessor: str | None = None
        self._again_at: float | None = None
        self._again_pause = rival_again_s
        # A claim withdrawn (takeover_claiming.py, `withdraw`): no claim before this
        # time; and the epoch withdrawn, taken up again on a member's grant of it.
        self._quiet_until: float | None = None
        self._withdrawn: int | None = None
        # A member granted one of our claims since we last followed another (any
        # epoch: a claim that moved on to the next epoch leaves that member following
        # us in the one it granted): such a claim is never withdrawn.
        self._member_granted = False
        self._quiet_on_first_look = False  # restored withdrawn: quiet from the first `now`
        self.ended = False  # Announce given: nothing more to do
        if self.role is Role.ACTING and epoch > 0:
            # A successor restarted: whoever did not answer its claim before still needs
            # telling (an old coordinator back meanwhile, a follower of it).
            self._grants = {me}
            self._claim_deadline = float("-inf")
        claiming_restored(self, claiming, withdrawn, granted_by, predecessor)

    # ---- the table -------------------------------------------------------------------

    def step(self, now: float, event: Input) -> list[Action]:
        if self._quiet_on_first_look:
            self._quiet_on_first_look = False
            if self.role is Role.FOLLOWING and self._withdrawn is not None:
                self._quiet_until = now + self.takeover_after_s
        handler = TABLE.get((self.role, type(event)))
        if handler is None or self.ended:
            return []  # not meaningful in this role (e.g. a Grant while FOLLOWING: late)
        return handler(self, now, event)

    def get_timer(self) -> float | None:
        # The handlers compare `now` with these very sums (never `now - since` with the
        # pause): a driver that wakes exactly at a deadline must find it come, or it
        # wakes again at once, for ever (float rounding).
        if self.ended:
            return None
        if self.role is Role.CLAIMING and self._again_at is not None \
                and self._claim_deadline is not None:
            return min(self._again_at, self._claim_deadline)
        if self.role in (Role.CLAIMING, Role.ACTING):
            return self._claim_deadline
        if self.role is Role.FOLLOWING and not self._gone and self._unseen_since is not None:
            return self._unseen_since + self.takeover_after_s
        if self.role is Role.FOLLOWING and self._gone and self._waiting is not None:
            return self._waiting[1] + self.takeover_after_s
        if self.role is Role.FOLLOWING and self._gone and self._quiet_until is not None:
            return self._quiet_until
        return None

    @property
    def withdrawn(self) -> int | None:
        """The epoch of our claim withdrawn, while we follow the coordinator we claimed
        past (None otherwise): kept durably by the shell beside the epoch held."""
        return self._withdrawn

    def joined(self, domain: str) -> None:
        """A step was placed again on `domain` (re-placement): a participant now, outside
        the electorate (which never changes), so it hears our claims and ends and sends
        its results to the epoch's holder. An acting successor tells it at once (its
        claim, with its certificate); the original, at epoch 0, claims nothing."""
        if domain in self.audience:
            return
        self.participants |= {domain}
        self.audience |= {domain}
        if self.role is Role.ACTING and self.epoch > 0 and not self.ended:
            self._claim_deadline = float("-inf")

    # ---- handlers ----------------------------------------------------------------------

    def _watch(self, now: float, ev: Watch) -> list[Action]:
        self._dead = frozenset(ev.dead)
        if ev.state == "ALIVE":
            self._unseen_since, self._gone = None, False
            return []
        if self._unseen_since is None or self._unnamed and ev.state:
            self._unseen_since = now  # first silent, or first named (see Watch)
            self._unnamed = not ev.state
        if ev.state in GONE_AT_ONCE or now >= self._unseen_since + self.takeover_after_s:
            self._gone = True
        return self._maybe_claim(now)

    def _follow_timer(self, now: float, ev: Timer) -> list[Action]:
        if self._unseen_since is not None \
                and now >= self._unseen_since + self.takeover_after_s:
            self._gone = True
        return self._maybe_claim(now)

    def _maybe_claim(self, now: float) -> list[Action]:
        # The original coordinator, no participant, claims last: once no live
        # participant is left in line (takeover_overtaken.py).
        if not self._gone or (self.me not in self.participants and self.me != self.original):
            return []
        if self._quiet_until is not None:
            if now < self._quiet_until:
                return []  # a claim withdrawn just now (takeover_claiming.py, `withdraw`)
            self._quiet_until = None
        while True:
            first = successor(self.participants,
                              self._dead | {self.coordinator} | self._passed)
            if first is None or first == self.me:
                break
            # Another live participant is due to claim. If no claim of it comes within
            # takeover_after_s (it may know the workflow ended, and claims nothing), the
            # next one in line claims: the grants keep that safe.
            if self._waiting is None or self._waiting[0] != first:
                self._waiting = (first, now)
            if now < self._waiting[1] + self.takeover_after_s:
                return []
            self._passed.add(first)
        self._waiting = None  # claiming, or nobody left to wait for
        if first is None and self.me != self.original:
            return []
        # Never below an epoch we withdrew: it may have moved on past a split, and a
        # member may hold it for us (takeover_claiming.py, "Restarted").
        return self._claim(now, max(self.epoch + 1, self._withdrawn or 0))

    def _claim(self, now: float, epoch: int) -> list[Action]:
        self.role = Role.CLAIMING
        if self.coordinator != self.me:
            self._predecessor = self.coordinator  # gone: it will not answer
        self.epoch, self.coordinator = epoch, self.me  # our own grant
        self._grants = {self.me}
        self._withdrawn = None  # claimed again: no longer withdrawn
        self._denied.clear()
        self._unproven.clear()
        self._again_at = None
        self._claim_deadline = now + self.claim_timeout_s
        out: list[Action] = [Persist(epoch, self.me)]
        out += [SendClaim(d, epoch) for d in sorted(self.electorate - {self.me})]
        return out + self._won()

    def _won(self) -> list[Action]:
        if len(self._grants & self.electorate) >= majority(self.electorate):
            self.role = Role.ACTING
            # The claim still goes, now and then, to the members that have not answered:
            # a follower of the old coordinator (or the old coordinator itself, back)
            # learns from it whom to send its results to. The participants outside the
            # electorate hear it now, from a winner only: had they granted a claim that
            # lost, they would refuse the old coordinator's end for ever.
            told = self.audience - self.electorate - self._grants - {self.me}
            # The members that granted it hear it once too, from a winner (whose claim
            # carries its certificate): they keep that proof and show it in their
            # denials, so that a coordinator cut off from us but not from them follows
            # (Denials). Granting it again changes nothing there.
            granters = (self._grants & self.electorate) - {self.me}
            return [Act(self.epoch),
                    *(SendClaim(d, self.epoch) for d in sorted(told | granters))]
        return []

    def _adopt(self, now: float, ev: Adopted, force: bool = False) -> list[Action]:
        if ev.epoch < self.epoch or ev.coordinator == self.me or (
                ev.epoch == self.epoch and ev.coordinator == self.coordinator):
            return []
        if ev.epoch == self.epoch and self.role is not Role.FOLLOWING and not force:
            return []  # two claimants of one epoch: grants decide, not hearsay
        self.role = Role.FOLLOWING
        self.epoch, self.coordinator = ev.epoch, ev.coordinator
        self._grants.clear()
        self._claim_deadline = None
        self._denied.clear()
        self._unproven.clear()
        self._again_at = None
        self._unseen_since, self._gone = None, False  # a new coordinator: watch it anew
        self._passed.clear()
        self._waiting = None
        self._quiet_until = None
        self._withdrawn = None  # a later epoch, or a rival's: ours is over
        self._member_granted = False
        return [Persist(ev.epoch, ev.coordinator)]

    def _proven(self, now: float, ev: Proven) -> list[Action]:
        """A certificate of `ev.epoch` for another: follow it if that epoch is not below
        ours. Of our own claimed epoch, our claim cannot win (see the docstring)."""
        if ev.coordinator == self.me or ev.epoch < self.epoch:
            return []
        return self._adopt(now, Adopted(ev.epoch, ev.coordinator), force=True)

    def _end_known(self, now: float, ev: EndKnown) -> list[Action]:
        if self.epoch < 1:
            return []  # the original coordinator: the end is its own, told as such
        self.ended = True
        self._claim_deadline = None
        return [Announce(self.epoch)]


_Handler = Callable[[Takeover, float, object], list[Action]]

# (role, input) -> handler. Missing: the input changes nothing in that role.
TABLE: dict[tuple[Role, type], _Handler] = {
    (Role.FOLLOWING, Watch): Takeover._watch,
    (Role.FOLLOWING, Timer): Takeover._follow_timer,
    (Role.FOLLOWING, Adopted): Takeover._adopt,
    (Role.FOLLOWING, Grant): claiming.withdrawn_grant,
    (Role.FOLLOWING, Asked): claiming.withdrawn_asked,
    (Role.ACTING, Watch): acting.note_view,
    (Role.CLAIMING, Grant): claiming.grant,
    (Role.CLAIMING, Deny): claiming.deny,
    (Role.CLAIMING, Timer): claiming.claim_timer,
    (Role.CLAIMING, Adopted): Takeover._adopt,
    (Role.CLAIMING, EndKnown): Takeover._end_known,
    (Role.ACTING, Adopted): acting.adopt,
    (Role.ACTING, Grant): acting.grant,
    (Role.ACTING, Deny): acting.deny,
    (Role.ACTING, Timer): acting.timer,
    (Role.ACTING, EndKnown): Takeover._end_known,
    (Role.FOLLOWING, Proven): Takeover._proven,
    (Role.CLAIMING, Proven): Takeover._proven,
    (Role.ACTING, Proven): acting.proven,
}

"""A deterministic discrete-event network for many :class:`~agent.membership.swim.Swim` cores.

Virtual time, one seeded random stream for the network and one per member, and a heap
of pending deliveries and timers: the same seed gives the same run, event for event.
The network can drop, duplicate, delay and partition datagrams; members can crash (they
fall silent for good) or stall (they process nothing for a while, then catch up on what
queued up, as a process that was paused would). The simulator records when each member
first holds a watched record version and every DEAD verdict anyone reaches.

Signatures are HMAC tags from :class:`HmacKeyring`: cheap enough for a thousand members,
yet unforgeable without the per-member secret, so forgery tests keep their meaning.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from heapq import heappop, heappush

from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_profiles import SwimProfile, make_profile
from fedorch.core.membership.swim_types import (
    MAX_INCARNATION,
    Claim,
    ClaimBody,
    ClaimKind,
    EventKind,
    Gossip,
    MemberState,
    Message,
    PushPull,
    Signer,
    Verifier,
    sign_claim,
)

_DELIVER, _TIMER, _RESUME, _CALL = 0, 1, 2, 3
FORGED_RECORD = b"a record in another member's name"


class _HmacSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, "sha256")[:16]


class _HmacVerifier:
    def __init__(self, keys: dict[str, bytes], memo: dict[tuple[str, bytes, bytes], bool]
                 ) -> None:
        self._keys = keys
        self._memo = memo

    def verify(self, signer: str, body: bytes, signature: bytes) -> bool:
        key = (signer, body, signature)
        known = self._memo.get(key)
        if known is None:
            secret = self._keys.get(signer)
            known = secret is not None and hmac.compare_digest(
                hmac.digest(secret, body, "sha256")[:16], signature)
            self._memo[key] = known
        return known


class HmacKeyring:
    """Per-member secrets derived from a seed; every member trusts every listed name.

    The verification memo is shared by all members of one simulation: it only caches
    the deterministic answer for a (signer, body, signature) triple.
    """

    def __init__(self, names: Iterable[str], seed: int = 0) -> None:
        self._keys = {name: self._derive(name, seed) for name in names}
        self._memo: dict[tuple[str, bytes, bytes], bool] = {}
        self._seed = seed

    @staticmethod
    def _derive(name: str, seed: int) -> bytes:
        return hashlib.sha256(f"sim-key/{seed}/{name}".encode()).digest()

    def signer_for(self, name: str) -> Signer:
        return _HmacSigner(self._keys[name])

    def verifier_for(self, name: str) -> Verifier:
        return _HmacVerifier(self._keys, self._memo)

    def outsider_signer(self, name: str) -> Signer:
        """A signer whose key nobody trusts, whatever name it claims."""
        return _HmacSigner(self._derive(name, self._seed + 1))


@dataclass(frozen=True, slots=True)
class DeadVerdict:
    observer: str
    subject: str
    at: float
    accuser: str  # who signed the DEAD claim; equals observer for original verdicts


class Simulation:
    """N members on one simulated network. Members are ``m0000``, ``m0001``, ..."""

    def __init__(self, n: int, *, seed: int = 1, profile: SwimProfile | None = None,
                 loss: float = 0.0, duplicate: float = 0.0, delay: float = 0.002,
                 jitter: float = 0.008, keyring: object | None = None,
                 names: list[str] | None = None, service: float = 0.0) -> None:
        self.profile = profile or make_profile("lan")
        self.names = names or [f"m{i:04d}" for i in range(n)]
        self.addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:7946"
                          for i in range(len(self.names))]
        self.index = {name: i for i, name in enumerate(self.names)}
        self._by_address = {addr: i for i, addr in enumerate(self.addresses)}
        self.keyring = keyring or HmacKeyring(self.names, seed)
        self.loss, self.duplicate, self.delay, self.jitter = loss, duplicate, delay, jitter
        # A starved host: each member handles its messages and timers one at a time, each
        # taking `service` seconds on average (exponentially distributed), as a process with
        # a small share of a busy CPU does; what arrives meanwhile waits its turn.
        self.service = service
        self._busy_until = [0.0] * len(self.names)
        self._service_rng = random.Random(seed * 7_919 + 1)
        self.now = 0.0
        self._net_rng = random.Random(seed)
        self.nodes = [
            Swim(name, self.addresses[i], self.profile, self.keyring.signer_for(name),
                 self.keyring.verifier_for(name), random.Random(seed * 1_000_003 + i), 0.0)
            for i, name in enumerate(self.names)]
        self._heap: list[tuple[float, int, int, int, object]] = []
        self._seq = 0
        self._timer_at: list[float | None] = [None] * len(self.nodes)
        self.crashed = [False] * len(self.nodes)
        self._stalled_until = [0.0] * len(self.nodes)
        self._backlog: list[list[tuple[str, Message]]] = [[] for _ in self.nodes]
        self._group = [0] * len(self.nodes)
        self.dead_verdicts: list[DeadVerdict] = []
        self._watched: dict[str, tuple[int, dict[str, float]]] = {}
        self.delivered = 0
        # Called as send_hook(sender_name, destination_address, message) for every send.
        self.send_hook: Callable[[str, str, Message], None] | None = None
        for i in range(len(self.nodes)):
            self._after(i)

    # ---- set-up -------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Every member learns every other's alive claim at once, off the network: the
        state a settled federation would be in, without simulating N joins."""
        claims = tuple(node.own_claim for node in self.nodes)
        count = len(self.nodes)
        # N*N member entries are created at once: the cyclic collector would rescan the
        # growing heap many times over for no garbage, so it waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for i, node in enumerate(self.nodes):
                j = (i + 1) % count
                node.handle_message(self.now, self.addresses[j],
                                    PushPull(self.names[j], True, claims))
                self._after(i)
        finally:
            if collecting:
                gc.enable()

    def join_all(self, seed_name: str = "m0000") -> None:
        """Every member joins through one seed, over the simulated network."""
        seed_address = self.addresses[self.index[seed_name]]
        for i, node in enumerate(self.nodes):
            if self.names[i] != seed_name:
                node.join(self.now, [seed_address])
                self._after(i)

    def join(self, name: str, seed_addresses: Iterable[str]) -> None:
        """``name`` joins now through the given seeds (a member started late)."""
        i = self.index[name]
        self.nodes[i].join(self.now, [a for a in seed_addresses if a != self.addresses[i]])
        self._after(i)

    # ---- faults -------------------------------------------------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: members of different groups (the unlisted form one more)
        cannot reach each other until :meth:`heal`."""
        self._group = [0] * len(self.nodes)
        for number, group in enumerate(groups, start=1):
            for name in group:
                self._group[self.index[name]] = number

    def heal(self) -> None:
        self._group = [0] * len(self.nodes)

    def crash(self, name: str) -> None:
        self.crashed[self.index[name]] = True

    def stall(self, name: str, duration: float) -> None:
        i = self.index[name]
        self._stalled_until[i] = max(self._stalled_until[i], self.now + duration)
        self._push(self._stalled_until[i], _RESUME, i, None)

    def leave(self, name: str) -> None:
        i = self.index[name]
        self.nodes[i].leave(self.now)
        self._after(i)

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``when`` (faults, publications, checks)."""
        self._push(when, _CALL, -1, action)

    def inject(self, name: str, source_address: str, msg: Message, after: float = 0.0) -> None:
        """Deliver a message from outside the simulated members (an attacker)."""
        self._push(self.now + after, _DELIVER, self.index[name], (source_address, msg))

    def lie(self, liar: str, victims: Iterable[str], every: float, until: float) -> None:
        """Make ``liar`` (a trusted member, with its own key) lie about ``victims`` every
        ``every`` seconds until ``until``: DEAD and SUSPECT claims at the top of the
        incarnation range, ALIVE claims (with a record, FORGED_RECORD) and LEFT claims in
        the victims' names, all signed with the liar's real key, gossiped and pushed to
        every other member."""
        signer = self.keyring.signer_for(liar)
        source = self.addresses[self.index[liar]]
        top = MAX_INCARNATION - 1
        claims = []
        for victim in victims:
            for kind in (ClaimKind.DEAD, ClaimKind.SUSPECT):
                claims.append(sign_claim(ClaimBody(kind, victim, top, liar), liar, signer))
            address = self.addresses[self.index[victim]]
            for body in (ClaimBody(ClaimKind.ALIVE, victim, top, liar, address,
                                   record_version=top, record=FORGED_RECORD),
                         ClaimBody(ClaimKind.LEFT, victim, top, liar)):
                raw = body.encode()  # signed by the liar in the victim's name
                claims.append(Claim(liar, raw, signer.sign(raw)))
        lies = tuple(claims)

        def tell() -> None:
            for name in self.names:
                if name != liar and not self.crashed[self.index[name]]:
                    self.inject(name, source, Gossip(liar, lies))
                    self.inject(name, source, PushPull(liar, True, lies))
            if self.now + every < until:
                self.at(self.now + every, tell)

        self.at(self.now, tell)

    # ---- records ------------------------------------------------------------------------

    def publish(self, name: str, record: bytes) -> int:
        i = self.index[name]
        version = self.nodes[i].publish_record(self.now, record)
        self._watched[name] = (version, {name: self.now})
        self._after(i)
        return version

    def holders(self, origin: str) -> dict[str, float]:
        """Member -> virtual time it first held the watched version of ``origin``'s record."""
        return dict(self._watched[origin][1])

    def dissemination_time(self, origin: str) -> float | None:
        """When the last member not crashed came to hold the watched record, or None."""
        holders = self._watched[origin][1]
        alive = [name for i, name in enumerate(self.names) if not self.crashed[i]]
        if any(name not in holders for name in alive):
            return None
        return max(holders[name] for name in alive)

    # ---- views --------------------------------------------------------------------------

    def state_of(self, observer: str, subject: str) -> MemberState | None:
        view = self.nodes[self.index[observer]].member(subject)
        return view.state if view is not None else None

    def all_see(self, state: MemberState, subjects: Iterable[str] | None = None,
                observers: Iterable[str] | None = None) -> bool:
        subjects = list(subjects if subjects is not None else self.names)
        for observer in observers if observers is not None else self.live_names():
            for subject in subjects:
                if subject != observer and self.state_of(observer, subject) is not state:
                    return False
        return True

    def live_names(self) -> list[str]:
        return [n for i, n in enumerate(self.names) if not self.crashed[i]
                and not self.nodes[i].stopped]

    # ---- running ------------------------------------------------------------------------

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def run_until(self, end: float) -> None:
        heap = self._heap
        nodes = self.nodes
        while heap and heap[0][0] <= end:
            when, _, kind, i, payload = heappop(heap)
            self.now = when
            if self.service and kind in (_DELIVER, _TIMER) and not self._take_turn(kind, i, when,
                                                                                  payload):
                continue
            if kind == _DELIVER:
                if self.crashed[i]:
                    continue
                if self._stalled_until[i] > when:
                    self._backlog[i].append(payload)  # type: ignore[arg-type]
                    continue
                source, msg = payload  # type: ignore[misc]
                self.delivered += 1
                nodes[i].handle_message(when, source, msg)
                self._after(i)
            elif kind == _TIMER:
                if (self._timer_at[i] != when or self.crashed[i]
                        or self._stalled_until[i] > when):
                    continue
                self._timer_at[i] = None
                nodes[i].handle_timer(when)
                self._after(i)
            elif kind == _RESUME:
                if self.crashed[i] or self._stalled_until[i] > when:
                    continue
                backlog, self._backlog[i] = self._backlog[i], []
                for source, msg in backlog:
                    nodes[i].handle_message(when, source, msg)
                nodes[i].handle_timer(when)
                self._timer_at[i] = None
                self._after(i)
            else:
                payload()  # type: ignore[operator]
        self.now = max(self.now, end)

    def _take_turn(self, kind: int, i: int, when: float, payload: object) -> bool:
        """Whether member `i` is free to handle this event now; if busy, the event waits
        until the member is free (a timer keeps its place as the member's next one)."""
        busy = self._busy_until[i]
        if busy > when:
            if kind == _TIMER:
                if self._timer_at[i] != when:
                    return False  # superseded
                self._timer_at[i] = busy
            self._push(busy, kind, i, payload)
            return False
        if kind == _DELIVER or self._timer_at[i] == when:
            self._busy_until[i] = when + self._service_rng.expovariate(1.0 / self.service)
        return True

    def _push(self, when: float, kind: int, i: int, payload: object) -> None:
        self._seq += 1
        heappush(self._heap, (when, self._seq, kind, i, payload))

    def _after(self, i: int) -> None:
        """Collect what member ``i`` wants to send, its events, and its next deadline."""
        node = self.nodes[i]
        for destination, msg in node.datagrams_to_send():
            self._transmit(i, destination, msg)
        events = node.events()
        if events:
            self._record(i, events)
        deadline = node.get_timer()
        if deadline is not None:
            deadline = max(deadline, self.now)
            if deadline != self._timer_at[i]:
                self._timer_at[i] = deadline
                self._push(deadline, _TIMER, i, None)

    def _transmit(self, i: int, destination: str, msg: Message) -> None:
        if self.send_hook is not None:
            self.send_hook(self.names[i], destination, msg)
        j = self._by_address.get(destination)
        if j is None or self._group[i] != self._group[j]:
            return
        rng = self._net_rng
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.loss and rng.random() < self.loss:
                continue
            when = self.now + self.delay + rng.random() * self.jitter
            self._push(when, _DELIVER, j, (self.addresses[i], msg))

    def _record(self, i: int, events: list) -> None:
        observer = self.names[i]
        for event in events:
            if event.kind is EventKind.DEAD:
                self.dead_verdicts.append(
                    DeadVerdict(observer, event.name, event.at, event.accuser))
            elif event.kind is EventKind.RECORD_UPDATED:
                watched = self._watched.get(event.name)
                if watched is not None and event.record_version >= watched[0]:
                    watched[1].setdefault(observer, event.at)

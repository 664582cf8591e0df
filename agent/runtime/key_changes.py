"""Key rotation and revocation on a running agent (records: core/identity/key_records.py).

This domain's own records come from the `.keyrecords` file beside its `key_file`
(`fedorch keys rotate | revoke` write it): read at start and on SIGHUP. A new key in
`key_file` is taken only when the records lead to it from the key this agent holds.
Every envelope this agent sends then carries its own records, and the records of
other domains it learned in the last RELAY_S (so they spread like gossip even to
members the rotating domain does not talk to); a receiver learns them before it
checks the envelope's signature, so the new key is known by the first message
signed with it.

Records that change a trusted domain's keys, wherever learned, are kept (table
key_records: they survive a restart, so a revoked key stays revoked), audited
(trust_changed) and logged. TLS follows: the trust anchors are rebuilt for the keys
live now, and this agent's own certificate is minted under its new key once half the
overlap has passed (by then peers have learned the new key; until then they know
only the old one, and the handshake comes before any envelope could tell them).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.audit.chain import KEY_ROTATED
from fedorch.core.identity.key_records import KeyChange, raw_key
from fedorch.core.identity.keys import KeyFileError, load_private_key
from fedorch.core.identity.rotation import own_chain, read_records, records_path
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import config_pb2, keys_pb2
from fedorch.runtime.store.identity import key_fingerprint
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.trust")

# How long a record learned from another domain rides on this agent's envelopes.
RELAY_S = 60.0


def _fp(raw: bytes) -> str:
    return key_fingerprint(Ed25519PublicKey.from_public_bytes(raw))


def next_key_change(trust: TrustStore, now: float) -> float:
    """The first wall time (seconds) after `now` at which a rotation's overlap ends in
    `trust` (an earlier key stops verifying live messages), or infinity."""
    ends = [until for domain in trust.domains() if (keys := trust.keys_of(domain)) is not None
            for _, until in keys.earlier if until > now]
    return min(ends, default=float("inf"))


def earlier_key_fingerprints(config: config_pb2.AgentConfig,
                             key: Ed25519PrivateKey) -> list[str]:
    """Fingerprints of the keys this domain's records say `key` succeeded."""
    try:
        changes = read_records(records_path(config.key_file))
    except KeyFileError:
        return []
    _root, used = own_chain(config.domain, raw_key(key.public_key()), changes)
    return [_fp(c.old) for c in used if c.kind == "rotation"]


class KeyChanges:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._relay: dict[bytes, tuple[keys_pb2.KeyRecord, float]] = {}
        self._unsaved: list[KeyChange] = []
        self.sleep = Sleep("key records", agent.metrics.loop_wakeups, agent.now)
        # This agent's TLS certificate stays under the old key until then (wall s).
        self._tls_old: tuple[Ed25519PrivateKey, float] | None = None
        self._anchors: tuple = ()
        self._tls_key_raw = b""

    # ---- start ---------------------------------------------------------------------

    def own_records_at_start(self) -> None:
        """Trust this domain's own chain (its key_file's key, reached from the oldest key
        the .keyrecords file leads from), before anything is verified."""
        a = self.agent
        changes = self._read_own(a.config.key_file)
        root, mine = own_chain(a.domain, raw_key(a.signer.public_key()), changes)
        try:
            a.trust.add(a.domain, Ed25519PublicKey.from_public_bytes(root))
        except ValueError:
            # The trust list names this domain with a later key of its chain (not the
            # oldest the records lead from): that one is the root, records go on from it.
            a.trust.add(a.domain, a.signer.public_key())
        a.trust.learn([c.record for c in mine])
        self._refresh_attached()

    async def load(self) -> None:
        """The records learned before a restart (a revoked key stays revoked); then
        learn from everywhere, keeping what changes."""
        a = self.agent
        kept = await a.store.key_records()
        a.trust.learn(kept)
        a.trust.on_learned = self._learned
        self._refresh_attached()
        self._anchors = self._anchor_keys()
        self._tls_key_raw = raw_key(self.tls_key().public_key())

    def _read_own(self, key_file: str) -> list[KeyChange]:
        try:
            return read_records(records_path(key_file))
        except KeyFileError as e:
            log.error("ignoring this domain's key records: %s", e)
            return []

    # ---- learning --------------------------------------------------------------------

    def _learned(self, changes: list[KeyChange], refused: int) -> None:
        a = self.agent
        if refused:
            a.metrics.rejected_messages.labels("bad_key_record").inc(refused)
            log.warning("refused %d key record(s): malformed or badly signed", refused)
        if not changes:
            return
        until = a.now() + RELAY_S
        for c in changes:
            if c.kind == "rotation":
                log.warning("domain %s rotated its key %s -> %s (serial %d)", c.domain,
                            _fp(c.old), _fp(c.new), c.serial)
            else:
                log.warning("domain %s revoked its key %s (serial %d)", c.domain,
                            _fp(c.old), c.serial)
            if c.domain != a.domain:
                self._relay[c.ident] = (c.record, until)
        self._unsaved += changes
        self._refresh_attached()
        self._tls_follow()
        self.sleep.wake()

    def _refresh_attached(self) -> None:
        a = self.agent
        now = a.now()
        self._relay = {k: v for k, v in self._relay.items() if v[1] > now}
        a.signer.key_records = a.trust.records(a.domain) + [r for r, _ in self._relay.values()]

    # ---- this domain's own key (SIGHUP) -------------------------------------------------

    async def reload_own(self, config: config_pb2.AgentConfig) -> bool:
        """Take a rotated key or new revocations from the key dir. True when this agent
        signs with a new key from now on."""
        a = self.agent
        try:
            new_key = load_private_key(config.key_file)
        except KeyFileError as e:
            log.error("key reload refused, keeping the current key: %s", e)
            return False
        new_raw = raw_key(new_key.public_key())
        old_key = a.signer.private_key()
        changes = self._read_own(config.key_file)
        _root, mine = own_chain(a.domain, new_raw, changes)
        a.trust.learn([c.record for c in mine])
        if new_raw == raw_key(old_key.public_key()):
            self._refresh_attached()
            return False
        if a.trust.keys_of(a.domain) is None or a.trust.keys_of(a.domain).current != new_raw:
            log.error("key reload refused: %s holds a key that the records in %s do not"
                      " lead to from this agent's key; keeping the current key",
                      config.key_file, records_path(config.key_file))
            return False
        # The data dir names the key it was written with: the new one from now on.
        await a.store.rekey(a.config.data_dir, key_fingerprint(new_key.public_key()))
        into = [c for c in mine if c.kind == "rotation" and c.new == new_raw]
        issued = into[-1].issued_at_ms / 1000 if into else a.now_ms() / 1000
        self._tls_old = (old_key, issued + a.trust.overlap_s / 2)
        # Before the first checkpoint under the new key: `audit verify` follows the log's
        # key through these (each signed by its old and its new key), in chain order.
        steps = [c for c in mine if c.kind == "rotation"]
        held = raw_key(old_key.public_key())
        start = next((i for i, c in enumerate(steps) if c.old == held), len(steps))
        for step in steps[start:]:
            await a.audit.append(KEY_ROTATED, "", domain=a.domain,
                                 record=base64.b64encode(step.record.SerializeToString())
                                 .decode(),
                                 public_key=base64.b64encode(step.new).decode())
        a.signer.rekey(new_key)
        a.config.key_file = config.key_file
        self._refresh_attached()
        log.warning("this domain signs with its new key %s from now on", _fp(new_raw))
        a.publish_record_if_changed(force=True)  # the record names the key: re-signed
        self._tls_follow()
        self.sleep.wake()  # a new deadline: the certificate's move to the new key
        return True

    # ---- TLS ---------------------------------------------------------------------------

    def tls_key(self) -> Ed25519PrivateKey:
        """The key this agent's TLS certificate is certified by, now."""
        if self._tls_old is not None and self.agent.now_ms() / 1000 < self._tls_old[1]:
            return self._tls_old[0]
        return self.agent.signer.private_key()

    def _anchor_keys(self) -> tuple:
        trust = self.agent.trust
        return tuple((d, raw_key(k)) for d in trust.domains() for k in trust.live_keys(d))

    def _tls_follow(self) -> None:
        """Tell the TLS hooks when the anchors or this agent's certificate key changed."""
        anchors = self._anchor_keys()
        tls_raw = raw_key(self.tls_key().public_key())
        if anchors == self._anchors and tls_raw == self._tls_key_raw:
            return
        self._anchors, self._tls_key_raw = anchors, tls_raw
        for hook in self.agent.on_trust_change:
            hook()

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep what was learned, audit it; end overlaps as time passes. Asleep until a
        record comes (`_learned` wakes it) or the next moment something ends: a rotation's
        overlap, a relayed record's ride, the old key's hold on the TLS certificate."""
        a = self.agent
        while not a.stopping:
            a.trust.advance(a.now_ms() / 1000)
            self._refresh_attached()
            self._tls_follow()
            if self._unsaved:
                batch, self._unsaved = self._unsaved, []
                await self._keep(batch)
            await self.sleep.until(self.next_deadline())

    def next_deadline(self) -> float | None:
        """The earliest moment (monotonic) the loop has something to do, or None."""
        a = self.agent
        deadlines = [until for _, until in self._relay.values()]
        now_wall = a.now_ms() / 1000
        wall = next_key_change(a.trust, now_wall)
        if self._tls_old is not None and self._tls_old[1] > now_wall:
            wall = min(wall, self._tls_old[1])
        if wall != float("inf"):
            # Wall deadlines (overlaps end at a calendar time) are slept towards on the
            # monotonic clock: a wall step meanwhile is caught up at the next wake.
            deadlines.append(a.now() + max(0.0, wall - now_wall))
        return min(deadlines) if deadlines else None

    async def _keep(self, changes: Iterable[KeyChange]) -> None:
        a = self.agent
        statements = []
        for c in changes:
            statements.append(a.store.key_record_statement(c.domain, c.record, a.now_ms()))
            statements.append(a.audit.trust_changed(
                "rotate" if c.kind == "rotation" else "revoke", c.domain,
                base64.b64encode(c.new if c.kind == "rotation" else c.old).decode()))
        await a.store.apply(statements)

"""A Node's retention policy: how long it keeps its ended workflows.

The daemon's `retention` config, as the Node's retention (retention.py, whose header
tells the rule and the clock) and the round life (retention_rounds.py) read it, with
the horizons derived from it. It is its own module because it is a plain value the
daemon, the simulator and the Node's tables build and pass around, apart from the
machinery that forgets; retention.py imports it, and it stays importable from there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retention:
    """How long a Node keeps its ended workflows (the daemon's `retention` config)."""

    keep_ended_s: float = 604_800.0
    max_ended_workflows: int = 100_000
    # Nothing goes sooner after its last mark: a message sent before then may still
    # arrive (the daemon refuses one older than two replay windows, 2 x 60 s).
    late_message_s: float = 120.0
    # Deadlines are rounded up to a multiple of this: what comes due within one goes in
    # one tick and one write group, not one turn per workflow (later, never sooner).
    tick_s: float = 1.0
    # A forgotten workflow's end is kept this long as a compact record, the newest
    # `max_end_records` at most, for a peer cut off past `late_message_s` (ended_records.py).
    keep_end_records_s: float = 86_400.0
    max_end_records: int = 100_000

    @property
    def skew_s(self) -> float:
        """The clock skew allowed between agents: one replay window (`late_message_s`
        is two), beyond which the daemon refuses a peer's envelopes."""
        return self.late_message_s / 2

    @property
    def round_life_s(self) -> float:
        """How long a Paxos round lives (acceptor.py): every acceptor refuses a ballot
        of a round older than this. `keep_ended_s` plus one replay window of clock
        skew (`late_message_s` is two): a participant in doubt that long is in doubt
        longer than any ended workflow is kept."""
        return self.keep_ended_s + self.skew_s

    @property
    def round_kept_s(self) -> float:
        """A round's acceptor record and learned decision go once it is this old:
        its life, and then as long as a message sent before may still arrive."""
        return self.round_life_s + self.late_message_s

"""Membership's Prometheus counters, read from its cores at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from fedorch.core.membership.loss_grace import LossGrace
from fedorch.core.membership.swim import Swim
from prometheus_client.core import CounterMetricFamily


class SwimCollector:
    """Exposes the core's counters at scrape time (no copying on the hot path)."""

    NAMES = {
        "probes_sent": "Direct probes sent",
        "indirect_probes": "Indirect probes requested",
        "suspicions_raised": "Suspicions this agent raised",
        "refutations": "Suspicions about this agent it refuted",
        "deaths_declared": "Members this agent declared DEAD",
        "bytes_sent": "SWIM bytes sent (message estimate, before envelopes)",
        "messages_sent": "SWIM datagrams sent",
        "push_pulls": "Push-pull exchanges",
        "invalid_messages": "SWIM messages refused",
        "untrusted_claims": "Claims from untrusted keys refused",
    }

    def __init__(self, swim: Swim) -> None:
        self._swim = swim

    def collect(self) -> Iterable[CounterMetricFamily]:
        stats = self._swim.stats
        for key, doc in self.NAMES.items():
            yield CounterMetricFamily(f"fedorch_swim_{key}", doc, value=stats.get(key, 0))
        # Not a core counter: kept with the agent's own claim (core/node/start_asks.py).
        yield CounterMetricFamily(
            "fedorch_swim_doubts_heard", "SUSPECT or DEAD claims about this agent heard"
            " (refuted or moved past): its step starts ask their coordinator first",
            value=self._swim.doubts_heard)


class LossGraceCollector:
    """The loss grace's counters at scrape time: verdicts held, heard from, withdrawn
    (refuted within the grace), acted on, checked directly."""

    OUTCOMES = {"held": "held", "heard": "heard_from", "withdrawn": "withdrawn",
                "acted": "acted", "checks": "checked"}

    def __init__(self, grace: LossGrace) -> None:
        self._grace = grace

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "fedorch_loss_verdicts", "DEAD verdicts (and LEFT claims) by what the loss"
            " grace did with them", labels=["outcome"])
        for key, outcome in self.OUTCOMES.items():
            family.add_metric([outcome], self._grace.stats[key])
        yield family

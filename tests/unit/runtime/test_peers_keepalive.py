"""The peers' keepalive pings and what an agent's server accepts of them
(runtime/peers.py PING_POLICY, runtime/daemon.py SERVER_OPTIONS). With gRPC's server
default (one ping per 5 minutes without data, two strikes), a peer channel pinging every
30 s over an idle NodeTurns stream got a GOAWAY `too_many_pings` after about 90 s (a
200 s run on 127.0.0.1; with the policy: none). gRPC does not take keepalive times much
below 10 s, so the rule is checked on the options themselves, not by waiting it out."""

from __future__ import annotations

from fedorch.runtime import peers
from fedorch.runtime.daemon import SERVER_OPTIONS


def test_the_server_takes_pings_at_the_rate_the_peers_send_them():
    server = dict(SERVER_OPTIONS)
    client = dict(peers.CHANNEL_OPTIONS)
    # No strike for a ping at the peers' rate: the interval the server takes is at most it.
    assert server["grpc.http2.min_ping_interval_without_data_ms"] <= \
        client["grpc.keepalive_time_ms"]
    assert server["grpc.http2.max_ping_strikes"] >= 1

#!/bin/sh
# Submits the workflows of scenario residency-replacement; run by the `submitter`
# service once every agent is healthy. Exits 1 when any workflow did not
# succeed (fedorch submit --wait exits 1 then).
set -u
pids=''
(sleep 0; fedorch submit /etc/fedorch/workflows/sales.yaml --peer eu-west:7100 --wait --identity /etc/fedorch/keys/submitter.key --agent-key /etc/fedorch/keys/eu-west.pub) & pids="$pids $!"
status=0
for pid in $pids; do wait "$pid" || status=1; done
exit "$status"

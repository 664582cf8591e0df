"""A participant's check of the signed submission a PREPARE carries (node.py
`Node.check_submission`, the default admit hook): signed for the round's coordinator,
and not admitted here under another workflow id (the submission guard)."""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.identity.submission import SubmissionError
from fedorch.core.identity.submission_guard import Admission
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node.records import WfInfo
from fedorch.core.workflow.epoch_certificate import epoch_of_round


def check_submission(node: Any, now: float, tx: TxInfo, info: WfInfo) -> Admission | None:
    """RemoteProtocolError unless the PREPARE's submission was signed for its
    coordinator and was not admitted here under another workflow id; the admission
    to record with a YES (None when the PREPARE carries none)."""
    signed = info.submission
    if signed is None:
        return None
    try:
        # A successor's round (a later epoch's range, its certificate checked by the
        # authority table) relays the submission its original coordinator took.
        voucher = tx.coordinator if epoch_of_round(tx.round) == 0 \
            else coordinator_of(tx.workflow_id)
        if signed.coordinator != voucher:
            raise SubmissionError(f"signed for coordinator {signed.coordinator}, not"
                                  f" {voucher}")
        return node.submissions.check(signed, tx.workflow_id, node.wall_ms(now))
    except SubmissionError as e:
        node.stats["refused replayed submission"] += 1
        raise RemoteProtocolError(f"submission: {e}") from None

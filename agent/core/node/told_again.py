"""End notices owed a domain that is back: told again at once, their backoff restarted.

Theory of operation
-------------------
An end notice (`FinalMsg`: an end, a saga's plan or its end) is a reliable send
(`Node.reliable`): kept in `pending` until its receiver acknowledges it, resent with a
backoff that doubles from `reliable_resend_s` to at most 8 s (Node.tick,
`Pending.resend_due`). A notice told to a domain that is down (a loss verdict's end,
told to every elector while the lost domain is gone) has its backoff at that most by
the time the domain is back; the domain then learned the end, and the Node that waits
for its acknowledgement made the end, only at the next resends, each 8 s apart, and
each one the network lost on the way there or back cost 8 s more (takeover soak seed
108589: the successor's loss verdict told to the lost domain while it was down, its
end made 24 s after the domain came back, the acknowledgement lost twice and a notice
once, each waiting for the 8 s resend).

When the Node's view of a domain turns ALIVE from SUSPECT, DEAD or LEFT
(`domains_back`, from member_views.take_views), each end notice kept for that domain is
sent again at once and its backoff starts again from `reliable_resend_s`, as a fresh
notice's does. The view is the Node's only word that a domain is back before it
speaks (a restarted domain asks its placements of the coordinator, which answers them
without the end, restart_check.py).

Why it is safe. Nothing changes but when a kept notice goes: the same message, to the
same domain, under the same id, kept until acknowledged as before; a receiver takes a
notice told again as it takes a resend (idempotent: running_ends.py, elector_ends.py).
A view that flaps sends at most one notice per change more.

Pure: reads the Node's view and `pending`, writes `pending` and the outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import FinalMsg

# The states a domain comes back from to ALIVE (a state "" or never seen: a view told
# anew after a restore, nothing owed went to it while it was away).
AWAY = ("SUSPECT", "DEAD", "LEFT")


def domains_back(n: Any, now: float, before: dict[str, str | None]) -> None:
    """The view changed (`before`: each changed domain's state before): the end notices
    kept for a domain now ALIVE again are sent at once, backoff restarted (the header)."""
    back = {d for d, was in before.items() if was in AWAY and n.members.get(d) == "ALIVE"}
    if not back:
        return
    for msg_id, (to, msg, _, _) in list(n.pending.items()):
        if to in back and type(msg) is FinalMsg:
            n.stats["end notice told again: its domain back"] += 1
            n.pending.restart(msg_id, now, n.t.reliable_resend_s)
            n.send(to, msg)

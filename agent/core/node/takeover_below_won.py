"""A claimant shown a told end below an epoch it knows won shows its teller that epoch.

Theory of operation
-------------------
A claimant takes no end a member answers at an epoch k below an epoch m it follows or
granted for another domain whose certificate it holds, nor below one it won itself
before it followed another's later one (takeover_claims.py, "A found end below a won
epoch"; `below_won` says which): m won on the grants of a majority of the
electorate, which refuses an end of epoch k once it holds m, so no end of epoch k was
made or ever will be (told_ends.py). The answer counts as a denial.

That member may be the end's teller: the coordinator of epoch k (the original in
epoch 0), driving still, that holds the end it told and has not made (domain_loss.py,
`held`) and answers every claim with it once a member may keep it (`kept_elsewhere`:
one told that went gone without a word). It never makes that end (the electors
holding m refuse it), and it drops it only when it follows a later epoch, which it
does on that epoch's certificate alone. With m's holder dead for good and the
electors holding a later claim of m' > m, not won, nobody showed it one: the claimant
of m' needed its grant and was answered with the end, for ever (takeover regression
seed 30000591, on a schedule where a held start asks its new holder sooner: d1, the
original restored, held FAILED of epoch 0, its notice to d2 pending when its view
first said d2 DEAD; d2 had won epoch 1 and died for good; d3 claimed epoch 2,
granted by d6, denied by d1 at every claim; d1.w1 stayed RUNNING).

The rule (`show_won`): the claimant answers such a denial with a denial of the
teller's epoch k naming m, its holder and its certificate (`ClaimAnswerMsg` of epoch
k), as an elector holding m answers an end notice of epoch k (elector_ends.py). The
teller follows the proven holder (takeover_claims.py: to the original a certificate
relayed with epoch 0 is followed; a successor acting in k takes it as a proven denial
of its own epoch), its told end is void (domain_loss.py: its holder follows a later
epoch), and the next claim is granted. Sent once per such denial: the claim is
resent on its own schedule, and so is the certificate with it.

Why it is safe. Nothing new is decided: the certificate is m's holder's, verified
here when it was kept (`Takeovers.proofs`) or our own (`certificates`), and checked
again where it goes; the teller does with it what it does with the same certificate
relayed by an elector, and its end voids by domain_loss.py's rule, whose argument
(no end of an epoch below a won one was made or will be) is the one above.

Pure: reads the Node's tables, writes its outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import ClaimAnswerMsg


def below_won(n: Any, wf: str, epoch: int) -> tuple[int, str, tuple[Any, ...]] | None:
    """The epoch above `epoch` that Node `n` knows won, with its holder and
    certificate: one followed or granted here for another domain whose certificate
    is verified here, or one `n` won itself (its certificate on record) before it
    followed another's later one; None if there is none."""
    d = n.state
    won, own = d.certificates.get(wf, (0, ()))
    for held, holder in (d.epochs.get(wf, (0, "")), d.granted.get(wf, (0, ""))):
        if holder in ("", n.name):
            continue
        certificate = n.takeover.proof.proof_of(wf, held, holder)
        if held > epoch and certificate:
            return held, holder, certificate
        if held > won > epoch:
            return won, n.name, own
    return None


def show_won(n: Any, src: str, wf: str, epoch: int) -> bool:
    """`src` answered our claim with an end of `epoch`: if an epoch above it won, as
    far as `n` knows, shown to `src` with its certificate (see the header). True if
    there is one (the end is then not taken)."""
    won = below_won(n, wf, epoch)
    if won is None:
        return False
    if won[2]:
        n.stats["takeover end below a won epoch: its teller shown that epoch"] += 1
        n.send(src, ClaimAnswerMsg(wf, epoch, False, won[0], won[1], won=won[2]))
    return True

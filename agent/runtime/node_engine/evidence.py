"""The node engine's takeover evidence: grants signed with the domain key, checked by trust.

Theory of operation
-------------------
Coordinator takeover in the Node (agent/core/node/takeover.py) needs two ports from its
driver: a signer for the grants this agent gives, and the checks of what others show
(`TakeoverEvidence`). The statements, their encoding and the certificate rules are the
core's (agent/core/node/takeover_grants.py); what is the daemon's here is the key:

- `grant_signer(signer)`: this domain's Ed25519 key (the one its envelopes are sealed
  with) signs `GRANT_CONTEXT + statement`; the context prefix keeps a grant from ever
  being read as an envelope body or a SWIM claim, or the reverse.
- `NodeEvidence(trust)`: a grant's signature is checked with the daemon's live trust
  store, over the bytes as received, as its named granter's: an untrusted or revoked
  domain's grant counts for nothing, and a trusted domain that lies signs its own
  grants only (it cannot make another domain's; a certificate of its own making is
  refused unless a majority of the electorate the checker holds really granted). A
  grant is evidence relayed after it was made (a winner shows it for as long as it
  acts): one made under a key its domain has since rotated away from still counts, as
  stored evidence does (`TrustStore.verify(..., evidence=True)`), unless revoked.

Signed rounds: the Node's coordinator signs each round of its own once, with this
domain's key (the `grant_signer` port, after the round context), and the signature
rides in the PREPARE's transaction; an acceptor checks it with the trust store
(`round_signed`) before its first record of a round a participant states to it
(takeover_proofs.check_stated).

Round proofs (an acceptor that holds no step is shown the committed round by a
claimant): the round as the original coordinator signed it with its domain key as its
PREPARE left (`StatedRound`, takeover_proofs.stated_prepare), checked here with the
trust store against the round the proof names. Its COMMIT is the claimant's word: the
node engine's votes are not signed (the Node's `vote_raw` stand-in), so no COMMIT
certificate can be shown; a participant of a round that aborted could show that
round as committed, and an extra acceptor that missed every record of the workflow
would grant in it. Its certificate would then name that round's electorate, which
every member that knows the committed one refuses (check's known electorate).
"""

from __future__ import annotations

from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node.takeover_grants import GrantSigner, SignedEvidence

__all__ = ["NodeEvidence", "grant_signer"]


def grant_signer(signer: Signer) -> GrantSigner:
    """This domain's takeover grants, signed with its key (see the header)."""
    return signer.sign


class NodeEvidence(SignedEvidence):
    """The Node's takeover checks over the daemon's trust store (see the header)."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust
        super().__init__(self._verify, commit_known=None)

    def _verify(self, granter: str, data: bytes, signature: bytes) -> bool:
        return self.trust.verify(granter, data, signature, evidence=True)

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

Signed votes (core/node/votes.py): the Node signs its YES votes once per driver turn,
over the Merkle root of that turn's votes, through `vote_signer(signer, trust)`: this
domain's Ed25519 key after VOTE_CONTEXT (the trust store is told the signature is its
own, so the root verifies without a verification when our vote comes back inside an
Accept or a decision). `NodeEvidence.verify_vote` checks a root's signature with the
trust store as its named voter's, over the bytes as received; evidence, like a grant,
so a vote signed under a key since rotated away from still counts and a revoked or
untrusted domain's counts for nothing. The trust store remembers what it verified
(keyed by domain, signature and bytes, dropped when that domain's keys change), so a
root shared by the many votes of one turn is verified once per agent.

Round proofs (an acceptor that holds no step is shown the committed round by a
claimant): the round as the original coordinator signed it with its domain key as its
PREPARE left (`StatedRound`, takeover_proofs.stated_prepare), checked here with the
trust store against the round the proof names, and its COMMIT's certificate
(`ClaimMsg.commit`): a signed YES of that round from every participant the proof
names, each verified as its voter's (takeover_grants.check_commit). A participant of
a round that aborted cannot show it committed: it holds no YES of the others.
"""

from __future__ import annotations

from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node.takeover_grants import GrantSigner, SignedEvidence

__all__ = ["NodeEvidence", "grant_signer", "vote_signer"]


def grant_signer(signer: Signer) -> GrantSigner:
    """This domain's takeover grants, signed with its key (see the header)."""
    return signer.sign


def vote_signer(signer: Signer, trust: TrustStore) -> GrantSigner:
    """This domain's vote roots, signed with its key; the trust store remembers each
    signature as its own (see the header)."""
    domain = signer.domain

    def sign(data: bytes) -> bytes:
        signature = signer.sign(data)
        trust.signed_here(domain, data, signature)
        return signature

    return sign


class NodeEvidence(SignedEvidence):
    """The Node's takeover checks over the daemon's trust store (see the header)."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust
        super().__init__(self._verify, commit_known=None)

    def _verify(self, granter: str, data: bytes, signature: bytes) -> bool:
        return self.trust.verify(granter, data, signature, evidence=True)

    def verify_vote(self, voter: str, data: bytes, signature: bytes) -> bool:
        """A vote root's signature is `voter`'s (the Node's vote port, see the header)."""
        return self.trust.verify(voter, data, signature, evidence=True)

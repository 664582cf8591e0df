"""TLS certificates bound to domain (and client) identities, with no shared CA.

gRPC's TLS stack cannot sign handshakes with Ed25519 keys, so each agent holds an ECDSA
P-256 TLS key whose certificate is *signed by its domain's Ed25519 key*: whoever holds
the domain key can make (and renew) it, and anyone holding the domain's `.pub` can check
it. The verifier's trust anchors are built from the trust store alone: for each trusted
domain, a CA certificate named `fedorch domain NAME` carrying that domain's public key.
An anchor is, by X.509 path validation (RFC 5280 §6), just a name and a key: its own
signature is never checked, so we sign it with a throwaway key. The handshake thus
accepts exactly the certificates a trusted domain key certified; `peer_domain` then says
*which* domain, by checking the certificate against that domain's key itself.

Clients work the same way: a client's certificate is signed by its Ed25519 identity key
and anchored by `fedorch client NAME` anchors built from `clients.key_files`.

Sans-I/O: the time comes in as `now` (seconds since the epoch).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID
from fedorch.core.identity.trust import TrustStore

DOMAIN_KIND = "domain"
CLIENT_KIND = "client"
# Every agent certificate names this too, so that a caller that knows only an address
# (a seed) can still check the host name; *which* domain answered is proven by the
# signed envelope of its reply, and the server side binds the domain (peer_domain).
AGENT_DNS_NAME = "fedorch-agent"
LEAF_VALIDITY_S = 30 * 24 * 3600
CLOCK_SKEW_S = 3600  # a leaf is valid from an hour back: peers' clocks differ
_ANCHOR_FROM = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_ANCHOR_UNTIL = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)


def _name(kind: str, subject: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fedorch {kind} {subject}")])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def anchor_pem(kind: str, subject: str, key: Ed25519PublicKey) -> bytes:
    """The trust anchor for `subject`'s key (see the module doc for why a throwaway key
    signs it)."""
    return _pem(
        x509.CertificateBuilder()
        .subject_name(_name(kind, subject))
        .issuer_name(_name(kind, subject))
        .public_key(key)
        .serial_number(1)
        .not_valid_before(_ANCHOR_FROM)
        .not_valid_after(_ANCHOR_UNTIL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # Two anchors share a name while a rotated domain's old key is in its overlap:
        # key identifiers let path building pick the one whose key signed the leaf.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(Ed25519PrivateKey.generate(), None))


def trust_bundle(domains: Iterable[tuple[str, Ed25519PublicKey]],
                 clients: Iterable[tuple[str, Ed25519PublicKey]] = ()) -> bytes:
    """Concatenated anchors: each (domain, key), then each (client, key)."""
    parts = [anchor_pem(DOMAIN_KIND, name, key) for name, key in domains]
    parts += [anchor_pem(CLIENT_KIND, name, key) for name, key in clients]
    return b"".join(parts)


@dataclass(frozen=True)
class TlsLeaf:
    """A TLS key and certificate (PEM), certified by a domain or client key."""

    key_pem: bytes
    cert_pem: bytes
    not_after: float


def mint_leaf(kind: str, subject: str, identity_key: Ed25519PrivateKey, now: float,
              validity_s: float = LEAF_VALIDITY_S) -> TlsLeaf:
    """A fresh ECDSA P-256 TLS key and its certificate, signed by `identity_key`."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.fromtimestamp(now - CLOCK_SKEW_S, datetime.UTC)
    end = datetime.datetime.fromtimestamp(now + validity_s, datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(_name(kind, subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            identity_key.public_key()), critical=False)
    )
    if kind == DOMAIN_KIND:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject), x509.DNSName(AGENT_DNS_NAME)]),
            critical=False)
    cert = builder.sign(identity_key, None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return TlsLeaf(key_pem, _pem(cert), now + validity_s)


def peer_domain(cert_pem: bytes, trust: TrustStore) -> str | None:
    """The domain whose trusted key certified this TLS certificate, or None.

    The handshake already checked the chain; this names the domain and checks again
    with that domain's own key, so a certificate one trusted domain made in another's
    name never passes as the other."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(issuer) != 1 or len(subject) != 1:
            return None
        prefix = f"fedorch {DOMAIN_KIND} "
        issuer_cn = str(issuer[0].value)
        domain = issuer_cn.removeprefix(prefix)
        if not issuer_cn.startswith(prefix) or subject[0].value != domain \
                or domain not in trust:
            return None
        return domain if trust.verify(domain, cert.tbs_certificate_bytes, cert.signature) \
            else None
    except Exception:  # junk certificate, wrong key type, bad signature: not a domain
        return None

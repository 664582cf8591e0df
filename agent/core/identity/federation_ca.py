"""A federation CA: the alternative to TLS certificates certified by domain keys (tls.py).

With `tls: {federation_ca: FILE, cert_file: ..., key_file: ...}` an agent presents a
certificate its federation's CA issued, and accepts a peer's certificate when it chains
to that CA *and* names the domain the peer speaks for. The name is a SAN URI,
``fedorch://domain/NAME`` (exactly one): not the CN, which path validation ignores and
CAs fill freely, and not a DNS name, which a CA also issues to web servers of the same
organisation (a certificate for the host ``eu-west`` must not pass as the domain).

The CA vouches for the TLS identity only. Every peer message is still signed by the
domain's Ed25519 key from the trust store, and checked with it: whoever controls the CA
can open a TLS connection in a domain's name, but cannot sign a vote, a result or a
record in it, and every proof stays checkable with the domains' public keys alone,
without the CA. The trust store also still says *which* domains are trusted: a CA
certificate for a domain not in it is refused.

Sans-I/O: PEM bytes and the time (`now`, seconds since the epoch) in, PEM bytes out.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fedorch.core.identity.keys import check_domain
from fedorch.core.identity.tls import AGENT_DNS_NAME, CLOCK_SKEW_S
from fedorch.core.identity.trust import TrustStore

__all__ = ["CaError", "IssuedCert", "ca_peer_domain", "check_issued", "domain_uri",
           "issue_domain_cert", "load_ca", "make_ca"]

URI_PREFIX = "fedorch://domain/"
CA_VALIDITY_S = 10 * 365 * 24 * 3600
DOMAIN_CERT_VALIDITY_S = 90 * 24 * 3600


class CaError(ValueError):
    """A CA or certificate file that does not hold; the message says what."""


@dataclass(frozen=True)
class IssuedCert:
    key_pem: bytes
    cert_pem: bytes
    not_after: float


def domain_uri(domain: str) -> str:
    return URI_PREFIX + domain


def _time(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(name: str, now: float, validity_s: float = CA_VALIDITY_S) -> IssuedCert:
    """A new CA: an ECDSA P-256 key and its self-signed certificate, which may sign
    end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_time(now - CLOCK_SKEW_S)).not_valid_after(_time(now + validity_s))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return IssuedCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM),
                      now + validity_s)


def load_ca(key_pem: bytes | None, cert_pem: bytes) -> tuple[object, x509.Certificate]:
    """The CA's private key (None when only its certificate is given) and certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise CaError("not a PEM certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError("not a CA certificate (no basicConstraints CA:true)")
    if key_pem is None:
        return None, cert
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CaError("not an unencrypted PEM private key") from None
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CaError("the CA key does not match the CA certificate")
    return key, cert


def issue_domain_cert(ca_key_pem: bytes, ca_cert_pem: bytes, domain: str, now: float,
                      validity_s: float = DOMAIN_CERT_VALIDITY_S) -> IssuedCert:
    """A TLS key and certificate for `domain`'s agent, issued by the CA: SAN URI
    fedorch://domain/NAME, and the DNS name every agent certificate carries."""
    check_domain(domain)
    ca_key, ca_cert = load_ca(ca_key_pem, ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    end = min(now + validity_s, ca_cert.not_valid_after_utc.timestamp())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_time(now - CLOCK_SKEW_S)).not_valid_after(_time(end))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.UniformResourceIdentifier(domain_uri(domain)), x509.DNSName(AGENT_DNS_NAME)]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    return IssuedCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM), end)


def _named_domain(cert: x509.Certificate) -> str | None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    named = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
             if u.startswith(URI_PREFIX)]
    if len(named) != 1:  # none, or a certificate for two domains: neither
        return None
    return named[0].removeprefix(URI_PREFIX)


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, Exception):  # wrong issuer name, bad signature, key type
        return False
    return True


def ca_peer_domain(cert_pem: bytes, ca_cert: x509.Certificate, trust: TrustStore) -> str | None:
    """The trusted domain this certificate speaks for, when the CA issued it; else None.

    The handshake already checked the chain (to the CA, or to a client anchor: both are
    server roots); this checks the CA's signature itself, so a client certificate or one
    from another CA never passes as a domain."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    if not _issued_by(cert, ca_cert):
        return None
    domain = _named_domain(cert)
    return domain if domain is not None and domain in trust else None


def check_issued(cert_pem: bytes, key_pem: bytes, ca_cert: x509.Certificate, domain: str,
                 now: float) -> float:
    """At start: this agent's certificate is the CA's, for `domain`, valid now, and its
    key matches. Returns its expiry; CaError says what is wrong."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CaError("not a PEM certificate and unencrypted PEM key") from None
    if not _issued_by(cert, ca_cert):
        raise CaError("the certificate was not issued by the federation CA")
    named = _named_domain(cert)
    if named != domain:
        raise CaError(f"the certificate names domain {named!r} (SAN URI {URI_PREFIX}NAME),"
                      f" not {domain!r}")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise CaError("the key does not match the certificate")
    start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    if not start <= now <= end:
        raise CaError(f"the certificate is not valid now (valid {_time(start):%Y-%m-%d} to"
                      f" {_time(end):%Y-%m-%d})")
    return end

"""A federation CA (agent/core/identity/federation_ca.py): certificates it issues name
their domain by SAN URI, and only the CA's, for a trusted domain, name a domain."""

from __future__ import annotations

import datetime
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from fedorch.core.identity.federation_ca import (
    CaError,
    ca_peer_domain,
    check_issued,
    issue_domain_cert,
    load_ca,
    make_ca,
)
from fedorch.core.identity.tls import CLIENT_KIND, mint_leaf
from fedorch.core.identity.trust import TrustStore

NOW = time.time()
CA = make_ca("test CA", NOW)
CA_CERT = load_ca(None, CA.cert_pem)[1]
TRUST = TrustStore({d: Ed25519PrivateKey.generate().public_key() for d in ("eu-west", "us-east")})


def _issued(domain: str = "eu-west", ca=CA):
    return issue_domain_cert(ca.key_pem, ca.cert_pem, domain, NOW)


def _custom(sans: list[x509.GeneralName], ca=CA) -> bytes:
    """A certificate the CA signed with these SANs (what a careless CA might issue)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eu-west")]))
               .issuer_name(CA_CERT.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_a_certificate_the_ca_issued_names_its_trusted_domain():
    assert ca_peer_domain(_issued().cert_pem, CA_CERT, TRUST) == "eu-west"
    assert ca_peer_domain(_issued("us-east").cert_pem, CA_CERT, TRUST) == "us-east"


def test_another_cas_certificate_names_no_domain_even_under_the_same_ca_name():
    rogue = make_ca("test CA", NOW)
    assert ca_peer_domain(_issued(ca=rogue).cert_pem, CA_CERT, TRUST) is None


def test_a_domain_outside_the_trust_store_is_named_by_nobody():
    assert ca_peer_domain(_issued("mallory").cert_pem, CA_CERT, TRUST) is None


def test_only_the_san_uri_names_the_domain():
    """Not the CN, not a DNS name (a web server's), and not a certificate for two."""
    assert ca_peer_domain(_custom([]), CA_CERT, TRUST) is None  # CN eu-west alone
    assert ca_peer_domain(_custom([x509.DNSName("eu-west")]), CA_CERT, TRUST) is None
    two = [x509.UniformResourceIdentifier("fedorch://domain/eu-west"),
           x509.UniformResourceIdentifier("fedorch://domain/us-east")]
    assert ca_peer_domain(_custom(two), CA_CERT, TRUST) is None
    one = [x509.UniformResourceIdentifier("fedorch://domain/us-east")]
    assert ca_peer_domain(_custom(one), CA_CERT, TRUST) == "us-east"


def test_a_client_certificate_or_junk_names_no_domain():
    client = mint_leaf(CLIENT_KIND, "alice", Ed25519PrivateKey.generate(), NOW)
    assert ca_peer_domain(client.cert_pem, CA_CERT, TRUST) is None
    assert ca_peer_domain(b"junk", CA_CERT, TRUST) is None


def test_an_agent_starts_only_with_its_own_valid_certificate_from_the_ca():
    mine = _issued()
    assert check_issued(mine.cert_pem, mine.key_pem, CA_CERT, "eu-west", NOW) == \
        pytest.approx(mine.not_after, abs=1)
    with pytest.raises(CaError, match="names domain 'eu-west'.*not 'us-east'"):
        check_issued(mine.cert_pem, mine.key_pem, CA_CERT, "us-east", NOW)
    with pytest.raises(CaError, match="key does not match"):
        check_issued(mine.cert_pem, _issued().key_pem, CA_CERT, "eu-west", NOW)
    with pytest.raises(CaError, match="not issued by the federation CA"):
        rogue = _issued(ca=make_ca("test CA", NOW))
        check_issued(rogue.cert_pem, rogue.key_pem, CA_CERT, "eu-west", NOW)
    with pytest.raises(CaError, match="not valid now"):
        check_issued(mine.cert_pem, mine.key_pem, CA_CERT, "eu-west", mine.not_after + 10)


def test_a_ca_file_must_be_a_ca_and_its_key_must_match():
    with pytest.raises(CaError, match="not a CA certificate"):
        load_ca(None, _issued().cert_pem)
    with pytest.raises(CaError, match="does not match"):
        load_ca(make_ca("other", NOW).key_pem, CA.cert_pem)
    with pytest.raises(CaError, match="not a PEM certificate"):
        load_ca(None, b"junk")
    with pytest.raises(ValueError, match="domain"):
        _issued("../etc")

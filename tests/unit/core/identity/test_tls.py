"""TLS certificates bound to domain keys: minting, naming the domain, renewal, config."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from fedorch.core.identity.tls import (
    AGENT_DNS_NAME,
    CLIENT_KIND,
    DOMAIN_KIND,
    mint_leaf,
    peer_domain,
    trust_bundle,
)
from fedorch.core.identity.trust import TrustStore
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.transport import AgentTls, tls_enabled

NOW = 1_800_000_000.0
EU, US = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
TRUST = TrustStore({"eu-west": EU.public_key(), "us-east": US.public_key()})


def test_a_domain_certificate_names_its_domain():
    leaf = mint_leaf(DOMAIN_KIND, "eu-west", EU, NOW)
    cert = x509.load_pem_x509_certificate(leaf.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"eu-west", AGENT_DNS_NAME}
    assert peer_domain(leaf.cert_pem, TRUST) == "eu-west"
    assert cert.not_valid_after_utc.timestamp() == pytest.approx(leaf.not_after)


def test_a_certificate_in_another_domains_name_or_untrusted_names_no_domain():
    # us-east's key certifying a certificate that claims to be eu-west's.
    forged = mint_leaf(DOMAIN_KIND, "eu-west", US, NOW)
    assert peer_domain(forged.cert_pem, TRUST) is None
    stranger = mint_leaf(DOMAIN_KIND, "mallory", Ed25519PrivateKey.generate(), NOW)
    assert peer_domain(stranger.cert_pem, TRUST) is None
    client = mint_leaf(CLIENT_KIND, "eu-west", EU, NOW)  # a client certificate is no domain's
    assert peer_domain(client.cert_pem, TRUST) is None
    assert peer_domain(b"not a certificate", TRUST) is None
    assert peer_domain(b"", TRUST) is None


def test_the_bundle_holds_one_anchor_per_key_with_that_key():
    bundle = trust_bundle([("eu-west", EU.public_key()), ("us-east", US.public_key())])
    anchors = x509.load_pem_x509_certificates(bundle)
    assert [a.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            for a in anchors] == ["fedorch domain eu-west", "fedorch domain us-east"]
    assert anchors[0].public_key().public_bytes_raw() == EU.public_key().public_bytes_raw()
    leaf = x509.load_pem_x509_certificate(mint_leaf(DOMAIN_KIND, "eu-west", EU, NOW).cert_pem)
    assert leaf.issuer == anchors[0].subject
    leaf.verify_directly_issued_by(anchors[0])  # the chain the handshake checks


def test_the_certificate_renews_itself_at_half_life():
    now = [NOW]
    tls = AgentTls("eu-west", EU, b"", b"", clock=lambda: now[0], validity_s=100)
    first, generation = tls.current(), tls.generation
    now[0] += 49
    assert tls.current() is first and tls._fetch() is None  # nothing new to serve
    now[0] += 2
    renewed = tls.current()
    assert renewed is not first and tls.generation == generation + 1
    assert renewed.not_after == pytest.approx(now[0] + 100)
    assert tls.channel_credentials()[0] == tls.generation
    assert tls._fetch() is not None and tls._fetch() is None  # served once


MINIMAL = """domain: eu-west
listen: 127.0.0.1:7101
data_dir: data
key_file: keys/eu-west.key
"""


@pytest.mark.parametrize("listen,enabled,expected", [
    ("127.0.0.1:7101", "", False), ("0.0.0.0:7100", "", True), ("10.1.2.3:7100", "", True),
    ("127.0.0.1:7101", "true", True), ("10.1.2.3:7100", "false", False),
])
def test_tls_is_on_by_default_off_loopback(tmp_path, listen, enabled, expected):
    text = MINIMAL.replace("127.0.0.1:7101", listen) + "advertise: 10.1.2.3:7100\n"
    if enabled:
        text += f"tls: {{enabled: {enabled}}}\n"
    config = parse_config_text(text, "agent.yaml", tmp_path)
    assert tls_enabled(config) is expected


def test_a_bad_tls_setting_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"tls.enabled: must be true or false"):
        parse_config_text(MINIMAL + "tls: {enabled: 'yes'}\n", "agent.yaml", tmp_path)

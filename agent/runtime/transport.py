"""gRPC credentials for mutual TLS, from the domain key and the trust store, or from a
federation CA (CaAgentTls; core/identity/federation_ca.py says why the domain keys still
sign every message then).

The agent mints its TLS certificate at start from its domain key (core/identity/tls.py)
and renews it by itself: there is no certificate file to create, copy or renew by hand. The server requires a client certificate on every
connection, certified by a trusted domain's key (peers) or a known client's key (the
CLI); callers check that the agent's certificate was certified by a trusted domain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.federation_ca import CaError, ca_peer_domain, check_issued, load_ca
from fedorch.core.identity.keys import load_public_key_file
from fedorch.core.identity.tls import (
    AGENT_DNS_NAME,
    CLIENT_KIND,
    DOMAIN_KIND,
    LEAF_VALIDITY_S,
    TlsLeaf,
    anchor_pem,
    mint_leaf,
    peer_domain,
    trust_bundle,
)
from fedorch.core.identity.trust import TrustStore
from fedorch.runtime.interceptors import is_loopback_listen

log = logging.getLogger("fedorch.tls")

# Channels dial addresses; the name checked against the agent's certificate is this one,
# which every agent certificate carries (see core/identity/tls.py).
TLS_CHANNEL_OPTIONS = (("grpc.ssl_target_name_override", AGENT_DNS_NAME),)
# How often an agent under a federation CA looks whether its certificate files changed.
CA_FILE_CHECK_S = 60.0


class TlsConfigError(ValueError):
    """The `tls:` section names files that do not hold (at start)."""


def tls_enabled(config) -> bool:
    """`tls.enabled`, by default on unless `listen` is loopback (as in `fedorch demo`)."""
    if config.tls.HasField("enabled"):
        return config.tls.enabled
    return not is_loopback_listen(config.listen)


class AgentTls:
    """This agent's TLS material. The certificate is re-minted (a new TLS key too) once
    half its validity has passed: new connections to this agent get the new one through
    dynamic server credentials, and peer channels are reopened with it."""

    def __init__(self, domain: str, key: Ed25519PrivateKey, domain_anchors: bytes,
                 client_anchors: bytes, clock: Callable[[], float] = time.time,
                 validity_s: float = LEAF_VALIDITY_S) -> None:
        self.domain = domain
        self._key = key
        self.domain_anchors = domain_anchors  # trusted domains, this one included
        self.client_anchors = client_anchors  # known clients
        self._clock = clock
        self._validity_s = validity_s
        self.generation = 0
        # gRPC asks for server certificates from its own threads (before handshakes).
        self._lock = threading.Lock()
        self._mint()
        self._served_generation = self.generation

    def _mint(self) -> None:
        now = self._clock()
        self.leaf = mint_leaf(DOMAIN_KIND, self.domain, self._key, now, self._validity_s)
        self._renew_at = now + self._validity_s / 2
        self._channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=self.domain_anchors, private_key=self.leaf.key_pem,
            certificate_chain=self.leaf.cert_pem)
        self.generation += 1

    def current(self) -> TlsLeaf:
        with self._lock:
            if self._clock() < self._renew_at:
                return self.leaf
            self._mint()
            log.info("TLS certificate renewed (valid until %s)",
                     time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.leaf.not_after)))
        return self.leaf

    def set_domain_anchors(self, domain_anchors: bytes,
                           identity_key: Ed25519PrivateKey | None = None) -> None:
        """After a live trust change: new handshakes (either way) accept exactly the
        domains now trusted. A fresh certificate (under `identity_key`, after this
        domain's key rotated) bumps the generation, so the server hands out the new
        roots and peer channels are reopened with them."""
        with self._lock:
            self.domain_anchors = domain_anchors
            if identity_key is not None:
                self._key = identity_key
            self._mint()

    def _server_configuration(self):
        return grpc.ssl_server_certificate_configuration(
            [(self.leaf.key_pem, self.leaf.cert_pem)],
            root_certificates=self.domain_anchors + self.client_anchors)

    def _fetch(self):
        """Called by gRPC before each new handshake: a new configuration once renewed."""
        self.current()
        with self._lock:
            if self.generation == self._served_generation:
                return None
            self._served_generation = self.generation
            return self._server_configuration()

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._server_configuration(), self._fetch, require_client_authentication=True)

    def peer_domain(self, cert_pem: bytes, trust: TrustStore) -> str | None:
        """The domain a peer's TLS certificate speaks for (PeerTlsInterceptor asks)."""
        return peer_domain(cert_pem, trust)

    def channel_credentials(self) -> tuple[int, grpc.ChannelCredentials]:
        """For calls to peers: present this domain's current certificate, accept a
        trusted domain's. The generation changes when the certificate is renewed."""
        self.current()
        with self._lock:
            return self.generation, self._channel_credentials


class CaAgentTls(AgentTls):
    """With a federation CA (core/identity/federation_ca.py): this agent presents the
    certificate the CA issued it (`tls.cert_file`, `tls.key_file`, read again when they
    change: renewal is a new file, no restart), and the only domain root is the CA. The
    trust store still decides which domains count (peer_domain)."""

    def __init__(self, domain: str, ca_pem: bytes, cert_file: str, key_file: str,
                 client_anchors: bytes, clock: Callable[[], float] = time.time) -> None:
        self.ca_cert = load_ca(None, ca_pem)[1]
        self._files = (Path(cert_file), Path(key_file))
        self._stamp: tuple[int, int] | None = None
        super().__init__(domain, Ed25519PrivateKey.generate(), ca_pem, client_anchors, clock)

    def _changed(self) -> bool:
        stamp = tuple(p.stat().st_mtime_ns for p in self._files)
        return stamp != self._stamp

    def _mint(self) -> None:
        cert_pem, key_pem = (p.read_bytes() for p in self._files)
        now = self._clock()
        not_after = check_issued(cert_pem, key_pem, self.ca_cert, self.domain, now)
        self._stamp = tuple(p.stat().st_mtime_ns for p in self._files)
        self.leaf = TlsLeaf(key_pem, cert_pem, not_after)
        # Checked again now and then: the operator renews by replacing the files.
        self._renew_at = now + CA_FILE_CHECK_S
        self._channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=self.domain_anchors, private_key=key_pem,
            certificate_chain=cert_pem)
        self.generation += 1

    def current(self) -> TlsLeaf:
        with self._lock:
            if self._clock() < self._renew_at:
                return self.leaf
            self._renew_at = self._clock() + CA_FILE_CHECK_S
            try:
                if self._changed():
                    self._mint()
                    log.info("TLS certificate reloaded from %s (valid until %s)",
                             self._files[0], time.strftime(
                                 "%Y-%m-%d %H:%M:%SZ", time.gmtime(self.leaf.not_after)))
            except (OSError, CaError) as e:  # keep serving with the certificate in use
                log.error("TLS certificate in %s not reloaded: %s", self._files[0], e)
        return self.leaf

    def set_domain_anchors(self, domain_anchors: bytes,
                           identity_key: Ed25519PrivateKey | None = None) -> None:
        """Trust changes do not change the roots (the CA), nor this agent's certificate
        (the CA's, not the domain key's): PeerTlsInterceptor reads the trust store."""

    def peer_domain(self, cert_pem: bytes, trust: TrustStore) -> str | None:
        return ca_peer_domain(cert_pem, self.ca_cert, trust)


def agent_tls(config, domain: str, key: Ed25519PrivateKey, clients: ClientKeys,
              clock: Callable[[], float] = time.time) -> AgentTls:
    """This agent's TLS: certified by its domain key, or issued by the federation CA.
    TlsConfigError (at start) names a CA file that does not hold."""
    client_anchors = trust_bundle((), clients.items())
    tls = config.tls
    if tls.federation_ca:
        if not tls.cert_file or not tls.key_file:
            raise TlsConfigError("tls.federation_ca needs tls.cert_file and tls.key_file (make"
                                 " them with `fedorch keys init --domain NAME --ca DIR`)")
        try:
            ca_pem = Path(tls.federation_ca).read_bytes()
            return CaAgentTls(domain, ca_pem, tls.cert_file, tls.key_file, client_anchors,
                              clock)
        except OSError as e:
            raise TlsConfigError(f"tls: cannot read {e.filename}: {e.strerror}") from None
        except CaError as e:
            raise TlsConfigError(f"tls.federation_ca ({tls.federation_ca}), cert_file"
                                 f" ({tls.cert_file}): {e}") from None
    domains: list[tuple[str, Ed25519PublicKey]] = [(domain, key.public_key())]
    domains += [load_public_key_file(path) for path in config.trust.key_files]
    return AgentTls(domain, key, trust_bundle(domains), client_anchors, clock)


def self_check_credentials(config, key: Ed25519PrivateKey) -> grpc.ChannelCredentials:
    """For `fedorch healthcheck`, run beside the agent: its own certificate (the CA's, or
    one minted from the domain key) and the roots that accept the agent's."""
    tls = config.tls
    if tls.federation_ca:
        return grpc.ssl_channel_credentials(Path(tls.federation_ca).read_bytes(),
                                            Path(tls.key_file).read_bytes(),
                                            Path(tls.cert_file).read_bytes())
    leaf = mint_leaf(DOMAIN_KIND, config.domain, key, time.time(), validity_s=600)
    return grpc.ssl_channel_credentials(trust_bundle([(config.domain, key.public_key())]),
                                        leaf.key_pem, leaf.cert_pem)


def client_channel_credentials(agent_key_file: str, identity_key: Ed25519PrivateKey | None,
                               principal: str = "") -> grpc.ChannelCredentials:
    """For the CLI: accept only a certificate that the agent's domain key (its `.pub`)
    certified, or, given the federation CA's certificate instead, one that CA issued; and
    present one certified by the client's identity key."""
    data = Path(agent_key_file).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
        roots = data
    else:
        domain, key = load_public_key_file(agent_key_file)
        roots = anchor_pem(DOMAIN_KIND, domain, key)
    if identity_key is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    leaf = mint_leaf(CLIENT_KIND, principal, identity_key, time.time(), validity_s=3600)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=leaf.key_pem,
                                        certificate_chain=leaf.cert_pem)

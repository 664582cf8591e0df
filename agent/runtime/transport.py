"""gRPC credentials for mutual TLS, from the domain key and the trust store.

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

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.keys import load_public_key_file
from fedorch.core.identity.tls import (
    AGENT_DNS_NAME,
    CLIENT_KIND,
    DOMAIN_KIND,
    LEAF_VALIDITY_S,
    TlsLeaf,
    anchor_pem,
    mint_leaf,
    trust_bundle,
)
from fedorch.runtime.interceptors import is_loopback_listen

log = logging.getLogger("fedorch.tls")

# Channels dial addresses; the name checked against the agent's certificate is this one,
# which every agent certificate carries (see core/identity/tls.py).
TLS_CHANNEL_OPTIONS = (("grpc.ssl_target_name_override", AGENT_DNS_NAME),)


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

    def channel_credentials(self) -> tuple[int, grpc.ChannelCredentials]:
        """For calls to peers: present this domain's current certificate, accept a
        trusted domain's. The generation changes when the certificate is renewed."""
        self.current()
        with self._lock:
            return self.generation, self._channel_credentials


def agent_tls(config, domain: str, key: Ed25519PrivateKey, clients: ClientKeys,
              clock: Callable[[], float] = time.time) -> AgentTls:
    domains: list[tuple[str, Ed25519PublicKey]] = [(domain, key.public_key())]
    domains += [load_public_key_file(path) for path in config.trust.key_files]
    return AgentTls(domain, key, trust_bundle(domains), trust_bundle((), clients.items()),
                    clock)


def client_channel_credentials(agent_key_file: str, identity_key: Ed25519PrivateKey | None,
                               principal: str = "") -> grpc.ChannelCredentials:
    """For the CLI: accept only a certificate that the agent's domain key (its `.pub`)
    certified, and present one certified by the client's identity key."""
    domain, key = load_public_key_file(agent_key_file)
    roots = anchor_pem(DOMAIN_KIND, domain, key)
    if identity_key is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    leaf = mint_leaf(CLIENT_KIND, principal, identity_key, time.time(), validity_s=3600)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=leaf.key_pem,
                                        certificate_chain=leaf.cert_pem)

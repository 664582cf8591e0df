"""Client identities, signed client calls and the access rules that authorise them.

A client is a *principal* (``alice`` or ``alice@eu-west``) with an Ed25519 key pair:
``NAME.key`` holds one line naming the principal, then the PKCS8 PEM key (PEM readers
skip text before the BEGIN line), so the identity file alone says who it is; ``NAME.pub``
is one line ``fedorch-client-ed25519 NAME <base64 key>``, a prefix different from a
domain's, so a client key cannot be listed as a domain by mistake nor the reverse.

Every Client-service call carries metadata: the principal, the time, a 16-byte nonce and
an Ed25519 signature over ``call_payload`` (the method, the principal, the principal it
acts for, the time, the nonce, and the SHA-256 of the request bytes *as sent*). An agent
that forwards a call (status, watch, cancel of another domain's workflow) signs it with
its domain key as principal ``domain:NAME`` and names the principal it acts for.

Sans-I/O apart from reading key files: the verifier takes `now_ms` and a replay guard.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.keys import KeyFileError, write_new
from fedorch.core.identity.replay import NONCE_BYTES, ReplayGuard
from fedorch.core.identity.trust import TrustStore

CLIENT_PUB_PREFIX = "fedorch-client-ed25519"
DOMAIN_PRINCIPAL_PREFIX = "domain:"
# A principal: a name, optionally "@" its home domain (the only domain that may vouch
# for it in a forwarded call). No ':' so that it never reads as a domain principal.
PRINCIPAL_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(@[a-z0-9][a-z0-9.-]{0,62})?")
PERMISSIONS = ("submit", "read", "cancel")
ANY_PRINCIPAL = "*"
SIGNATURE_BYTES = 64

# Metadata keys (lower case, as gRPC requires; "-bin" keys carry raw bytes).
MD_PRINCIPAL = "x-fedorch-principal"
MD_ON_BEHALF = "x-fedorch-on-behalf-of"
MD_TIME = "x-fedorch-time-ms"
MD_NONCE = "x-fedorch-nonce-bin"
MD_SIGNATURE = "x-fedorch-signature-bin"

# The permission each Client method needs. SubmitAndWatch follows only the workflow it
# started, so `submit` covers it.
METHOD_PERMISSIONS: Mapping[str, str] = {
    "Submit": "submit",
    "SubmitAndWatch": "submit",
    "SubmitStream": "submit",  # many submissions, each followed as SubmitAndWatch follows
    "GetWorkflow": "read",
    "Watch": "read",
    "ListWorkflows": "read",
    "ListMembers": "read",
    # Asked by a submitter before it signs its spec for this agent's domain.
    "GetAgent": "submit",
    "Cancel": "cancel",
}


class ClientAuthError(Exception):
    """A call is refused: `unauthenticated` (UNAUTHENTICATED) or not allowed
    (PERMISSION_DENIED); `reason` is one line naming what was missing."""

    def __init__(self, reason: str, *, unauthenticated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unauthenticated = unauthenticated


def is_valid_principal(name: object) -> bool:
    return isinstance(name, str) and PRINCIPAL_RE.fullmatch(name) is not None


def check_principal(name: object) -> str:
    if not is_valid_principal(name):
        raise ValueError(
            f"invalid client name {name!r}: use a name of a-z, 0-9, '.', '_', '-' "
            "(1-63 characters), optionally followed by @DOMAIN, e.g. alice@eu-west")
    return name  # type: ignore[return-value]


def home_domain(principal: str) -> str:
    """The domain named after '@' (empty when there is none)."""
    return principal.partition("@")[2]


# ---- key files -------------------------------------------------------------------------


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def client_public_key_line(principal: str, key: Ed25519PublicKey) -> str:
    return f"{CLIENT_PUB_PREFIX} {check_principal(principal)} " \
           f"{base64.b64encode(_raw(key)).decode('ascii')}\n"


def init_client_keys(principal: str, directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Create DIRECTORY/NAME.key (0600: principal line + PEM) and DIRECTORY/NAME.pub;
    never overwrite either."""
    check_principal(principal)
    directory = pathlib.Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, pub_path = directory / f"{principal}.key", directory / f"{principal}.pub"
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path}: already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_new(key_path, f"{CLIENT_PUB_PREFIX} {principal}\n".encode("ascii") + pem, 0o600)
    try:
        write_new(pub_path, client_public_key_line(principal, key.public_key()).encode("ascii"),
                  0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    return key_path, pub_path


@dataclass(frozen=True)
class ClientIdentity:
    """A principal and its private key: what the CLI signs calls with."""

    principal: str
    key: Ed25519PrivateKey

    def __repr__(self) -> str:  # never show key material
        return f"ClientIdentity({self.principal!r})"


def load_identity(path: str | os.PathLike[str]) -> ClientIdentity:
    """Load an identity file made by `fedorch keys init --client`; KeyFileError says why not."""
    try:
        data = pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: identity file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read identity file ({exc.strerror or exc})") from None
    first, _, _ = data.partition(b"\n")
    parts = first.decode("ascii", "replace").split()
    if len(parts) != 2 or parts[0] != CLIENT_PUB_PREFIX:
        raise KeyFileError(f"{path}: not a client identity file (its first line should be "
                           f"'{CLIENT_PUB_PREFIX} NAME'; make one with "
                           "`fedorch keys init --client NAME --dir DIR`)")
    if not is_valid_principal(parts[1]):
        raise KeyFileError(f"{path}: invalid client name {parts[1]!r}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{path}: private key is encrypted; use an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path}: no PEM private key after the first line") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: private key is not Ed25519 ({type(key).__name__})")
    return ClientIdentity(parts[1], key)


def load_client_public_key_file(path: str | os.PathLike[str]) -> tuple[str, Ed25519PublicKey]:
    """Load a client `.pub` file: (principal, key)."""
    expected = f"expected one line '{CLIENT_PUB_PREFIX} <name> <base64 key>'"
    try:
        text = pathlib.Path(path).read_bytes().decode("ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: client public key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read client public key file "
                           f"({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a client public key file ({expected})") from None
    lines = text.strip().splitlines()
    parts = lines[0].split() if len(lines) == 1 else []
    if len(parts) != 3 or parts[0] != CLIENT_PUB_PREFIX:
        raise KeyFileError(f"{path}: not a client public key file ({expected})")
    if not is_valid_principal(parts[1]):
        raise KeyFileError(f"{path}: invalid client name {parts[1]!r}")
    try:
        raw = base64.b64decode(parts[2], validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path}: not a valid base64 Ed25519 public key") from None
    return parts[1], key


class ClientKeys:
    """Principal -> public key, from the config's `clients.key_files`."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] = ()) -> None:  # type: ignore[assignment]
        self._keys = dict(keys)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> ClientKeys:
        keys: dict[str, Ed25519PublicKey] = {}
        origin: dict[str, str] = {}
        for path in paths:
            principal, key = load_client_public_key_file(path)
            if principal in keys and _raw(keys[principal]) != _raw(key):
                raise KeyFileError(f"{path}: client {principal!r} already has a different key "
                                   f"in {origin[principal]}")
            keys[principal] = key
            origin.setdefault(principal, str(path))
        return cls(keys)

    def __contains__(self, principal: object) -> bool:
        return principal in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> list[tuple[str, Ed25519PublicKey]]:
        return sorted(self._keys.items(), key=lambda item: item[0])

    def public_bytes(self, principal: str) -> bytes | None:
        """The raw 32-byte key of `principal`, None when it is not known here."""
        key = self._keys.get(principal)
        return _raw(key) if key is not None else None

    def verify(self, principal: str, data: bytes, signature: bytes) -> bool:
        key = self._keys.get(principal)
        if key is None:
            return False
        try:
            key.verify(signature, data)
            return True
        except Exception:  # InvalidSignature, or junk: never raise at the boundary
            return False


# ---- signing and verifying calls -------------------------------------------------------


def call_payload(method: str, principal: str, on_behalf: str, time_ms: int, nonce: bytes,
                 request: bytes) -> bytes:
    """The bytes a call's signature covers. The request enters by its hash, as received."""
    digest = hashlib.sha256(request).hexdigest()
    return (f"fedorch-client-call-v1\n{method}\n{principal}\n{on_behalf}\n{time_ms}\n"
            f"{nonce.hex()}\n{digest}").encode()


def sign_call(principal: str, sign: Callable[[bytes], bytes], method: str, request: bytes, *,
              now_ms: int, nonce: bytes, on_behalf: str = "") -> list[tuple[str, str | bytes]]:
    """The metadata that authenticates one call of `method` with these request bytes;
    `sign` is the principal's (or the forwarding domain's) Ed25519 signing function."""
    payload = call_payload(method, principal, on_behalf, now_ms, nonce, request)
    metadata: list[tuple[str, str | bytes]] = [
        (MD_PRINCIPAL, principal), (MD_TIME, str(now_ms)), (MD_NONCE, nonce),
        (MD_SIGNATURE, sign(payload))]
    if on_behalf:
        metadata.append((MD_ON_BEHALF, on_behalf))
    return metadata


@dataclass(frozen=True)
class Caller:
    """Who a verified call comes from. `domain` is set for a call an agent forwarded;
    `principal` is then the one it acts for."""

    principal: str
    domain: str = ""

    def describe(self) -> str:
        if self.domain:
            return f"{self.principal or 'anonymous'} (via domain {self.domain})"
        return self.principal


ANONYMOUS = Caller("anonymous")


def _one(metadata: Sequence[tuple[str, str | bytes]], key: str) -> str | bytes | None:
    values = [v for k, v in metadata if k == key]
    if len(values) > 1:
        raise ClientAuthError(f"metadata {key} given {len(values)} times", unauthenticated=True)
    return values[0] if values else None


def _text(metadata: Sequence[tuple[str, str | bytes]], key: str) -> str | None:
    value = _one(metadata, key)
    if isinstance(value, bytes):
        raise ClientAuthError(f"metadata {key} must be text", unauthenticated=True)
    return value


def verify_call(metadata: Sequence[tuple[str, str | bytes]], method: str, request: bytes, *,
                clients: ClientKeys, trust: TrustStore, guard: ReplayGuard,
                now_ms: int) -> Caller | None:
    """The caller of a signed call; None when the call carries no identity at all.
    ClientAuthError (unauthenticated) for anything malformed, unknown, forged or replayed.
    The replay guard runs last, so a forgery cannot burn a genuine call's nonce."""
    principal = _text(metadata, MD_PRINCIPAL)
    if principal is None:
        if any(k.startswith("x-fedorch-") for k, _ in metadata):
            raise ClientAuthError(f"metadata {MD_PRINCIPAL} missing", unauthenticated=True)
        return None
    on_behalf = _text(metadata, MD_ON_BEHALF) or ""
    time_text = _text(metadata, MD_TIME)
    nonce = _one(metadata, MD_NONCE)
    signature = _one(metadata, MD_SIGNATURE)
    if time_text is None or not time_text.isascii() or not time_text.isdigit() \
            or len(time_text) > 19:
        raise ClientAuthError(f"metadata {MD_TIME} missing or not a time in ms",
                              unauthenticated=True)
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise ClientAuthError(f"metadata {MD_NONCE} must be {NONCE_BYTES} bytes",
                              unauthenticated=True)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise ClientAuthError(f"metadata {MD_SIGNATURE} must be {SIGNATURE_BYTES} bytes",
                              unauthenticated=True)
    time_ms = int(time_text)
    payload = call_payload(method, principal, on_behalf, time_ms, nonce, request)
    if principal.startswith(DOMAIN_PRINCIPAL_PREFIX):
        domain = principal.removeprefix(DOMAIN_PRINCIPAL_PREFIX)
        if domain not in trust:
            raise ClientAuthError(f"untrusted domain {domain[:80]!r}", unauthenticated=True)
        if on_behalf and not is_valid_principal(on_behalf) and on_behalf != ANONYMOUS.principal:
            raise ClientAuthError(f"invalid principal {on_behalf[:80]!r} in {MD_ON_BEHALF}",
                                  unauthenticated=True)
        if not trust.verify(domain, payload, signature):
            raise ClientAuthError(f"bad signature from domain {domain!r}", unauthenticated=True)
        caller = Caller(on_behalf, domain)
    else:
        if on_behalf:
            raise ClientAuthError(f"only a domain may act for another principal "
                                  f"({MD_ON_BEHALF})", unauthenticated=True)
        if not is_valid_principal(principal):
            raise ClientAuthError(f"invalid principal {principal[:80]!r}", unauthenticated=True)
        if principal not in clients:
            raise ClientAuthError(f"unknown client {principal!r}: its key is not in this "
                                  "agent's clients.key_files", unauthenticated=True)
        if not clients.verify(principal, payload, signature):
            raise ClientAuthError(f"bad signature from client {principal!r}",
                                  unauthenticated=True)
        caller = Caller(principal)
    reason = guard.check_and_remember(principal, nonce, time_ms, now_ms)
    if reason is not None:
        raise ClientAuthError(f"call refused: {reason}", unauthenticated=True)
    return caller


# ---- access rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRule:
    principals: frozenset[str]
    allow: frozenset[str]


class AccessPolicy:
    """Who may do what through this agent.

    `open` (no `clients:` configured and a loopback `listen`): every call is allowed,
    signed or not; it is for `fedorch demo` and development on one host. Otherwise an
    unsigned call is refused, and a verified caller gets the union of the rules that name
    it (`*` names every verified client). A domain forwarding a call acts for the principal
    it names: it may read (status can be asked of any agent), and do more only for
    principals homed at it (`name@that-domain`) whom a rule here allows, or when a rule
    names the domain itself (`domain:NAME`)."""

    def __init__(self, rules: Iterable[AccessRule], *, open_access: bool) -> None:
        self.rules = tuple(rules)
        self.open = open_access

    def _granted(self, name: str) -> set[str]:
        granted: set[str] = set()
        for rule in self.rules:
            if name in rule.principals or (ANY_PRINCIPAL in rule.principals
                                           and not name.startswith(DOMAIN_PRINCIPAL_PREFIX)):
                granted |= rule.allow
        return granted

    def authorize(self, caller: Caller | None, permission: str) -> None:
        """Return if allowed; ClientAuthError naming the principal and permission if not."""
        if self.open:
            return
        if caller is None:
            raise ClientAuthError(
                f"no client identity: this agent requires signed calls for '{permission}' "
                "(give --identity FILE or set FEDORCH_IDENTITY)", unauthenticated=True)
        if caller.domain:
            if permission == "read":
                return
            if permission in self._granted(DOMAIN_PRINCIPAL_PREFIX + caller.domain):
                return
            if home_domain(caller.principal) == caller.domain \
                    and permission in self._granted(caller.principal):
                return
        elif permission in self._granted(caller.principal):
            return
        raise ClientAuthError(f"principal {caller.describe()!r} is not allowed '{permission}' "
                              "here (no access rule grants it)", unauthenticated=False)

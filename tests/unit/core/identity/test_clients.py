"""Client identities: key files, signed calls, access rules, config checks, CLI exit 4."""

from __future__ import annotations

import json
import os
import stat

import grpc
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.cli.errors import EXIT_DENIED, rpc_error
from fedorch.cli.main import cli
from fedorch.core.identity.clients import (
    MD_NONCE,
    MD_ON_BEHALF,
    MD_PRINCIPAL,
    MD_SIGNATURE,
    MD_TIME,
    AccessPolicy,
    AccessRule,
    Caller,
    ClientAuthError,
    ClientKeys,
    init_client_keys,
    load_client_public_key_file,
    load_identity,
    sign_call,
)
from fedorch.core.identity.keys import KeyFileError, init_keys, load_public_key_file
from fedorch.core.identity.trust import TrustStore
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.interceptors import ClientAuth, is_loopback_listen
from hypothesis import given, settings
from hypothesis import strategies as st

NOW_MS = 1_800_000_000_000
REQUEST = b"\n\x0ceu-west.0a1b"


def _nonce(i: int) -> bytes:
    return i.to_bytes(16, "big")


@pytest.fixture
def alice(tmp_path):
    init_client_keys("alice@eu-west", tmp_path)
    return load_identity(tmp_path / "alice@eu-west.key")


def _auth(tmp_path, rules=(), *, open_access=False, domains: dict | None = None) -> ClientAuth:
    clients = ClientKeys.from_files(sorted(tmp_path.glob("*.pub")))
    trust = TrustStore(domains or {})
    return ClientAuth(clients, trust, AccessPolicy(rules, open_access=open_access), 60_000,
                      clock=lambda: NOW_MS / 1000)


def _signed(identity, method="Cancel", request=REQUEST, i=1, now_ms=NOW_MS):
    return sign_call(identity.principal, identity.key.sign, method, request, now_ms=now_ms,
                     nonce=_nonce(i))


ALL = AccessRule(frozenset({"alice@eu-west"}), frozenset({"submit", "read", "cancel"}))


# ---- key files -----------------------------------------------------------------------


def test_client_key_files_name_their_principal(tmp_path, alice):
    key, pub = tmp_path / "alice@eu-west.key", tmp_path / "alice@eu-west.pub"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    principal, public = load_client_public_key_file(pub)
    assert principal == "alice@eu-west" == alice.principal
    assert public.public_bytes_raw() == alice.key.public_key().public_bytes_raw()
    with pytest.raises(FileExistsError):
        init_client_keys("alice@eu-west", tmp_path)
    with pytest.raises(ValueError, match="invalid client name"):
        init_client_keys("domain:eu-west", tmp_path)


def test_client_and_domain_keys_cannot_be_swapped(tmp_path, alice):
    init_keys("eu-west", tmp_path / "d")
    with pytest.raises(KeyFileError, match="not a fedorch public key file"):
        load_public_key_file(tmp_path / "alice@eu-west.pub")
    with pytest.raises(KeyFileError, match="not a client public key file"):
        load_client_public_key_file(tmp_path / "d" / "eu-west.pub")
    with pytest.raises(KeyFileError, match="not a client identity file"):
        load_identity(tmp_path / "d" / "eu-west.key")
    with pytest.raises(KeyFileError, match="not found"):
        load_identity(tmp_path / "nobody.key")


# ---- verification and access -------------------------------------------------------


def test_allowed_call_passes_and_names_the_caller(tmp_path, alice):
    auth = _auth(tmp_path, [ALL])
    assert auth.check("Cancel", _signed(alice), REQUEST) == Caller("alice@eu-west")


@pytest.mark.parametrize("method,permission", [("Cancel", "cancel"), ("Submit", "submit"),
                                               ("GetWorkflow", "read")])
def test_missing_permission_is_denied_naming_principal_and_permission(
        tmp_path, alice, method, permission):
    rule = AccessRule(frozenset({"alice@eu-west"}),
                      frozenset({"submit", "read", "cancel"} - {permission}))
    with pytest.raises(ClientAuthError) as refused:
        _auth(tmp_path, [rule]).check(method, _signed(alice, method), REQUEST)
    assert not refused.value.unauthenticated
    assert "'alice@eu-west'" in refused.value.reason and f"'{permission}'" in refused.value.reason


def test_unsigned_call_is_unauthenticated_unless_open(tmp_path, alice):
    with pytest.raises(ClientAuthError) as refused:
        _auth(tmp_path, [ALL]).check("GetWorkflow", [], REQUEST)
    assert refused.value.unauthenticated and "no client identity" in refused.value.reason
    assert _auth(tmp_path, open_access=True).check("GetWorkflow", [], REQUEST) is None


def test_wildcard_names_every_verified_client_but_no_domain(tmp_path, alice):
    star = AccessRule(frozenset({"*"}), frozenset({"cancel"}))
    auth = _auth(tmp_path, [star])
    assert auth.check("Cancel", _signed(alice), REQUEST).principal == "alice@eu-west"
    policy = AccessPolicy([star], open_access=False)
    with pytest.raises(ClientAuthError):
        policy.authorize(Caller("alice@eu-west", "us-east"), "cancel")


def test_forwarded_calls_read_and_act_only_for_their_home_principals(tmp_path):
    policy = AccessPolicy([ALL, AccessRule(frozenset({"bob@us-east"}), frozenset({"cancel"}))],
                          open_access=False)
    policy.authorize(Caller("anyone", "us-east"), "read")  # status from any agent
    policy.authorize(Caller("bob@us-east", "us-east"), "cancel")  # us-east vouches for bob
    with pytest.raises(ClientAuthError, match="via domain us-east"):
        policy.authorize(Caller("alice@eu-west", "us-east"), "cancel")  # not its principal
    with pytest.raises(ClientAuthError):
        policy.authorize(Caller("bob@us-east", "us-east"), "submit")
    by_domain = AccessPolicy([AccessRule(frozenset({"domain:us-east"}), frozenset({"cancel"}))],
                             open_access=False)
    by_domain.authorize(Caller("alice@eu-west", "us-east"), "cancel")


def test_a_domain_signed_forward_verifies_against_the_trust_store(tmp_path):
    domain_key = Ed25519PrivateKey.generate()
    auth = _auth(tmp_path, domains={"us-east": domain_key.public_key()})
    metadata = sign_call("domain:us-east", domain_key.sign, "GetWorkflow", REQUEST,
                         now_ms=NOW_MS, nonce=_nonce(7), on_behalf="alice@eu-west")
    assert auth.check("GetWorkflow", metadata, REQUEST) == Caller("alice@eu-west", "us-east")
    stranger = Ed25519PrivateKey.generate()
    forged = sign_call("domain:us-east", stranger.sign, "GetWorkflow", REQUEST,
                       now_ms=NOW_MS, nonce=_nonce(8), on_behalf="alice@eu-west")
    with pytest.raises(ClientAuthError, match="bad signature from domain"):
        auth.check("GetWorkflow", forged, REQUEST)
    client_acting = _signed(load_identity_from(tmp_path), "GetWorkflow") + [
        (MD_ON_BEHALF, "bob")]
    with pytest.raises(ClientAuthError, match="only a domain may act"):
        auth.check("GetWorkflow", client_acting, REQUEST)


def load_identity_from(tmp_path):
    init_client_keys("carol", tmp_path / "c")
    return load_identity(tmp_path / "c" / "carol.key")


def test_replayed_and_stale_calls_are_refused(tmp_path, alice):
    auth = _auth(tmp_path, [ALL])
    metadata = _signed(alice, i=3)
    auth.check("Cancel", metadata, REQUEST)
    with pytest.raises(ClientAuthError, match="replayed"):
        auth.check("Cancel", metadata, REQUEST)
    with pytest.raises(ClientAuthError, match="outside replay window"):
        auth.check("Cancel", _signed(alice, i=4, now_ms=NOW_MS - 120_000), REQUEST)


def test_signature_covers_method_request_and_time(tmp_path, alice):
    auth = _auth(tmp_path, [ALL])
    with pytest.raises(ClientAuthError, match="bad signature"):
        auth.check("Submit", _signed(alice, "Cancel", i=5), REQUEST)
    with pytest.raises(ClientAuthError, match="bad signature"):
        auth.check("Cancel", _signed(alice, i=6), REQUEST + b"x")
    moved = [(k, str(NOW_MS + 1) if k == MD_TIME else v) for k, v in _signed(alice, i=9)]
    with pytest.raises(ClientAuthError, match="bad signature"):
        auth.check("Cancel", moved, REQUEST)


_KEYS = (MD_PRINCIPAL, MD_TIME, MD_NONCE, MD_SIGNATURE, MD_ON_BEHALF)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KEYS), st.one_of(st.text(max_size=30),
                                                             st.binary(max_size=80))),
                max_size=6),
       st.binary(max_size=64))
def test_fuzzed_metadata_never_passes_nor_burns_a_genuine_nonce(tmp_path_factory, junk,
                                                                 request_bytes):
    folder = tmp_path_factory.mktemp("fuzz")
    init_client_keys("alice@eu-west", folder)
    alice = load_identity(folder / "alice@eu-west.key")
    auth = _auth(folder, [ALL])
    genuine = _signed(alice, i=11)
    # Junk alone, and junk mixed into a genuine call's metadata: always refused.
    for metadata in ([junk, genuine + junk] if junk else [junk]):
        with pytest.raises(ClientAuthError):
            auth.check("Cancel", metadata, request_bytes if request_bytes != REQUEST
                       else REQUEST + b"!")
    assert auth.guard.remembered == 0  # nothing refused left a trace
    assert auth.check("Cancel", genuine, REQUEST) == Caller("alice@eu-west")


# ---- config --------------------------------------------------------------------------

MINIMAL = """domain: eu-west
listen: 127.0.0.1:7101
data_dir: data
key_file: keys/eu-west.key
"""


def test_config_takes_clients_and_access(tmp_path):
    config = parse_config_text(
        MINIMAL + "clients: {key_files: [keys/alice.pub]}\n"
                  "access: [{principals: [alice@eu-west, 'domain:us-east', '*'], "
                  "allow: [submit, read]}]\n", "agent.yaml", tmp_path)
    assert list(config.clients.key_files) == [str(tmp_path / "keys" / "alice.pub")]
    assert list(config.access[0].allow) == ["submit", "read"]


@pytest.mark.parametrize("extra,message", [
    ("access: [{principals: [alice], allow: [delete]}]\n",
     "access[0].allow[0]: must be one of: submit, read, cancel, got 'delete'"),
    ("access: [{allow: [read]}]\n", "access[0].principals: required"),
    ("access: [{principals: [alice]}]\n", "access[0].allow: required"),
    ("access: [{principals: ['Alice Smith'], allow: [read]}]\n",
     "access[0].principals[0]: must be a client name"),
    ("clients: {key_files: ['']}\n", "clients.key_files[0]: must not be empty"),
    ("clients: {keys: [a.pub]}\n", "clients.keys: unknown key"),
])
def test_config_errors_name_the_field(tmp_path, extra, message):
    with pytest.raises(ConfigError) as refused:
        parse_config_text(MINIMAL + extra, "agent.yaml", tmp_path)
    assert message in str(refused.value)


def test_loopback_detection():
    assert is_loopback_listen("127.0.0.1:7101") and is_loopback_listen("[::1]:7101")
    assert is_loopback_listen("localhost:7101")
    assert not is_loopback_listen("0.0.0.0:7100") and not is_loopback_listen("10.0.0.5:7100")


# ---- CLI -----------------------------------------------------------------------------


def test_keys_init_client_and_bad_usage(tmp_path):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "init", "--client", "alice@eu-west", "--dir",
                               str(tmp_path), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["client"] == "alice@eu-west"
    assert load_identity(tmp_path / "alice@eu-west.key").principal == "alice@eu-west"
    both = runner.invoke(cli, ["keys", "init", "--client", "a", "--domain", "b", "--dir",
                               str(tmp_path)])
    assert both.exit_code == 2
    bad_identity = runner.invoke(cli, ["status", "x.1", "--identity",
                                       str(tmp_path / "alice@eu-west.pub")])
    assert bad_identity.exit_code == 2 and "not a client identity file" in bad_identity.output


class _Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAUTHENTICATED,
                                  grpc.StatusCode.PERMISSION_DENIED])
def test_refusals_map_to_exit_4_with_the_reason(code):
    error = rpc_error(_Refusal(code, "principal 'bob' is not allowed 'cancel' here"),
                      "127.0.0.1:7101")
    assert error.exit_code == EXIT_DENIED == 4
    assert "'bob'" in error.format_message() and "'cancel'" in error.format_message()

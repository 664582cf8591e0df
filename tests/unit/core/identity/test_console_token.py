"""Console tokens: issued by a client key, verified by one domain's console only."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from fedorch.core.identity.clients import (
    ClientAuthError,
    ClientKeys,
    init_client_keys,
    load_identity,
)
from fedorch.core.identity.console_token import (
    MAX_TTL_S,
    SKEW_S,
    ConsoleGrant,
    issue_token,
    verify_token,
)

NOW = 1_800_000_000
NONCE = bytes(16)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clients")
    alice = load_identity(init_client_keys("alice", folder)[0])
    bob = load_identity(init_client_keys("bob", folder)[0])
    known = ClientKeys({"alice": alice.key.public_key(), "bob": bob.key.public_key()})
    return alice, bob, known


def _refused(token: str, known: ClientKeys, match: str, *, domain: str = "eu-west",
             now: float = NOW) -> None:
    with pytest.raises(ClientAuthError, match=match) as caught:
        verify_token(token, known, domain, now_s=now)
    assert caught.value.unauthenticated


def test_a_token_names_its_principal_actions_and_expiry(keys):
    alice, _, known = keys
    token = issue_token(alice, "eu-west", ["cancel"], now_s=NOW, nonce=NONCE, ttl_s=600)
    grant = verify_token(token, known, "eu-west", now_s=NOW + 10)
    assert grant == ConsoleGrant("alice", frozenset({"cancel"}), NOW + 600, "")
    assert grant.permits("cancel", "eu-west.any")
    assert not grant.permits("submit", "eu-west.any")
    bound = verify_token(issue_token(alice, "eu-west", ["cancel"], now_s=NOW, nonce=NONCE,
                                     workflow="eu-west.w1"), known, "eu-west", now_s=NOW)
    assert bound.permits("cancel", "eu-west.w1") and not bound.permits("cancel", "eu-west.w2")


def test_a_token_for_another_console_is_refused(keys):
    alice, _, known = keys
    token = issue_token(alice, "us-east", ["cancel"], now_s=NOW, nonce=NONCE)
    _refused(token, known, "another console")


def test_expired_future_and_too_long_lived_tokens_are_refused(keys):
    alice, _, known = keys
    token = issue_token(alice, "eu-west", ["cancel"], now_s=NOW, nonce=NONCE, ttl_s=60)
    assert verify_token(token, known, "eu-west", now_s=NOW + 60 + SKEW_S - 1)
    _refused(token, known, "expired", now=NOW + 60 + SKEW_S)
    _refused(token, known, "future", now=NOW - SKEW_S - 1)
    # Signed by alice's own key, but claiming a day's life: more than a token may have.
    long_lived = jwt.encode({"sub": "alice", "aud": "fedorch-console:eu-west", "iat": NOW,
                             "exp": NOW + MAX_TTL_S + 1, "scope": "cancel", "jti": "00"},
                            alice.key, algorithm="EdDSA", headers={"kid": "alice"})
    _refused(long_lived, known, "at most")


def _claims_edited(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


def test_forged_or_edited_tokens_are_refused(keys):
    alice, bob, known = keys
    token = issue_token(alice, "eu-west", ["cancel"], now_s=NOW, nonce=NONCE)
    _refused(_claims_edited(token, exp=NOW + 60), known, "bad signature")
    # bob signs a token that says it is alice's: her key does not verify it.
    forged = jwt.encode({"sub": "alice", "aud": "fedorch-console:eu-west", "iat": NOW,
                         "exp": NOW + 60, "scope": "cancel", "jti": "00"},
                        bob.key, algorithm="EdDSA", headers={"kid": "alice"})
    _refused(forged, known, "bad signature from client 'alice'")
    # bob signs for himself but names alice as the subject.
    swapped = jwt.encode({"sub": "alice", "aud": "fedorch-console:eu-west", "iat": NOW,
                          "exp": NOW + 60, "scope": "cancel", "jti": "00"},
                         bob.key, algorithm="EdDSA", headers={"kid": "bob"})
    _refused(swapped, known, "subject")
    _refused(token, ClientKeys({"bob": bob.key.public_key()}), "unknown client 'alice'")
    _refused("not-a-token", known, "malformed")
    _refused("", known, "empty")
    _refused("x" * 5000, known, "too long")


def test_a_token_with_an_unknown_permission_or_missing_claim_is_refused(keys):
    alice, _, known = keys
    base = {"sub": "alice", "aud": "fedorch-console:eu-west", "iat": NOW, "exp": NOW + 60,
            "scope": "cancel", "jti": "00"}
    for changes, match in (({"scope": "cancel delete"}, "delete"), ({"scope": ""}, "nothing"),
                           ({"jti": None}, "jti")):
        claims = {k: v for k, v in {**base, **changes}.items() if v is not None}
        token = jwt.encode(claims, alice.key, algorithm="EdDSA", headers={"kid": "alice"})
        _refused(token, known, match)


def test_issue_checks_its_input(keys):
    alice, _, _ = keys
    with pytest.raises(ValueError, match="1 to"):
        issue_token(alice, "eu-west", ["cancel"], now_s=NOW, nonce=NONCE, ttl_s=MAX_TTL_S + 1)
    with pytest.raises(ValueError, match="domain"):
        issue_token(alice, "", ["cancel"], now_s=NOW, nonce=NONCE)
    with pytest.raises(ValueError, match="submit"):
        issue_token(alice, "eu-west", ["submit"], now_s=NOW, nonce=NONCE)

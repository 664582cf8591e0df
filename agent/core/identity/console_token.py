"""Console tokens: how a browser proves a client identity to one domain's web console.

There is no central login. The operator's client key (the one the CLI signs calls with)
signs a short-lived token, `fedorch console token --identity FILE --domain D`, and pastes
it into the console (or opens the URL the command prints, which carries it in the
fragment, never sent to a server). The console sends it with each write action, in the
`Authorization: Bearer` header; it is never a cookie, so another site cannot make the
browser send it (no CSRF through it).

The token is a JWT (RFC 7519) signed with EdDSA (Ed25519) by PyJWT:

- header `kid`: the principal, so that the verifier picks the key it lists for it;
- `sub` the principal (must equal `kid`), `aud` ``fedorch-console:DOMAIN`` (a token for
  one console is refused by every other), `iat` and `exp` (seconds; at most
  MAX_TTL_S apart), `scope` the write permissions it carries (space separated, a subset
  of WRITE_PERMISSIONS), optional `wf` (the one workflow it may act on), `jti` a nonce.

What the principal may do is still decided by the agent's `access` rules: a token can
only narrow what its principal is allowed, never widen it.

Sans-I/O: the clock and the nonce come in as arguments; PyJWT's own clock checks are off and done here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import jwt
from fedorch.core.identity.clients import (
    ClientAuthError,
    ClientIdentity,
    ClientKeys,
    is_valid_principal,
)

ALGORITHM = "EdDSA"
AUDIENCE_PREFIX = "fedorch-console:"
WRITE_PERMISSIONS = ("cancel",)
DEFAULT_TTL_S = 900
MAX_TTL_S = 3600
# Clocks of the operator's host and the agent's may differ by this much.
SKEW_S = 60
MAX_TOKEN_CHARS = 4096
_REQUIRED = ("sub", "aud", "iat", "exp", "scope", "jti")


@dataclass(frozen=True)
class ConsoleGrant:
    """What a verified token says: who, which write actions, until when."""

    principal: str
    allow: frozenset[str]
    expires_s: int
    workflow: str = ""  # "" : any workflow

    def permits(self, permission: str, workflow_id: str) -> bool:
        return permission in self.allow and (not self.workflow or self.workflow == workflow_id)


def audience(domain: str) -> str:
    return AUDIENCE_PREFIX + domain


def _check_allow(allow: Iterable[str]) -> list[str]:
    wanted = sorted(set(allow))
    unknown = [p for p in wanted if p not in WRITE_PERMISSIONS]
    if not wanted or unknown:
        raise ValueError(f"a console token allows some of {', '.join(WRITE_PERMISSIONS)}; "
                         f"got {', '.join(unknown) or 'nothing'}")
    return wanted


def issue_token(identity: ClientIdentity, domain: str, allow: Iterable[str], *,
                now_s: float, nonce: bytes, ttl_s: int = DEFAULT_TTL_S,
                workflow: str = "") -> str:
    """A token for `domain`'s console, signed by `identity`, valid for `ttl_s` seconds;
    `nonce` (random bytes from the caller) makes each token distinct."""
    if not domain:
        raise ValueError("the console's domain is needed (the token is valid there only)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a console token lives 1 to {MAX_TTL_S} s, not {ttl_s}")
    now = int(now_s)
    claims: dict[str, object] = {
        "sub": identity.principal, "aud": audience(domain), "iat": now, "exp": now + ttl_s,
        "scope": " ".join(_check_allow(allow)), "jti": nonce.hex()}
    if workflow:
        claims["wf"] = workflow
    return jwt.encode(claims, identity.key, algorithm=ALGORITHM,
                      headers={"kid": identity.principal})


def _refused(reason: str) -> ClientAuthError:
    return ClientAuthError(f"console token refused: {reason}", unauthenticated=True)


def verify_token(token: str, clients: ClientKeys, domain: str, *, now_s: float) -> ConsoleGrant:
    """The grant `token` carries for `domain`'s console; ClientAuthError (unauthenticated)
    naming what is wrong when it is malformed, signed by an unknown or wrong key, meant
    for another console, not yet valid, expired or too long-lived."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise _refused("empty or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as e:
        raise _refused(f"malformed ({e})") from None
    principal = header.get("kid")
    if not is_valid_principal(principal):
        raise _refused("its header names no valid principal (kid)")
    key = dict(clients.items()).get(principal)
    if key is None:
        raise _refused(f"unknown client {principal!r}: its key is not in this agent's "
                       "clients.key_files")
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=audience(domain),
            options={"require": list(_REQUIRED), "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False})
    except jwt.InvalidAudienceError:
        raise _refused(f"it is for another console (this is {domain}'s)") from None
    except jwt.InvalidSignatureError:
        raise _refused(f"bad signature from client {principal!r}") from None
    except jwt.InvalidTokenError as e:
        raise _refused(str(e)) from None
    if claims["sub"] != principal:
        raise _refused("its subject is not the principal whose key signed it")
    iat, exp = claims["iat"], claims["exp"]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (iat, exp)):
        raise _refused("iat and exp must be integers (seconds)")
    if exp - iat > MAX_TTL_S or exp <= iat:
        raise _refused(f"it may live at most {MAX_TTL_S} s")
    if iat > now_s + SKEW_S:
        raise _refused("issued in the future (check the clocks)")
    if exp <= now_s - SKEW_S:
        raise _refused("expired; make a new one with `fedorch console token`")
    scope, workflow = claims["scope"], claims.get("wf", "")
    if not isinstance(scope, str) or not isinstance(workflow, str):
        raise _refused("scope and wf must be strings")
    try:
        allow = frozenset(_check_allow(scope.split()))
    except ValueError as e:
        raise _refused(str(e)) from None
    return ConsoleGrant(principal, allow, exp, workflow)

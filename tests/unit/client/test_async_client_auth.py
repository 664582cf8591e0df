"""The Python client's identity and TLS arguments, checked without an agent: taken from
the constructor or, as the CLI, from $FEDORCH_IDENTITY / $FEDORCH_AGENT_KEY; a wrong
file is InvalidSpec naming the argument, at construction; refusals read as the CLI's."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from fedorch.client import InvalidSpec, NotAllowed
from fedorch.client.async_client import AsyncClient
from fedorch.client.errors import from_rpc_error
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.keys import init_keys


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key, pub = init_client_keys("alice@eu-west", tmp_path / "clients")
    init_keys("eu-west", tmp_path / "keys")
    return {"identity": key, "client_pub": pub, "agent_key": tmp_path / "keys" / "eu-west.pub"}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv("FEDORCH_IDENTITY", raising=False)
    monkeypatch.delenv("FEDORCH_AGENT_KEY", raising=False)


def test_identity_and_agent_key_from_arguments_or_the_environment(files, monkeypatch) -> None:
    plain = AsyncClient("127.0.0.1:1")
    assert plain.identity is None and plain.agent_key == ""

    given = AsyncClient("127.0.0.1:1", identity=files["identity"],
                        agent_key=files["agent_key"])
    assert given.identity.principal == "alice@eu-west"
    assert given.agent_key == str(files["agent_key"])
    loaded = load_identity(files["identity"])
    assert AsyncClient("127.0.0.1:1", identity=loaded).identity is loaded

    monkeypatch.setenv("FEDORCH_IDENTITY", str(files["identity"]))
    monkeypatch.setenv("FEDORCH_AGENT_KEY", str(files["agent_key"]))
    from_env = AsyncClient("127.0.0.1:1")
    assert from_env.identity.principal == "alice@eu-west"
    assert from_env.agent_key == str(files["agent_key"])
    # An empty argument opts out of what the environment says.
    opted_out = AsyncClient("127.0.0.1:1", identity="", agent_key="")
    assert opted_out.identity is None and opted_out.agent_key == ""


def test_a_wrong_identity_or_agent_key_file_is_invalid_at_construction(files) -> None:
    with pytest.raises(InvalidSpec, match=r"^identity: .*nope\.key: identity file not found"):
        AsyncClient("127.0.0.1:1", identity=files["identity"].parent / "nope.key")
    with pytest.raises(InvalidSpec, match="^identity: .*not a client identity file"):
        AsyncClient("127.0.0.1:1", identity=files["agent_key"])
    with pytest.raises(InvalidSpec, match="^agent_key: "):
        AsyncClient("127.0.0.1:1", agent_key=files["client_pub"])  # a client's, not a domain's
    with pytest.raises(InvalidSpec, match="^agent_key: "):
        AsyncClient("127.0.0.1:1", agent_key=files["agent_key"].parent / "nope.pub")
    with pytest.raises(InvalidSpec, match="^identity: a key file's path, got int"):
        AsyncClient("127.0.0.1:1", identity=3)  # type: ignore[arg-type]


class _Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_refusals_are_not_allowed_with_the_agents_one_line() -> None:
    unauthenticated = from_rpc_error(_Refused(
        grpc.StatusCode.UNAUTHENTICATED,
        "no client identity: 'submit'\n(give --identity FILE)"), "h:1")
    assert type(unauthenticated) is NotAllowed
    assert str(unauthenticated) == ("not authenticated by h:1: no client identity: 'submit' "
                                    "(give --identity FILE) (UNAUTHENTICATED)")
    denied = from_rpc_error(_Refused(grpc.StatusCode.PERMISSION_DENIED, ""), "h:1")
    assert type(denied) is NotAllowed
    assert str(denied) == "not allowed by h:1: PERMISSION_DENIED"

"""The `audit` expectation against real data dirs (written by the agent's own store): a
whole log holds, with an unsigned tail after its last checkpoint as `fedorch audit
verify` allows; a byte flipped in a stored record fails, naming the domain and the
record, exactly where `fedorch audit verify --data-dir` names it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.cli.main import cli
from fedorch.core.audit.chain import STARTED, b64, make_checkpoint, raw_public
from fedorch.gen.fedorch.v1 import scenario_pb2
from fedorch.runtime.store.audit_table import append_statement
from fedorch.runtime.store.store import Store
from fedorch.scenario.expect import check_all, check_audit
from fedorch.scenario.loader import parse_scenario_text
from fedorch.scenario.run import RunState

SCENARIO = """
name: t
domains:
  - name: a
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
  - name: b
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
workflows:
  - id: w
    to: a
    spec: {name: w, steps: [{id: s1, capability: work}]}
expect:
  - audit: {domains: ["*"]}
"""


class DataDirs:
    """The one thing the check asks of a federation: where each domain's data is."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def data_dir(self, name: str) -> Path:
        return self.root / name


def state_in(root: Path) -> RunState:
    loaded = parse_scenario_text(SCENARIO, "t.yaml", Path("."))
    return RunState(loaded, fed=DataDirs(root), rpc_timeout=1.0,  # type: ignore[arg-type]
                    emit=lambda e: None)


async def write_log(data_dir: Path, domain: str) -> None:
    """As an agent writes it: a start record naming its key, two more records, a
    checkpoint of the head signed with that key, then one record no checkpoint covers."""
    key = Ed25519PrivateKey.generate()
    store = await Store.open(data_dir)
    try:
        await store.apply([append_statement(STARTED, "", 1, {
            "domain": domain, "public_key": b64(raw_public(key.public_key())),
            "incarnation": 1})])
        await store.apply([append_statement("vote", f"{domain}.w1", 2, {"yes": True})])
        await store.apply([append_statement("decision", f"{domain}.w1", 3,
                                            {"outcome": "COMMIT"})])
        seq, head = await store.audit_head()
        await store.save_audit_checkpoint(make_checkpoint(domain, seq, head, 4, key.sign))
        await store.apply([append_statement("step_started", f"{domain}.w1", 5, {})])
    finally:
        await store.close()


def flip_a_byte_of(data_dir: Path, seq: int) -> None:
    with sqlite3.connect(data_dir / "agent.db") as conn:
        (body,) = conn.execute("SELECT body FROM audit WHERE seq=?", (seq,)).fetchone()
        changed = bytearray(body)
        changed[-3] ^= 0x01  # inside the JSON text: still readable, no longer the same
        conn.execute("UPDATE audit SET body=? WHERE seq=?", (bytes(changed), seq))


def cli_verify(data_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(data_dir)])
    return result.exit_code, result.output + (result.stderr or "")


async def test_whole_logs_verify_with_their_counts_and_unsigned_tail(tmp_path: Path) -> None:
    for domain in ("a", "b"):
        await write_log(tmp_path / domain, domain)
    state = state_in(tmp_path)
    [outcome] = await check_all(state, tmp_path / "runs")
    assert outcome.ok, outcome.seen
    assert outcome.seen == ("a: 4 records, 1 signed checkpoint, 1 after the last; "
                            "b: 4 records, 1 signed checkpoint, 1 after the last")
    # The same verdict as the command, tail included.
    code, said = cli_verify(tmp_path / "a")
    assert code == 0 and "intact: 4 records of a" in said and "1 records after" in said


async def test_a_flipped_byte_fails_naming_the_domain_and_the_record(tmp_path: Path) -> None:
    for domain in ("a", "b"):
        await write_log(tmp_path / domain, domain)
    flip_a_byte_of(tmp_path / "b", 2)
    outcome = check_audit(state_in(tmp_path), scenario_pb2.AuditExpectation(domains=["*"]))
    assert not outcome.ok
    assert outcome.seen == ("b: not intact: record 2: changed (its hash does not match "
                            "its content)")
    code, said = cli_verify(tmp_path / "b")
    assert code == 1 and "record 2: changed" in said
    # A domain not named is not read: the check of a alone still holds.
    assert check_audit(state_in(tmp_path), scenario_pb2.AuditExpectation(domains=["a"])).ok


async def test_a_tampered_tail_after_the_last_checkpoint_fails_too(tmp_path: Path) -> None:
    """Unsigned is not unchecked: the tail is still chained and hashed."""
    await write_log(tmp_path / "a", "a")
    flip_a_byte_of(tmp_path / "a", 4)
    outcome = check_audit(state_in(tmp_path), scenario_pb2.AuditExpectation(domains=["a"]))
    assert not outcome.ok and outcome.seen.startswith("a: not intact: record 4: changed")


async def test_too_few_records_or_no_log_fails(tmp_path: Path) -> None:
    await write_log(tmp_path / "a", "a")
    (tmp_path / "b").mkdir()  # a data dir its agent never wrote to
    outcome = check_audit(state_in(tmp_path),
                          scenario_pb2.AuditExpectation(domains=["a"], at_least_records=5))
    assert not outcome.ok and outcome.seen.startswith("a: only 4 records")
    assert check_audit(state_in(tmp_path),
                       scenario_pb2.AuditExpectation(domains=["a"], at_least_records=4)).ok
    outcome = check_audit(state_in(tmp_path), scenario_pb2.AuditExpectation(domains=["b"]))
    assert not outcome.ok and outcome.seen.startswith("b: ") and "agent.db" in outcome.seen

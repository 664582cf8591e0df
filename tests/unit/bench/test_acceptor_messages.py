"""The acceptor-set message count: it measures what the protocol sends."""

from __future__ import annotations

import pytest
from fedorch.bench.acceptor_messages import BOUNDED, EVERYONE, main, measure


def test_a_small_round_is_the_same_either_way() -> None:
    before, after = measure(3, EVERYONE), measure(3, BOUNDED)
    assert before["acceptors"] == after["acceptors"] == 4  # three participants and c
    assert before["by_type"] == after["by_type"]


def test_a_wide_round_has_five_acceptors_and_sends_far_fewer_accepted() -> None:
    before, after = measure(12, EVERYONE), measure(12, BOUNDED)
    assert (before["acceptors"], after["acceptors"]) == (13, 5)
    # Every acceptor tells every participant: the Accepted grow with acceptors × N.
    assert before["accepted"] > 12 * 12 and after["accepted"] <= 5 * (12 + 1)
    assert after["messages"] < before["messages"]
    # The rest of a workflow is the same: one PREPARE and one vote per participant.
    assert before["by_type"]["PrepareMsg"] == after["by_type"]["PrepareMsg"] == 12
    assert before["by_type"]["VoteMsg"] == after["by_type"]["VoteMsg"] == 12


def test_bad_sizes_are_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--sizes", "3,x"])
    assert e.value.code == 2 and "--sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--sizes", "0"])
    assert e.value.code == 2


def test_the_table_names_every_size(capsys) -> None:
    assert main(["--sizes", "2,6"]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 3 → 3 |" in out and "| 6 | 7 → 5 |" in out

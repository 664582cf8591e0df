"""A claim withdrawn (records.Disk.withdrawn) and the members' signed grants a claim
holds (records.Disk.claim_grants) in the node store: written with the epoch held and
read back as written, the grants byte for byte; a file made before those tables
existed opens with the rows it had and none of these (a claim withdrawn or granted by
that build stays in memory only, as it was), and takes them from then on."""

from __future__ import annotations

from fedorch.core.node.ready import DELETE, PUT, Op, Write
from fedorch.core.node.takeover_grants import SignedGrant, sign_grant
from fedorch.runtime.node_store import SqliteDurable

GRANT = sign_grant(lambda raw: b"sig:" + raw[-8:], "d1", "d0.w", 2, "d3",
                   ("d0", "d1", "d2"))


def test_a_withdrawal_and_a_claims_grants_read_back_as_written(tmp_path):
    path = tmp_path / "node.db"
    with SqliteDurable(path) as store:
        store.write([Write("takeover grant", [
            Op("claim_grants", PUT, "d0.w", (2, (GRANT,)))])])
        store.write([Write("takeover epoch", [
            Op("granted", PUT, "d0.w", (0, "d0")), Op("withdrawn", PUT, "d0.w", 2)])])
    with SqliteDurable(path) as store:
        loaded = store.load()
        assert loaded.granted == {"d0.w": (0, "d0")}
        assert loaded.withdrawn == {"d0.w": 2}
        (epoch, (grant,)), = loaded.claim_grants.values()
        assert epoch == 2 and isinstance(grant, SignedGrant)
        assert (grant.granter, grant.statement, grant.signature) \
            == (GRANT.granter, GRANT.statement, GRANT.signature)
        # Claimed again: the row goes in the write of the claim.
        store.write([Write("takeover epoch", [
            Op("granted", PUT, "d0.w", (2, "d3")), Op("withdrawn", DELETE, "d0.w")])])
    with SqliteDurable(path) as store:
        loaded = store.load()
        assert loaded.withdrawn == {} and loaded.granted == {"d0.w": (2, "d3")}


def test_a_file_of_an_older_build_opens_with_nothing_withdrawn(tmp_path):
    path = tmp_path / "node.db"
    with SqliteDurable(path) as store:  # as an older build left it: no such tables
        store.write([Write("a", [Op("granted", PUT, "d0.w", (0, "d0")),
                                 Op("epochs", PUT, "d0.w", (0, "d0"))])])
        store._con.execute("DROP TABLE node_withdrawn")
        store._con.execute("DROP TABLE node_claim_grants")
    with SqliteDurable(path) as store:
        loaded = store.load()
        assert loaded.granted == {"d0.w": (0, "d0")} == loaded.epochs
        assert loaded.withdrawn == {} and loaded.claim_grants == {}
        store.write([Write("b", [Op("withdrawn", PUT, "d0.w", 1)])])
    with SqliteDurable(path) as store:
        assert store.load().withdrawn == {"d0.w": 1}

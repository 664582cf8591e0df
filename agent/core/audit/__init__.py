"""The audit log's pure core: record encoding, the hash chain, signed checkpoints and
proofs of one workflow. No I/O: the runtime stores what these functions make, and the
CLI hands them what it read from a data dir or a proof file."""

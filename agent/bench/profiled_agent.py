"""`python -m fedorch.bench.profiled_agent OUT.prof agent run --config FILE`: an agent
whose event-loop thread is profiled (cProfile) over a window the benchmark chooses.

SIGUSR1 starts the profile, SIGUSR2 stops it and writes it to OUT.prof (through a
temporary file and a rename, so a reader never sees half of it). Only the thread that
runs the event loop is profiled: the SQLite and gRPC threads are not (their work is
counted otherwise: SQL statements from the metrics endpoint, CPU from /proc). cProfile
counts every call of a Python function, so the profile is read for its call counts
(signatures, verifications, tasks created, loop callbacks, encodings per workflow),
which do not depend on how busy the machine is; its times do.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys


def main(argv: list[str]) -> int:
    out, args = argv[0], argv[1:]
    profile = cProfile.Profile()

    def start(signum, frame) -> None:
        profile.enable()

    def stop(signum, frame) -> None:
        profile.disable()
        profile.dump_stats(out + ".part")
        os.replace(out + ".part", out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from fedorch.cli.main import cli

    return cli.main(args=args, prog_name="fedorch", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

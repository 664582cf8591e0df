"""Whether this machine can run the netns runner: root and the `ip` command."""

from __future__ import annotations

import os
import shutil


class NetnsUnavailable(Exception):
    """The netns runner cannot run here; the message says why."""


def netns_problem() -> str:
    """Why the netns runner cannot run here, or '' when it can."""
    if os.geteuid() != 0:
        return "the netns runner needs root (it creates network namespaces)"
    if shutil.which("ip") is None:
        return "the netns runner needs the `ip` command (iproute2)"
    return ""

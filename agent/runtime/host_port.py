"""``HOST:PORT`` addresses as the config and the CLI's ``--peer`` accept them."""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def parse_host_port(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv4, ``[IPv6]:port`` or a hostname); ValueError says why not.

    The host comes back without brackets. Shared with the CLI's ``--peer`` so the config
    and the command line accept exactly the same addresses.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        if not rest.startswith(":"):
            raise ValueError("expected [IPv6]:PORT, e.g. [::1]:7101")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("the port is missing, e.g. 127.0.0.1:7101")
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets, e.g. [::1]:7101")
        if not host:
            raise ValueError("the host is missing, e.g. 127.0.0.1:7101")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address") from None
        elif not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a valid host name")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False

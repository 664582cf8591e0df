"""Domain key files: one Ed25519 key pair per administrative domain.

The private key is PKCS8 PEM, created 0600 with O_EXCL so that it is never world-readable,
not even for a moment, and an existing identity is never overwritten. The public key file
is one text line that *names its domain* ("fedorch-ed25519 <domain> <base64 raw key>"), so
a trust list can be just a list of files. Every problem with a key file becomes a
KeyFileError whose one-line message names the file and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import os
import pathlib
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
PUB_PREFIX = "fedorch-ed25519"


class KeyFileError(ValueError):
    """A key file is missing, unreadable or malformed; the message names the file."""


def is_valid_domain(domain: object) -> bool:
    """True for a well-formed domain name (fullmatch: a trailing newline is not allowed)."""
    return isinstance(domain, str) and DOMAIN_RE.fullmatch(domain) is not None


def check_domain(domain: object) -> str:
    """Return `domain` or raise ValueError saying what a domain name may contain."""
    if not is_valid_domain(domain):
        raise ValueError(
            f"invalid domain name {domain!r}: use 1-63 characters from a-z, 0-9, '.', '-', "
            "starting with a letter or digit"
        )
    return domain  # type: ignore[return-value]


def public_key_line(domain: str, key: Ed25519PublicKey) -> str:
    """The one-line public key file content for `domain`."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{PUB_PREFIX} {check_domain(domain)} {base64.b64encode(raw).decode('ascii')}\n"


def write_new(path: pathlib.Path, data: bytes, mode: int) -> None:
    # O_EXCL: fail rather than overwrite, and no window where the file exists with looser mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may only have removed bits; make the mode exact
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def init_keys(domain: str, directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Create DIRECTORY/DOMAIN.key (0600) and DIRECTORY/DOMAIN.pub; never overwrite either."""
    check_domain(domain)
    directory = pathlib.Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = directory / f"{domain}.key"
    pub_path = directory / f"{domain}.pub"
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path}: already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_new(key_path, pem, 0o600)
    try:
        write_new(pub_path, public_key_line(domain, key.public_key()).encode("ascii"), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)  # do not leave half an identity behind
        raise
    return key_path, pub_path


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load a PKCS8 PEM Ed25519 private key; KeyFileError otherwise."""
    data = _read(path, "private key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{path}: private key is encrypted; use an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: private key is not Ed25519 ({type(key).__name__})")
    return key


def load_public_key_file(path: str | os.PathLike[str]) -> tuple[str, Ed25519PublicKey]:
    """Load a `.pub` file; return (domain named in the file, key)."""
    data = _read(path, "public key file")
    expected = f"expected one line '{PUB_PREFIX} <domain> <base64 key>'"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a fedorch public key file ({expected})") from None
    lines = text.strip().splitlines()
    parts = lines[0].split() if len(lines) == 1 else []
    if len(parts) != 3 or parts[0] != PUB_PREFIX:
        raise KeyFileError(f"{path}: not a fedorch public key file ({expected})")
    _, domain, b64 = parts
    if not is_valid_domain(domain):
        raise KeyFileError(f"{path}: invalid domain name {domain!r}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{path}: public key is not valid base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"{path}: public key must be 32 bytes, got {len(raw)}")
    try:
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyFileError(f"{path}: not a valid Ed25519 public key") from None
    return domain, key

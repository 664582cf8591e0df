"""A domain's key directory across rotations: `fedorch keys rotate` and `keys revoke`.

Beside DIR/NAME.key and DIR/NAME.pub, a domain that rotated keeps DIR/NAME.keyrecords:
one JSON object per line, each a signed record (key_records.py) with its fields spelled
out for people. The agent reads it next to its `key_file` (at start and on SIGHUP) and
publishes the records that lead to the key it holds, and the revocations of keys on that
path: a record left over from a rotation that never finished (a crash between writing
the record and the key) leads to no key anyone holds, and is never published.

Rotation writes the new key beside the old one first, then the record, then swaps the
files: a crash at any point leaves the old key in place (rerun the command). The old
private key is kept as DIR/NAME.retired-SERIAL.key (0600), for the operator to destroy.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.key_records import (
    KeyChange,
    KeyRecordError,
    make_revocation,
    make_rotation,
    open_record,
    raw_key,
)
from fedorch.core.identity.keys import (
    KeyFileError,
    check_domain,
    load_private_key,
    load_public_key_file,
    public_key_line,
    write_new,
)
from fedorch.gen.fedorch.v1 import keys_pb2

RECORDS_SUFFIX = ".keyrecords"


def records_path(key_file: str | os.PathLike[str]) -> pathlib.Path:
    """DIR/NAME.keyrecords for DIR/NAME.key."""
    return pathlib.Path(key_file).with_suffix(RECORDS_SUFFIX)


def read_records(path: pathlib.Path) -> list[KeyChange]:
    """The verified records of a .keyrecords file ([] when there is none);
    KeyFileError names the file and line of a bad one."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read key records ({e})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = base64.b64decode(json.loads(line)["record"], validate=True)
            out.append(open_record(keys_pb2.KeyRecord.FromString(raw)))
        except (ValueError, KeyError, TypeError) as e:  # JSON, base64, KeyRecordError
            raise KeyFileError(f"{path}:{n}: not a valid key record ({e})") from None
        except Exception as e:  # the protobuf parser's DecodeError
            raise KeyFileError(f"{path}:{n}: not a valid key record ({e})") from None
    return out


def own_chain(domain: str, key: bytes, changes: list[KeyChange]) -> tuple[bytes, list[KeyChange]]:
    """The oldest key that rotations lead from to `key`, and the records to publish:
    those rotations and the revocations of keys on that path."""
    mine = [c for c in changes if c.domain == domain]
    path = [key]
    used: list[KeyChange] = []
    while True:
        into = [c for c in mine if c.kind == "rotation" and c.new == path[0]
                and c.old not in path]
        if len(into) != 1:
            break
        used.insert(0, into[0])
        path.insert(0, into[0].old)
    used += [c for c in mine if c.kind == "revocation" and c.old in path]
    return path[0], used


def _append(path: pathlib.Path, change: KeyChange) -> None:
    line = json.dumps({
        "kind": change.kind, "domain": change.domain, "serial": change.serial,
        "issued_at_ms": change.issued_at_ms,
        "old": base64.b64encode(change.old).decode(), "new": base64.b64encode(change.new).decode(),
        "record": base64.b64encode(change.record.SerializeToString()).decode(),
    })
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class Rotated:
    key_file: pathlib.Path
    pub_file: pathlib.Path
    records_file: pathlib.Path
    retired_file: pathlib.Path
    change: KeyChange


def rotate_keys(domain: str, directory: pathlib.Path, now_ms: int) -> Rotated:
    """Replace DIR/DOMAIN.key with a new key; append the rotation record (signed by the
    old and the new key) to DIR/DOMAIN.keyrecords; rewrite DIR/DOMAIN.pub."""
    check_domain(domain)
    directory = pathlib.Path(directory)
    key_file, pub_file = directory / f"{domain}.key", directory / f"{domain}.pub"
    old = load_private_key(key_file)
    records_file = records_path(key_file)
    changes = read_records(records_file)
    serial = max((c.serial for c in changes), default=0) + 1
    new = Ed25519PrivateKey.generate()
    record = make_rotation(domain, old, new, serial=serial, now_ms=now_ms)
    change = open_record(record)
    staged = directory / f"{domain}.key.next"
    retired = directory / f"{domain}.retired-{serial}.key"
    staged.unlink(missing_ok=True)  # left by a rotation that crashed before its record
    write_new(staged, _pem(new), 0o600)
    _append(records_file, change)
    os.link(key_file, retired)
    os.replace(staged, key_file)
    pub_next = directory / f"{domain}.pub.next"
    pub_next.unlink(missing_ok=True)
    write_new(pub_next, public_key_line(domain, new.public_key()).encode(), 0o644)
    os.replace(pub_next, pub_file)
    return Rotated(key_file, pub_file, records_file, retired, change)


def revoke_key(domain: str, directory: pathlib.Path, now_ms: int,
               key_file: pathlib.Path | None = None) -> KeyChange:
    """Append a revocation to DIR/DOMAIN.keyrecords. Without `key_file`: the key the
    last rotation left (signed by its successor, the current key). With a private key
    file: that key, signed by itself. With a public key file: the current key itself,
    or a key the records show this one succeeded (signed by the current key)."""
    check_domain(domain)
    directory = pathlib.Path(directory)
    current = load_private_key(directory / f"{domain}.key")
    records_file = records_path(directory / f"{domain}.key")
    changes = read_records(records_file)
    serial = max((c.serial for c in changes), default=0) + 1
    current_raw = raw_key(current.public_key())
    successor = {c.old: c.new for c in changes if c.kind == "rotation"}
    if key_file is None:
        into = [c for c in changes if c.kind == "rotation" and c.new == current_raw]
        if not into:
            raise KeyRecordError(f"{records_file}: no rotation to the current key, so no"
                                 " earlier key to revoke; name one with --key FILE")
        target, signer = open_record(into[-1].record).old, current
    else:
        signer = None
        try:
            private = load_private_key(key_file)
            target, signer = raw_key(private.public_key()), private
        except KeyFileError:
            named, public = load_public_key_file(key_file)
            if named != domain:
                raise KeyRecordError(f"{key_file}: a key of {named!r}, not of {domain!r}") \
                    from None
            target = raw_key(public)
        if signer is None:
            if target == current_raw:
                signer = current
            elif successor.get(target) == current_raw:
                signer = current
            else:
                raise KeyRecordError(
                    f"{key_file}: this key is neither {domain}'s current key nor the one"
                    " its last rotation replaced; give its private key file to revoke it")
    record = make_revocation(domain, Ed25519PublicKey.from_public_bytes(target), signer, serial=serial, now_ms=now_ms)
    change = open_record(record)
    _append(records_file, change)
    return change


from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyRotation(_message.Message):
    __slots__ = ("old_public_key", "new_public_key")
    OLD_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NEW_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    old_public_key: bytes
    new_public_key: bytes
    def __init__(self, old_public_key: _Optional[bytes] = ..., new_public_key: _Optional[bytes] = ...) -> None: ...

class KeyRevocation(_message.Message):
    __slots__ = ("revoked_public_key", "signer_public_key")
    REVOKED_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    revoked_public_key: bytes
    signer_public_key: bytes
    def __init__(self, revoked_public_key: _Optional[bytes] = ..., signer_public_key: _Optional[bytes] = ...) -> None: ...

class KeyStatement(_message.Message):
    __slots__ = ("domain", "serial", "issued_at_ms", "rotation", "revocation")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    domain: str
    serial: int
    issued_at_ms: int
    rotation: KeyRotation
    revocation: KeyRevocation
    def __init__(self, domain: _Optional[str] = ..., serial: _Optional[int] = ..., issued_at_ms: _Optional[int] = ..., rotation: _Optional[_Union[KeyRotation, _Mapping]] = ..., revocation: _Optional[_Union[KeyRevocation, _Mapping]] = ...) -> None: ...

class KeyRecord(_message.Message):
    __slots__ = ("statement", "signatures")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    statement: bytes
    signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, statement: _Optional[bytes] = ..., signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

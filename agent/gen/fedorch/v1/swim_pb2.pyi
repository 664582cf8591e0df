from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SwimClaim(_message.Message):
    __slots__ = ("signer", "body", "signature")
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signer: str
    body: bytes
    signature: bytes
    def __init__(self, signer: _Optional[str] = ..., body: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SwimPing(_message.Message):
    __slots__ = ("seq", "sender", "target", "claims")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sender: str
    target: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, seq: _Optional[int] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimAck(_message.Message):
    __slots__ = ("seq", "sender", "claims")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sender: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, seq: _Optional[int] = ..., sender: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimPingReq(_message.Message):
    __slots__ = ("seq", "sender", "target", "target_address", "claims")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sender: str
    target: str
    target_address: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, seq: _Optional[int] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., target_address: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimIndirectAck(_message.Message):
    __slots__ = ("seq", "sender", "target", "claims")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sender: str
    target: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, seq: _Optional[int] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimNack(_message.Message):
    __slots__ = ("seq", "sender", "target", "claims")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sender: str
    target: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, seq: _Optional[int] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimGossip(_message.Message):
    __slots__ = ("sender", "claims")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, sender: _Optional[str] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimPushPull(_message.Message):
    __slots__ = ("sender", "reply", "claims")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    reply: bool
    claims: _containers.RepeatedCompositeFieldContainer[SwimClaim]
    def __init__(self, sender: _Optional[str] = ..., reply: _Optional[bool] = ..., claims: _Optional[_Iterable[_Union[SwimClaim, _Mapping]]] = ...) -> None: ...

class SwimMessage(_message.Message):
    __slots__ = ("ping", "ack", "ping_req", "indirect_ack", "nack", "gossip", "push_pull")
    PING_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    PING_REQ_FIELD_NUMBER: _ClassVar[int]
    INDIRECT_ACK_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    PUSH_PULL_FIELD_NUMBER: _ClassVar[int]
    ping: SwimPing
    ack: SwimAck
    ping_req: SwimPingReq
    indirect_ack: SwimIndirectAck
    nack: SwimNack
    gossip: SwimGossip
    push_pull: SwimPushPull
    def __init__(self, ping: _Optional[_Union[SwimPing, _Mapping]] = ..., ack: _Optional[_Union[SwimAck, _Mapping]] = ..., ping_req: _Optional[_Union[SwimPingReq, _Mapping]] = ..., indirect_ack: _Optional[_Union[SwimIndirectAck, _Mapping]] = ..., nack: _Optional[_Union[SwimNack, _Mapping]] = ..., gossip: _Optional[_Union[SwimGossip, _Mapping]] = ..., push_pull: _Optional[_Union[SwimPushPull, _Mapping]] = ...) -> None: ...

class SwimBatch(_message.Message):
    __slots__ = ("reply_to", "messages")
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    reply_to: str
    messages: _containers.RepeatedCompositeFieldContainer[SwimMessage]
    def __init__(self, reply_to: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[SwimMessage, _Mapping]]] = ...) -> None: ...

"""The pickle codec: any picklable Python value, optionally signed.

Unpickling runs code chosen by whoever wrote the bytes, so a pickle payload from a cache that
anyone else can write to is remote code execution. Give the serializer a ``secret``: it then signs
everything it writes and refuses to unpickle anything whose HMAC does not verify (and anything
unsigned). Without a secret, use pickle only with a cache that nothing untrusted can write to.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar, Final, Unpack

from cachekit.errors import ConfigurationError, SerializationError

from .base import CodecSerializer, SerializerOptions
from .header import Codec
from .reader import Decoder

__all__ = ["DEFAULT_PROTOCOL", "PickleSerializer", "make_decoder"]

#: Pinned rather than HIGHEST_PROTOCOL, so that a newer Python never writes what older ones in
#: the same deployment cannot read.
DEFAULT_PROTOCOL: Final = 5


def _refuse(body: bytes, extras: bytes) -> Any:
    raise SerializationError(
        "pickle payload refused: only a pickle serializer (or allow_pickle=True) unpickles"
    )


def _unpickle(body: bytes, extras: bytes) -> Any:
    try:
        return pickle.loads(body)
    # Unpickling runs the stored classes' own code (constructors, __setstate__) and imports
    # their modules: any error at all means this entry cannot be read by this process.
    except Exception as exc:
        raise SerializationError(f"cannot unpickle payload: {exc!r}") from exc


def make_decoder(*, allowed: bool) -> Decoder:
    """The pickle decoder of a reader; ``allowed=False`` refuses every pickle payload."""
    return _unpickle if allowed else _refuse


class PickleSerializer(CodecSerializer):
    """Any picklable value; with ``secret``, signed and verified before unpickling."""

    name: ClassVar[str] = "pickle"
    codec_id: ClassVar[Codec] = Codec.PICKLE
    reads_pickle: ClassVar[bool] = True

    def __init__(
        self, *, protocol: int = DEFAULT_PROTOCOL, **options: Unpack[SerializerOptions]
    ) -> None:
        if type(protocol) is not int or not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ConfigurationError(
                f"protocol must be an int from 2 to {pickle.HIGHEST_PROTOCOL}, got {protocol!r}",
                key="protocol",
            )
        super().__init__(**options)
        self.protocol = protocol
        self._encode = self._pickle  # a bound method: partial(protocol=...) costs a dict per call
        # Pickling calls the values' own __reduce__/__getstate__, which may raise anything.
        self._encode_errors = (Exception,)

    def _pickle(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

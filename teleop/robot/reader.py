"""Reading the robot's MCAP recordings: ``read`` (every message, in file order, up to the last
complete record of a file whose writer was killed), ``read_topic`` (one topic's data), and
``RecordingTail`` (follow a growing recording, as the soak does). Messages are JSON described by the
record structs (``telesurg.teleop.robot.records``), as ``telesurg.teleop.robot.recorder`` writes them."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import breakup_chunk

MCAP_MAGIC = b"\x89MCAP0\r\n"
#: The framing of every MCAP record: opcode, body length.
RECORD_HEADER = struct.Struct("<BQ")
_DECODE = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One recorded message: its topic, schema (struct class) name, times (ns) and decoded JSON."""

    topic: str
    schema_name: str
    log_time_ns: int
    publish_time_ns: int
    data: dict[str, Any]


def read(path: str | Path) -> Iterator[RecordedMessage]:
    """The messages of a file written by ``Recorder``, in file order (the order they were written).

    Reads complete files and truncated ones (a killed recorder: no summary, maybe half a record) alike:
    reading stops quietly at the first record that is cut short. A damaged complete record (a chunk
    whose checksum fails) raises.
    """
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    for record in _records(Path(path)):
        message = _message(record, schemas, channels)
        if message is not None:
            yield message


def _message(
    record: Schema | Channel | Message, schemas: dict[int, Schema], channels: dict[int, Channel]
) -> RecordedMessage | None:
    """Keeps schema and channel records in ``schemas``/``channels``; a message record decoded."""
    if isinstance(record, Schema):
        schemas[record.id] = record
    elif isinstance(record, Channel):
        channels[record.id] = record
    elif isinstance(record, Message):
        channel = channels[record.channel_id]
        schema = schemas.get(channel.schema_id)
        return RecordedMessage(
            topic=channel.topic,
            schema_name=schema.name if schema is not None else "",
            log_time_ns=record.log_time,
            publish_time_ns=record.publish_time,
            data=_DECODE(record.data),
        )
    return None


class RecordingTail:
    """Follows a recording while its writer (``Recorder``, ``ProcessRecorder``) is still writing it:
    each ``read_new()`` returns the messages flushed since the previous call, in file order, and
    never reads a byte twice (a soak judges an hour-long recording as it grows). A record still
    being written is left for the next call; ``finished`` turns true once the writer closed the file
    (its data section ended). A file that does not exist yet reads as empty."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.finished = False
        #: Where the next unread top-level record starts (bytes).
        self.offset = 0
        self.messages = 0
        self._schemas: dict[int, Schema] = {}
        self._channels: dict[int, Channel] = {}

    def read_new(self) -> list[RecordedMessage]:
        out: list[RecordedMessage] = []
        if self.finished or not self.path.exists():
            return out
        with open(self.path, "rb") as f:
            if self.offset == 0:
                magic = f.read(len(MCAP_MAGIC))
                if magic != MCAP_MAGIC[: len(magic)]:
                    raise ValueError(f"{self.path} is not an MCAP file")
                if len(magic) < len(MCAP_MAGIC):
                    return out
                self.offset = len(MCAP_MAGIC)
            f.seek(self.offset)
            for opcode, body in _frames(f):
                if opcode in (Opcode.DATA_END, Opcode.FOOTER):
                    self.finished = True
                    break
                if opcode == 0:
                    break  # zeros where a record should start: not written yet
                for record in _parse(opcode, body):
                    message = _message(record, self._schemas, self._channels)
                    if message is not None:
                        out.append(message)
                self.offset = f.tell()
        self.messages += len(out)
        return out


def read_topic(path: str | Path, topic: str) -> list[dict[str, Any]]:
    """The decoded messages of one topic, in file order."""
    return [msg.data for msg in read(path) if msg.topic == topic]


def _records(path: Path) -> Iterator[Schema | Channel | Message]:
    """Schema, channel and message records of the data section, chunks opened.

    The top-level framing (opcode, length, body) is walked here rather than by ``mcap``'s readers so that
    a record cut short by a kill is recognised by its length (and ends the file) instead of surfacing as
    whichever error the library's parser hits first. Parsing of whole records is left to ``mcap.records``.
    """
    with open(path, "rb") as f:
        magic = f.read(len(MCAP_MAGIC))
        if magic != MCAP_MAGIC[: len(magic)]:
            raise ValueError(f"{path} is not an MCAP file")
        for opcode, body in _frames(f):
            # Opcode 0 is reserved: a zero-filled tail (a power cut on some file systems) ends the data.
            if opcode in (0, Opcode.DATA_END, Opcode.FOOTER):
                return
            yield from _parse(opcode, body)


def _frames(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The top-level records (opcode, body) from the file's position on, up to the first one cut
    short (the file's position is then somewhere inside it). Opcodes 0, DATA_END and FOOTER come
    with an empty body and end the walk: the caller decides what they mean."""
    while True:
        header = f.read(RECORD_HEADER.size)
        if len(header) < RECORD_HEADER.size:
            return
        opcode, length = RECORD_HEADER.unpack(header)
        if opcode in (0, Opcode.DATA_END, Opcode.FOOTER):
            yield opcode, b""
            return
        body = f.read(length)
        if len(body) < length:
            return
        yield opcode, body


def _parse(opcode: int, body: bytes) -> Iterator[Schema | Channel | Message]:
    """The schema, channel and message records in one whole top-level record (a chunk opened)."""
    stream = ReadDataStream(io.BytesIO(body))
    if opcode == Opcode.CHUNK:
        for inner in breakup_chunk(Chunk.read(stream), validate_crc=True):
            if isinstance(inner, Schema | Channel | Message):
                yield inner
    elif opcode == Opcode.SCHEMA:
        yield Schema.read(stream)
    elif opcode == Opcode.CHANNEL:
        yield Channel.read(stream)
    elif opcode == Opcode.MESSAGE:
        yield Message.read(stream, len(body))


# ---------------------------------------------------------------------- schemas for Foxglove

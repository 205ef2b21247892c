"""The robot server's recorder and audit log: every message it sends, receives and decides, in an MCAP file.

Each topic is an MCAP channel of one ``msgspec.Struct`` type. Messages are JSON (``message_encoding
"json"``) described by a JSON schema (``schema encoding "jsonschema"``, schema name = the struct's class
name), which Foxglove opens directly. The schema is msgspec's own, reshaped into the subset that
Foxglove's JSON-schema parser accepts (see ``foxglove_schema``). msgspec writes non-finite floats as JSON
``null``. All times are integer nanoseconds: ``log_time_ns`` is when the server logged the message,
``publish_time_ns`` when it was sent or received (both on the clock the caller chooses; the robot server
uses the wall clock, and its records carry the robot's monotonic time as ``*_robot_s`` fields).

Durability: messages are gathered into compressed chunks. A chunk is closed and handed to the OS when
it reaches ``chunk_size_bytes`` and whenever a ``write`` (or ``maybe_flush``) finds more than
``flush_interval_s`` since the last flush. A file whose process is killed (even by SIGKILL) therefore
reads, with ``read``, up to its last flush: it loses at most the last ``flush_interval_s`` of messages
as long as the caller writes or calls ``maybe_flush`` at least that often. There is no fsync: a power
cut can lose what the OS had not yet written back.

Example::

    with Recorder("runs/session.mcap") as rec:
        tel = rec.channel("/telemetry", Telemetry)
        rec.write(tel, telemetry, log_time_ns=time.monotonic_ns())
    for msg in read("runs/session.mcap"):  # teleop.robot.reader
        print(msg.topic, msg.log_time_ns, msg.data)
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from mcap.data_stream import ReadDataStream, RecordBuilder
from mcap.records import ChunkIndex
from mcap.writer import CompressionType, Writer

from telesurg.teleop.robot.reader import RECORD_HEADER

if not hasattr(Writer, "flush"):  # closes the open chunk and flushes the stream; in the pinned mcap 1.6.0
    raise ImportError("telesurg.teleop.robot.recorder needs an mcap whose Writer has flush() (1.6.0 has it)")
#: Where mcap 1.6.0's Writer keeps every chunk's index until ``finish`` writes the summary.
_WRITER_CHUNK_INDEXES = "_Writer__chunk_indices"

_COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
_ENCODE = msgspec.json.Encoder().encode
#: A record's JSON, as ``Recorder.write_encoded`` takes it.
encode = _ENCODE


class Recorder:
    """Writes typed messages to a new MCAP file at ``path`` (parent directories are created).

    ``flush_interval_s`` bounds what a killed process loses; ``chunk_size_bytes`` (uncompressed) bounds
    a chunk; ``compression`` is ``"zstd"``, ``"lz4"`` or ``"none"``. An existing file is kept unless
    ``overwrite``. ``close`` (or leaving the ``with`` block) writes the summary and footer.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        flush_interval_s: float = 0.5,
        chunk_size_bytes: int = 1 << 20,
        compression: str = "zstd",
        overwrite: bool = False,
    ) -> None:
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(_COMPRESSION)}, not {compression!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = open(self.path, "wb" if overwrite else "xb")  # noqa: SIM115 (closed in close())
        except FileExistsError:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it") from None
        self._writer = Writer(self._file, chunk_size=chunk_size_bytes, compression=_COMPRESSION[compression])
        if not isinstance(getattr(self._writer, _WRITER_CHUNK_INDEXES, None), list):
            raise ImportError(
                "telesurg.teleop.robot.recorder needs mcap 1.6.0's Writer (it spills the Writer's chunk indexes)"
            )
        self._chunk_indexes = SpilledChunkIndexes(self.path.parent)
        setattr(self._writer, _WRITER_CHUNK_INDEXES, self._chunk_indexes)
        self._writer.start(profile="", library="telesurg")
        self._file.flush()  # the header is on disk: even a file killed at once is a valid (empty) MCAP
        self._flush_interval_s = flush_interval_s
        self._last_flush_s = time.monotonic()
        self._schemas: dict[type, int] = {}
        self._channels: dict[str, tuple[int, type]] = {}
        self._closed = False
        self.messages_written = 0

    def channel(self, topic: str, struct_type: type[msgspec.Struct]) -> int:
        """The channel id for ``topic`` carrying ``struct_type``, registered on first use."""
        known = self._channels.get(topic)
        if known is not None:
            if known[1] is not struct_type:
                raise ValueError(f"topic {topic!r} records {known[1].__name__}, not {struct_type.__name__}")
            return known[0]
        schema_id = self._schemas.get(struct_type)
        if schema_id is None:
            schema = json.dumps(foxglove_schema(struct_type)).encode()
            schema_id = self._writer.register_schema(struct_type.__name__, "jsonschema", schema)
            self._schemas[struct_type] = schema_id
        channel_id = self._writer.register_channel(topic, "json", schema_id)
        self._channels[topic] = (channel_id, struct_type)
        return channel_id

    def write(
        self, channel_id: int, message: msgspec.Struct, log_time_ns: int, publish_time_ns: int | None = None
    ) -> None:
        """Records ``message`` on ``channel_id``; ``publish_time_ns`` defaults to ``log_time_ns``.

        Cheap (a JSON encode and an append) except when it closes a chunk (size or flush interval).
        """
        self.write_encoded(channel_id, _ENCODE(message), log_time_ns, publish_time_ns)

    def write_encoded(self, channel_id: int, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """``write`` of a message already JSON-encoded (``encode``) by the caller."""
        if self._closed:
            raise ValueError(f"recorder for {self.path} is closed")
        publish = log_time_ns if publish_time_ns is None else publish_time_ns
        self._writer.add_message(channel_id, log_time_ns, data, publish)
        self.messages_written += 1
        if time.monotonic() - self._last_flush_s > self._flush_interval_s:
            self.flush()

    @property
    def flush_interval_s(self) -> float:
        return self._flush_interval_s

    def maybe_flush(self) -> None:
        """Flushes if more than ``flush_interval_s`` has passed since the last flush (for idle periods)."""
        if not self._closed and time.monotonic() - self._last_flush_s > self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Closes the open chunk and hands everything written so far to the OS (no fsync)."""
        self._writer.flush()
        self._last_flush_s = time.monotonic()

    def close(self) -> None:
        """Writes the summary and footer and closes the file; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
        finally:
            self._file.close()
            self._chunk_indexes.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpilledChunkIndexes:
    """Stands in for the list in which mcap's Writer keeps every chunk's index until ``finish``
    writes the summary. In memory that list grows by about 1 KB a chunk (18 MB an hour when a chunk
    closes every 0.2 s), so a recorder's memory would grow with the length of the session. Here each
    index is written, as its MCAP record, to an unlinked temporary file beside the recording (gone
    with the process, however it ends) and read back one by one when the summary is written."""

    def __init__(self, folder: Path) -> None:
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (closed in close())
        self._count = 0

    def append(self, index: ChunkIndex) -> None:
        builder = RecordBuilder()
        index.write(builder)
        self._file.write(builder.end())
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ChunkIndex]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self._count):
            _, length = RECORD_HEADER.unpack(self._file.read(RECORD_HEADER.size))
            yield ChunkIndex.read(ReadDataStream(io.BytesIO(self._file.read(length))))
        self._file.seek(0, io.SEEK_END)

    def close(self) -> None:
        self._file.close()


_SCALAR_TYPES = ("boolean", "string", "number", "integer")
_ENUM_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def foxglove_schema(struct_type: type[msgspec.Struct]) -> dict[str, Any]:
    """msgspec's JSON schema of ``struct_type`` in the form Foxglove's JSON-schema parser reads.

    That parser (Foxglove Studio's ``parseJsonSchema``) wants ``"type": "object"`` with ``properties`` at
    the root and a plain ``type`` on every field; it follows no ``$ref`` and knows no ``anyOf``,
    ``prefixItems`` or type-less ``enum``, and one such field makes the whole topic unreadable there. So
    references are inlined, tuples of one element type get ``items``, ``Literal`` enums get their
    ``type``, maps get empty ``properties``, and ``X | None`` is described as ``X`` (Foxglove has no
    nullable type, so a null there is the one value the schema does not admit). Fields with no such form
    (other unions, arrays of arrays, recursive structs) are left out, and their object then allows
    extra properties, so the schema still admits the message.
    """
    full = msgspec.json.schema(struct_type)
    root = _fit(full, full.get("$defs", {}), ())
    if root is None or root.get("type") != "object":
        raise ValueError(f"{struct_type.__name__} does not encode as a JSON object (array_like?)")
    root.pop("$defs", None)
    return root


def _fit(node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any] | None:
    """``node`` reshaped for Foxglove (references inlined), or None where Foxglove has no type for it."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return None  # a recursive struct cannot be inlined
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _fit({**defs[name], **rest}, defs, (*seen, name))
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            return None
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _fit({**rest, **options[0]}, defs, seen)
    node = dict(node)
    if "enum" in node and "type" not in node:
        kinds = {type(value) for value in node["enum"]}
        if len(kinds) != 1 or next(iter(kinds)) not in _ENUM_TYPES:
            return None
        node["type"] = _ENUM_TYPES[next(iter(kinds))]
    kind = node.get("type")
    if kind in _SCALAR_TYPES:
        return node
    if kind == "object":
        properties = {}
        for name, field in node.get("properties", {}).items():
            fitted = _fit(field, defs, seen)
            if fitted is None:
                node.pop("additionalProperties", None)
            else:
                properties[name] = fitted
        node["properties"] = properties
        if "required" in node:
            node["required"] = [name for name in node["required"] if name in properties]
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            fitted_extra = _fit(extra, defs, seen)
            if fitted_extra is None:
                del node["additionalProperties"]
            else:
                node["additionalProperties"] = fitted_extra
        return node
    if kind == "array":
        if "prefixItems" in node:
            prefix = [_fit(item, defs, seen) for item in node["prefixItems"]]
            if not prefix or prefix[0] is None or any(item != prefix[0] for item in prefix):
                return None  # an empty or mixed tuple has no Foxglove element type
            node["prefixItems"] = prefix
            items = prefix[0]
        else:
            items = _fit(node.get("items", {}), defs, seen)
        if items is None or items.get("type") not in (*_SCALAR_TYPES, "object"):
            return None
        node["items"] = items
        return node
    return None

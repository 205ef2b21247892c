"""MCAP recorder: round trip, Foxglove-readable schemas, refusal to overwrite, and reading what a killed
recorder (SIGKILL) or a chopped file leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from mcap.reader import make_reader

from telesurg.teleop.robot.reader import RecordingTail, read, read_topic
from telesurg.teleop.robot.recorder import Recorder, foxglove_schema
from telesurg.teleop.wire.protocol import Command, Pose, Telemetry

REPO = Path(__file__).resolve().parents[3]
MCAP_MAGIC = b"\x89MCAP0\r\n"


class Sample(msgspec.Struct):
    n: int
    x: float
    name: str
    pos_m: tuple[float, float, float]


class Event(msgspec.Struct, tag="event"):
    kind: Literal["engage", "estop"]
    pose: Pose
    detail: str | None = None
    tags: list[str] = []


class Tick(msgspec.Struct):
    n: int


def _foxglove_accepts(schema: dict[str, Any], where: str = "root") -> None:
    """The checks of Foxglove Studio's ``parseJsonSchema`` (packages/mcap-support), which throws on any
    field it cannot type (and then shows nothing of the topic)."""
    assert schema.get("type") == "object", f"{where}: not an object"
    assert isinstance(schema.get("properties"), dict), f"{where}: no properties"
    for name, field in schema["properties"].items():
        kind = field.get("type")
        if kind == "object":
            _foxglove_accepts(field, f"{where}.{name}")
        elif kind == "array":
            items = field.get("items")
            assert isinstance(items, dict), f"{where}.{name}: array without an items schema"
            assert items.get("type") in ("boolean", "string", "number", "integer", "object"), f"{where}.{name}"
            if items["type"] == "object":
                _foxglove_accepts(items, f"{where}.{name}[]")
        else:
            assert kind in ("boolean", "string", "number", "integer"), f"{where}.{name}: type {kind!r}"


def _messages(count: int) -> list[tuple[str, msgspec.Struct]]:
    out: list[tuple[str, msgspec.Struct]] = []
    for i in range(count):
        out.append(("/sample", Sample(n=i, x=i / 3.0, name=f"s{i}", pos_m=(0.1 * i, -0.25, 1e-9))))
        if i % 3 == 0:
            kind = "estop" if i % 2 else "engage"
            detail = None if i % 2 else f"by console {i}"
            out.append(("/event", Event(kind=kind, pose=Pose((0.0, 0.1, i / 7.0)), detail=detail, tags=["a"] * i)))
    return out


@pytest.mark.parametrize("compression", ["zstd", "lz4", "none"])
def test_round_trip_keeps_order_values_times_and_schema_names(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "nested" / "dir" / "run.mcap"
    sent = _messages(30)
    with Recorder(path, compression=compression) as rec:
        ids = {"/sample": rec.channel("/sample", Sample), "/event": rec.channel("/event", Event)}
        for i, (topic, message) in enumerate(sent):
            rec.write(ids[topic], message, log_time_ns=1_000 + i, publish_time_ns=None if i % 2 else 500 + i)
        assert rec.messages_written == len(sent)
    got = list(read(path))
    assert [m.topic for m in got] == [topic for topic, _ in sent]
    assert [m.schema_name for m in got] == [type(message).__name__ for _, message in sent]
    assert [m.log_time_ns for m in got] == [1_000 + i for i in range(len(sent))]
    assert [m.publish_time_ns for m in got] == [1_000 + i if i % 2 else 500 + i for i in range(len(sent))]
    for m, (_, message) in zip(got, sent, strict=True):
        assert msgspec.convert(m.data, type(message)) == message
    assert got[1].data["type"] == "event" and got[1].data["detail"] == "by console 0"
    assert read_topic(path, "/sample") == [m.data for m in got if m.topic == "/sample"]
    assert [d["n"] for d in read_topic(path, "/sample")] == list(range(30))


def test_complete_file_has_summary_and_foxglove_readable_json_schemas(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    sent = _messages(10)
    with Recorder(path) as rec:
        ids = {"/sample": rec.channel("/sample", Sample), "/event": rec.channel("/event", Event)}
        for i, (topic, message) in enumerate(sent):
            rec.write(ids[topic], message, log_time_ns=i)
    with open(path, "rb") as f:  # the mcap library's indexed reader: footer, summary and chunk indexes
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert summary.statistics.message_count == len(sent)
        assert reader.get_header().library == "telesurg"
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == {"Sample", "Event"}
        assert {c.topic: c.message_encoding for c in summary.channels.values()} == {"/sample": "json", "/event": "json"}
        assert sum(1 for _ in reader.iter_messages()) == len(sent)
    jsonschema = pytest.importorskip("jsonschema")
    for name, struct_type in (("Sample", Sample), ("Event", Event)):
        assert schemas[name].encoding == "jsonschema"
        schema = json.loads(schemas[name].data)
        assert "properties" in schema and schema["title"] == name
        _foxglove_accepts(schema)
        validator = jsonschema.Draft202012Validator(schema)
        validator.check_schema(schema)
        for _, message in sent:
            if isinstance(message, struct_type) and not (isinstance(message, Event) and message.detail is None):
                validator.validate(msgspec.json.decode(msgspec.json.encode(message)))


def test_memory_does_not_grow_with_the_number_of_chunks_and_every_chunk_is_indexed(tmp_path: Path) -> None:
    """A session's recorder closes a chunk at every flush (5 a second in the soak): what it keeps per
    chunk for the summary must not stay in memory, or its RSS grows with the session's length."""
    path = tmp_path / "long.mcap"
    sample = Sample(1, 0.5, "x", (0.0, 0.0, 0.0))
    chunks, per_chunk = 3000, 4
    with Recorder(path) as rec:
        channel = rec.channel("/sample", Sample)

        def write_chunks(first: int, count: int) -> None:
            for c in range(first, first + count):
                for m in range(per_chunk):
                    rec.write(channel, sample, log_time_ns=c * per_chunk + m)
                rec.flush()

        write_chunks(0, 500)  # every allocation that happens once has happened
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        write_chunks(500, chunks - 500)
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # An in-memory index is about 1 KB a chunk (2.5 MB here); allow 40 bytes a chunk.
    assert after - before < 40 * (chunks - 500), f"{after - before} bytes kept for {chunks - 500} chunks"
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and len(summary.chunk_indexes) == chunks
        starts = [index.message_start_time for index in summary.chunk_indexes]
        assert starts == [c * per_chunk for c in range(chunks)]
        late = list(reader.iter_messages(start_time=(chunks - 2) * per_chunk))  # found through the index
        assert [m.log_time for _, _, m in late] == list(range((chunks - 2) * per_chunk, chunks * per_chunk))


@pytest.mark.parametrize("struct_type", [Telemetry, Command, Sample, Event])
def test_schemas_of_recorded_types_pass_foxglove_checks_that_raw_msgspec_schemas_fail(struct_type: type) -> None:
    _foxglove_accepts(foxglove_schema(struct_type))
    with pytest.raises(AssertionError):  # $ref root, tuples as prefixItems: why the schema is reshaped
        _foxglove_accepts(msgspec.json.schema(struct_type))


def test_channel_is_registered_once_per_topic(tmp_path: Path) -> None:
    with Recorder(tmp_path / "run.mcap") as rec:
        first = rec.channel("/a", Tick)
        assert rec.channel("/a", Tick) == first
        assert rec.channel("/b", Tick) != first
        with pytest.raises(ValueError, match="/a"):
            rec.channel("/a", Sample)


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    with Recorder(path) as rec:
        rec.write(rec.channel("/tick", Tick), Tick(1), 1)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        Recorder(path)
    assert path.read_bytes() == before
    with Recorder(path, overwrite=True) as rec:
        rec.write(rec.channel("/tick", Tick), Tick(2), 2)
    assert read_topic(path, "/tick") == [{"n": 2}]


def test_close_is_idempotent_and_writing_after_it_fails(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "run.mcap")
    ch = rec.channel("/tick", Tick)
    rec.close()
    rec.close()
    with pytest.raises(ValueError, match="closed"):
        rec.write(ch, Tick(0), 0)


def test_nothing_reaches_the_file_before_a_flush_and_everything_after(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    rec = Recorder(path, flush_interval_s=3600.0)
    ch = rec.channel("/tick", Tick)
    for n in range(5):
        rec.write(ch, Tick(n), n)
    assert list(read(path)) == []  # still in the open chunk
    rec.flush()
    assert [d["n"] for d in read_topic(path, "/tick")] == [0, 1, 2, 3, 4]
    rec.write(ch, Tick(5), 5)
    rec.close()
    assert [d["n"] for d in read_topic(path, "/tick")] == [0, 1, 2, 3, 4, 5]


def test_flush_interval_elapsing_flushes_on_write_or_maybe_flush(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    rec = Recorder(path, flush_interval_s=0.05)
    ch = rec.channel("/tick", Tick)
    rec.write(ch, Tick(0), 0)
    time.sleep(0.1)
    rec.write(ch, Tick(1), 1)  # the interval has passed: this write closes the chunk
    assert [d["n"] for d in read_topic(path, "/tick")] == [0, 1]
    rec.write(ch, Tick(2), 2)
    time.sleep(0.1)
    rec.maybe_flush()  # an idle loop's way to bound the loss
    assert [d["n"] for d in read_topic(path, "/tick")] == [0, 1, 2]
    rec.close()


_KILLED_WRITER = """
import sys, time
import msgspec
from telesurg.teleop.robot.recorder import Recorder

class Tick(msgspec.Struct):
    n: int

rec = Recorder(sys.argv[1], flush_interval_s=0.2)
ch = rec.channel("/tick", Tick)
n = 0
last_print = start = time.monotonic()
while time.monotonic() < start + 10.0:  # the test kills it long before
    rec.write(ch, Tick(n), time.monotonic_ns())
    n += 1
    if time.monotonic() - last_print >= 0.2:
        print(f"wrote {n}", flush=True)
        last_print = time.monotonic()
    time.sleep(0.001)
"""


def test_a_recorder_killed_by_sigkill_leaves_every_message_up_to_its_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    progress: list[tuple[float, int]] = []  # (when the parent read it, messages written by then)
    try:
        assert proc.stdout is not None
        while len(progress) < 6:
            line = proc.stdout.readline()
            assert line.startswith("wrote "), f"writer stopped early: {line!r}"
            progress.append((time.monotonic(), int(line.split()[1])))
        time.sleep(0.1)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not path.read_bytes().endswith(MCAP_MAGIC)  # no footer: the truncated-file path was read

    ns = [m.data["n"] for m in read(path)]
    assert ns == list(range(len(ns)))
    # A count printed 0.4 s (two flush intervals) before the kill had been written before the print;
    # the next write after 0.2 s flushed it, with 0.2 s to spare for scheduling delays.
    settled = [n for received, n in progress if received <= killed_at - 0.4]
    assert settled, progress
    assert len(ns) >= settled[-1], (len(ns), progress)


def test_a_file_chopped_anywhere_reads_a_contiguous_prefix_without_error(tmp_path: Path) -> None:
    full = tmp_path / "full.mcap"
    with Recorder(full) as rec:
        ch = rec.channel("/tick", Tick)
        for n in range(200):
            rec.write(ch, Tick(n), n)
            if n % 40 == 39:
                rec.flush()  # chunks of 40 messages
    data = full.read_bytes()
    cut = tmp_path / "cut.mcap"
    counts = []
    for end in range(0, len(data) + 1, 5):
        cut.write_bytes(data[:end])
        ns = [m.data["n"] for m in read(cut)]
        assert ns == list(range(len(ns))), end
        counts.append(len(ns))
    assert counts == sorted(counts)
    assert set(counts) == {0, 40, 80, 120, 160, 200}  # every chunk readable on its own
    assert [m.data["n"] for m in read(full)] == list(range(200))

    # A zero-filled tail (what a power cut can leave) reads like the cut alone.
    half = len(data) // 2
    cut.write_bytes(data[:half])
    expected = [m.data for m in read(cut)]
    assert 0 < len(expected) < 200
    cut.write_bytes(data[:half] + bytes(4096))
    assert [m.data for m in read(cut)] == expected


def test_a_tail_reads_each_flushed_message_once_while_the_file_grows_and_sees_it_closed(tmp_path: Path) -> None:
    path = tmp_path / "live.mcap"
    tail = RecordingTail(path)
    assert tail.read_new() == [] and not tail.finished  # no file yet
    rec = Recorder(path, flush_interval_s=3600.0)
    ch = rec.channel("/tick", Tick)
    assert tail.read_new() == []  # the header alone
    for n in range(5):
        rec.write(ch, Tick(n), n)
    assert tail.read_new() == []  # still in the open chunk
    rec.flush()
    assert [m.data["n"] for m in tail.read_new()] == [0, 1, 2, 3, 4]
    assert tail.read_new() == []  # nothing read twice
    for n in range(5, 9):
        rec.write(ch, Tick(n), n)
    rec.close()
    got = tail.read_new()
    assert [m.data["n"] for m in got] == [5, 6, 7, 8] and got[0].topic == "/tick"
    assert tail.finished and tail.messages == 9
    assert tail.read_new() == []


def test_a_tail_left_halfway_through_a_record_goes_on_from_its_start(tmp_path: Path) -> None:
    full = tmp_path / "full.mcap"
    with Recorder(full) as rec:
        ch = rec.channel("/tick", Tick)
        for n in range(100):
            rec.write(ch, Tick(n), n)
            if n % 20 == 19:
                rec.flush()
    data = full.read_bytes()
    growing = tmp_path / "growing.mcap"
    tail = RecordingTail(growing)
    seen: list[int] = []
    for end in range(0, len(data) + 1, 97):  # the file grows in steps that cut records anywhere
        growing.write_bytes(data[:end])
        seen += [m.data["n"] for m in tail.read_new()]
    growing.write_bytes(data)
    seen += [m.data["n"] for m in tail.read_new()]
    assert seen == list(range(100)) and tail.finished


def test_not_an_mcap_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("surgeon notes\n")
    with pytest.raises(ValueError, match="not an MCAP file"):
        list(read(path))

"""The robot's recording in a process of its own: the control loop only encodes and hands bytes over.

``ProcessRecorder`` has the ``Recorder``'s job (an MCAP file, one channel per topic) but does the
chunking, compression and disk writes in a child process, so the real-time loop never shares the
interpreter lock with them. (A recorder thread in the loop's process, preempted while it held the
lock, kept the loop waiting: priority inversion, seen as control periods of tens of milliseconds.)

In the loop's process ``write`` costs one JSON encode (msgspec, microseconds) and one non-blocking
``write(2)`` of ``channel id, log time, length, JSON`` into a pipe (1 MiB where the OS allows:
seconds of recording). If the pipe is full the frame waits in an in-process backlog, retried on the
next write, so the loop never blocks and nothing is dropped; ``backlog_peak_bytes`` says how far the
recorder fell behind. The child flushes every ``flush_interval_s``; when the server exits — even
killed by SIGKILL — the pipe's end reaches the child, which records what was still in the pipe and
closes the file with its summary. The child ignores SIGINT (a terminal's Ctrl-C reaches the whole
process group): it ends when the server closes the pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import select
import signal
import struct
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from telesurg.teleop.robot.recorder import Recorder, encode

#: channel id, log time (ns), JSON length: the framing of every record in the pipe.
_FRAME = struct.Struct("<HQI")
#: Pipe capacity asked for (Linux caps unprivileged processes at /proc/sys/fs/pipe-max-size, 1 MiB).
PIPE_BYTES = 1 << 20
#: How long the child may take to open the file and register the channels (s).
START_TIMEOUT_S = 30.0
#: How long ``close`` waits for the child to write the rest and the summary (s).
CLOSE_TIMEOUT_S = 30.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class ProcessRecorder:
    """An MCAP recording at ``path`` written by a child process (see the module docstring).

    ``channels``: topic → record type, registered in this order before anything is written
    (``channel_ids`` holds their ids). ``cpus``: CPUs the child may run on (None: any); keep it off
    a real-time loop's CPU. ``options`` go to ``Recorder`` (``flush_interval_s``, ``compression``,
    ``chunk_size_bytes``). A file that exists, or cannot be created, raises here, in the caller.
    """

    def __init__(
        self,
        path: str | Path,
        channels: dict[str, type[msgspec.Struct]],
        cpus: set[int] | None = None,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():  # the child would refuse it too; say so here, as an OSError
            raise FileExistsError(f"{self.path} exists; a recording is never overwritten")
        ctx = multiprocessing.get_context("spawn")  # never fork a process with ZeroMQ threads
        reader, self._writer = ctx.Pipe(duplex=False)
        self._replies, child_replies = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child,
            args=(str(self.path), list(channels.items()), options, cpus, reader, child_replies),
            name="telesurg-recorder",
            daemon=False,
        )
        self._proc.start()
        reader.close()
        child_replies.close()
        self._fd = self._writer.fileno()
        with contextlib.suppress(OSError):  # a smaller pipe only means an earlier backlog
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._fd, False)
        self._backlog: deque[memoryview] = deque()
        self._backlog_bytes = 0
        self.backlog_peak_bytes = 0
        self.messages_written = 0
        self._error: str | None = None
        if not self._replies.poll(START_TIMEOUT_S):
            self._abort()
            raise RuntimeError(f"recording to {self.path}: the recorder process did not start")
        status, detail = self._replies.recv()
        if status != "ok":
            self._abort()
            raise OSError(f"recording to {self.path}: {detail}")
        self.channel_ids: dict[str, int] = detail

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def write(self, channel_id: int, message: msgspec.Struct, log_time_ns: int) -> None:
        """Hand ``message`` to the recorder process; never blocks (see the module docstring)."""
        if self._error is not None:
            raise RuntimeError(f"recording to {self.path} failed: {self._error}")
        data = encode(message)
        frame = memoryview(_FRAME.pack(channel_id, log_time_ns, len(data)) + data)
        self.messages_written += 1
        if self._backlog:
            self._queue(frame)
            self._drain()
            return
        sent = self._send(frame)
        if sent < len(frame):
            self._queue(frame[sent:])

    def _send(self, frame: memoryview) -> int:
        try:
            return os.write(self._fd, frame)
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            self._error = self._child_error()
            raise RuntimeError(f"recording to {self.path} failed: {self._error}") from None

    def _queue(self, frame: memoryview) -> None:
        self._backlog.append(frame)
        self._backlog_bytes += len(frame)
        self.backlog_peak_bytes = max(self.backlog_peak_bytes, self._backlog_bytes)

    def _drain(self) -> None:
        while self._backlog:
            frame = self._backlog[0]
            sent = self._send(frame)
            self._backlog_bytes -= sent
            if sent < len(frame):
                self._backlog[0] = frame[sent:]
                return
            self._backlog.popleft()

    def _child_error(self) -> str:
        self._proc.join(5)
        with contextlib.suppress(EOFError, OSError):
            if self._replies.poll(0):
                status, detail = self._replies.recv()
                if status == "error":
                    return str(detail)
        return f"the recorder process exited (code {self._proc.exitcode})"

    def close(self) -> None:
        """Hand over the backlog, close the pipe and wait for the child to close the file."""
        if self._writer.closed:
            return
        try:
            if self._error is None and self._backlog:
                os.set_blocking(self._fd, True)
                for frame in self._backlog:
                    with contextlib.suppress(BrokenPipeError):
                        os.write(self._fd, frame)
                self._backlog.clear()
        finally:
            self._writer.close()
        self._proc.join(CLOSE_TIMEOUT_S)
        if self._proc.exitcode is None:
            self._proc.kill()
            self._proc.join()
            raise RuntimeError(f"recording to {self.path}: the recorder did not finish in {CLOSE_TIMEOUT_S:g} s")
        if self._proc.exitcode != 0 and self._error is None:
            self._error = self._child_error()
        self._replies.close()
        if self._error is not None:
            raise RuntimeError(f"recording to {self.path} failed: {self._error}")

    def _abort(self) -> None:
        self._writer.close()
        self._proc.join(5)
        if self._proc.exitcode is None:
            self._proc.kill()
            self._proc.join()


def _child(
    path: str,
    channels: list[tuple[str, type[msgspec.Struct]]],
    options: dict[str, Any],
    cpus: set[int] | None,
    data: Connection,
    replies: Connection,
) -> None:
    """The recorder process: frames from the pipe into the MCAP file until the pipe ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpus:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)
    try:
        rec = Recorder(path, **options)
        ids = {topic: rec.channel(topic, struct_type) for topic, struct_type in channels}
    except Exception as exc:
        replies.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    replies.send(("ok", ids))
    fd = data.fileno()
    wait_s = rec.flush_interval_s / 2
    buf = bytearray()
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], wait_s)
            if ready:
                chunk = os.read(fd, PIPE_BYTES)
                if not chunk:
                    break  # the server closed the pipe, or exited
                buf += chunk
                used = 0
                while len(buf) - used >= _FRAME.size:
                    channel_id, log_time_ns, length = _FRAME.unpack_from(buf, used)
                    end = used + _FRAME.size + length
                    if end > len(buf):
                        break
                    rec.write_encoded(channel_id, bytes(buf[used + _FRAME.size : end]), log_time_ns)
                    used = end
                del buf[:used]
            rec.maybe_flush()
    except Exception as exc:
        with contextlib.suppress(OSError):
            replies.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        rec.close()

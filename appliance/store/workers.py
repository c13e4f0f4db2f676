"""Worker processes that read the store's packs for a job: a big restore's file writers
(protect/restore_worker.py), a tape set's frame makers (media/frame_worker.py). The work they take is bound to one
core by the GIL when done on the job's threads.

A worker is a fresh interpreter (`python -I -c`, started with subprocess: the daemon is multi-threaded, so it is
never forked: a forked child could inherit a lock some other thread held) running `MODULE.main(fd)` on its end of a
Unix socket pair. Messages go both ways pickled; the descriptors a message needs (the packs the worker has not seen
yet, a restore's destination directories) go right behind it with SCM_RIGHTS, so a worker reads packs a collection
may already have unlinked, exactly as the job's own process would.
"""

from __future__ import annotations

import gc
import os
import queue
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing import connection
from pathlib import Path

from appliance.errors import TapelineError

FDS_PER_MESSAGE = 200  # SCM_MAX_FD is 253
COLLECTOR_THRESHOLD = (50_000, 20, 100)  # see steady_collector
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def steady_collector() -> None:
    """For a process that runs jobs (the daemon, a worker): what it has built so far is left out of the cyclic
    garbage collector's walks (frozen), and a collection runs every COLLECTOR_THRESHOLD[0] new objects instead of
    700, a full one far more rarely still. A sync of 100,000 files makes rows and answers for each, and the
    collections they set off, each over the daemon's whole heap, took ~20% of the sync's own thread (perf); a tape
    set's index entries took ~1.8 s of its producer's ~6 s. Objects freed by reference counting, nearly all, are
    freed at once as before; only cycles wait longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLD)


class WorkerLost(TapelineError):
    """A worker process could not be started, or ended without answering (killed, or a bug)."""


class Blobs:
    """An answer with big byte strings beside it (a batch's frames): they go as raw messages behind it, not pickled
    into it, which copied each byte twice more."""

    __slots__ = ("value", "blobs")

    def __init__(self, value: object, blobs: list[bytes]) -> None:
        self.value, self.blobs = value, blobs


class WorkerFailed(TapelineError):
    """What a worker met that fails the job, as the job's own thread would have raised it (its message and fix)."""


def chunk_places(store, blob: bytes, where: dict[int, str]) -> list[tuple]:
    """`store.chunk_places(blob)`; `where` gets "pack NAME" for each descriptor new to it (a worker's error
    messages name the pack)."""
    places = store.chunk_places(blob)
    for fd, _, _, _, digest in places:
        if fd not in where:
            where[fd] = store.pack_of(digest)
    return places


def send_fds(sock: socket.socket, fds: list[int]) -> None:
    for at in range(0, len(fds), FDS_PER_MESSAGE):
        socket.send_fds(sock, [b"F"], fds[at:at + FDS_PER_MESSAGE])


def recv_fds(sock: socket.socket, count: int) -> list[int]:
    fds: list[int] = []
    while len(fds) < count:
        _, got, _, _ = socket.recv_fds(sock, 1, min(FDS_PER_MESSAGE, count - len(fds)))
        if not got:
            raise EOFError("the job ended the connection")
        fds += got
    return fds


class WorkerProcess:
    """One worker process. `job` names what it works for in messages ("restore"), `again` the command to run once
    the cause is mended ("the same `tapeline restore`")."""

    def __init__(self, module: str, config: object, job: str, again: str) -> None:
        # Any failure here is the job's, never one file's.
        self.job, self.again = job, again
        self.proc: subprocess.Popen | None = None
        self.sock = self.conn = None
        try:
            self.sock, theirs = socket.socketpair()
            code = (f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); "
                    f"from {module} import main; main({theirs.fileno()})")
            try:
                self.proc = subprocess.Popen([sys.executable, "-I", "-c", code], pass_fds=[theirs.fileno()],
                                             stdin=subprocess.DEVNULL)
            finally:
                theirs.close()
            self.conn = connection.Connection(os.dup(self.sock.fileno()))
            self.conn.send(config)
        except OSError as exc:
            self._close()
            raise WorkerLost(f"a {job} worker process could not be started ({exc.strerror or exc})",
                             f"check the daemon's limits (processes, open files, memory), then run {again} again"
                             ) from exc

    def send(self, message: object, fds: list[int] = ()) -> None:
        try:
            self.conn.send(message)
            send_fds(self.sock, list(fds))
        except OSError as exc:
            raise self._lost(exc) from None

    def answer(self) -> object:
        """The next answer; a failure the worker reported is raised here as the job's own thread raised it."""
        try:
            answer = self.conn.recv()
        except EOFError:
            raise self._lost() from None
        except OSError as exc:
            raise self._lost(exc) from None
        if isinstance(answer, tuple) and answer and answer[0] == "error":
            raise WorkerLost(f"a {self.job} worker process failed ({answer[1].strip().splitlines()[-1]})",
                             f"report it with the daemon's log, then run {self.again} again")
        if isinstance(answer, tuple) and answer and answer[0] == "failed":
            raise WorkerFailed(answer[1], answer[2])
        if isinstance(answer, tuple) and answer and answer[0] == "blobs":
            try:
                return Blobs(answer[1], [self.conn.recv_bytes() for _ in range(answer[2])])
            except EOFError:
                raise self._lost() from None
            except OSError as exc:
                raise self._lost(exc) from None
        return answer

    def _lost(self, exc: OSError | None = None) -> WorkerLost:
        """The worker is gone, or the connection to it broke while it lives (then it would wait for the rest of a
        message for ever): it is ended either way."""
        alive = self.proc.poll() is None
        if alive:
            self.proc.kill()
        code = self.proc.wait()
        cause = f"the connection to it failed: {exc.strerror or exc}" if alive and exc is not None else \
            f"exit status {code}"
        return WorkerLost(f"a {self.job} worker process ended unexpectedly ({cause})",
                          f"see the daemon's log, then run {self.again} again")

    def _close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for end in (self.conn, self.sock):
            if end is not None:
                end.close()

    def stop(self, busy: bool) -> None:
        """Ends the process: politely when it has nothing `busy`, else at once."""
        if busy:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.proc.kill()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._close()


def serve(fd: int, make, handle, fds_of) -> None:
    """A worker's side: `make(config)` builds its handler from the first message; then each message until None (or
    the end of the connection) is answered with `handle(handler, message, fds)`, `fds` the `fds_of(message)`
    descriptors that came behind it. A TapelineError is answered as ("failed", message, fix), anything else as
    ("error", traceback): the job fails and says so.

    Messages are taken, and answers sent, on threads of their own: the job's next message never waits for the
    batch in hand to be done (it would hold the job from handing work to the other workers meanwhile), and a big
    answer waiting for the job to read it never keeps the next message out."""
    sock = socket.socket(fileno=fd)
    conn = connection.Connection(os.dup(fd))
    handler = make(conn.recv())
    steady_collector()
    messages: queue.Queue = queue.Queue()
    answers: queue.Queue = queue.Queue()
    taker = threading.Thread(target=_take_messages, args=(conn, sock, fds_of, messages), name="messages",
                             daemon=True)  # blocked in recv when the job ends the worker with its last message
    sender = threading.Thread(target=_send_answers, args=(conn, answers), name="answers")
    taker.start()
    sender.start()
    try:
        while (item := messages.get()) is not _DONE:
            try:
                answers.put(handle(handler, *item))
            except TapelineError as exc:
                answers.put(("failed", exc.message, exc.fix))
            except Exception:
                answers.put(("error", traceback.format_exc()))
                return
    finally:
        answers.put(_DONE)
        sender.join()
        close = getattr(handler, "close", None)
        if close is not None:
            close()


_DONE = object()


def _take_messages(conn: connection.Connection, sock: socket.socket, fds_of, messages: queue.Queue) -> None:
    try:
        while (message := conn.recv()) is not None:
            messages.put((message, recv_fds(sock, fds_of(message))))
    except (EOFError, ConnectionError):
        pass
    finally:
        messages.put(_DONE)


def _send_answers(conn: connection.Connection, answers: queue.Queue) -> None:
    while (answer := answers.get()) is not _DONE:
        try:
            if isinstance(answer, Blobs):
                conn.send(("blobs", answer.value, len(answer.blobs)))
                for blob in answer.blobs:
                    conn.send_bytes(blob)
            else:
                conn.send(answer)
        except OSError:  # the job is gone: nothing to answer
            return

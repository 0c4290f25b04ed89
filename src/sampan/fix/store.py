"""Sequence numbers and sent business messages of one FIX session for one trading day.

Guarantees:
- Sequence numbers start at 1 for each (session, trading day) and survive restarts:
  `FileSessionStore` keeps one directory per session per day, so a new day starts fresh and
  the same day resumes where it stopped. Logon never resets them.
- The sequence-number file is replaced atomically (write a temporary file, fsync, rename), so
  a crash leaves either the old or the new numbers, never a torn file.
- Sent messages are appended to a log before the session hands them to the transport. A crash
  in the middle of an append leaves a torn last record, which reopening discards; reopening
  also never lets the next outgoing number fall at or below a logged message.
- Memory and disk are bounded: at most `messages_max` messages are kept; older ones are
  evicted (a resend then gap-fills them) and the log is compacted when it reaches twice that.
- Group commit (`group_commit=True`): a sent message is appended to the log at once (so a
  process crash keeps it) but made durable by `sync()`, one fsync for every message appended
  since the last one; the transport calls `sync()` before it writes anything to the peer, so
  no message leaves before it is durable. The sequence-number file is rewritten at `sync()`
  only when the log does not already imply it (numbers used by unstored session messages, a
  reset), so a busy session pays one fsync per group instead of three per message.

Limits: one process owns a session directory at a time (no file locking). With
`durable=False` writes are atomic against a process crash but not against power loss; tests use
it for speed. Old trading days are left on disk for operators to archive.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import Protocol

# A trading day of order entry on one CompID stays well below this; beyond it the oldest
# messages are evicted and can only be gap-filled on a resend.
MESSAGES_MAX = 200_000
_SEQNUMS_FILE = "seqnums.json"
_MESSAGES_FILE = "messages.log"
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_RECORD_HEADER_BYTES_MAX = 32


class SessionStore(Protocol):
    """What the session state machine needs from a store; implementations own persistence."""

    @property
    def next_sender_seq_num(self) -> int: ...

    @property
    def next_target_seq_num(self) -> int: ...

    def set_next_sender_seq_num(self, seq_num: int) -> None: ...

    def set_next_target_seq_num(self, seq_num: int) -> None: ...

    def save_sent(self, seq_num: int, raw: bytes) -> None:
        """Keep the encoded business message sent as `seq_num` for a later resend."""
        ...

    def load_sent(self, begin: int, end: int) -> dict[int, bytes]:
        """Kept messages with begin <= seq_num <= end (evicted ones are simply absent)."""
        ...

    @property
    def needs_sync(self) -> bool:
        """Whether something was written that `sync` has not made durable yet."""
        ...

    def sync(self) -> None:
        """Make everything written so far durable (the transport calls it before it sends)."""
        ...


class MemorySessionStore:
    """A store that forgets everything on exit: for tests and for sessions that need no
    recovery."""

    def __init__(self, messages_max: int = MESSAGES_MAX) -> None:
        assert messages_max > 0
        self._messages_max = messages_max
        self._next_sender = 1
        self._next_target = 1
        self._messages: OrderedDict[int, bytes] = OrderedDict()

    @property
    def next_sender_seq_num(self) -> int:
        return self._next_sender

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    def set_next_sender_seq_num(self, seq_num: int) -> None:
        assert seq_num >= 1
        self._next_sender = seq_num

    def set_next_target_seq_num(self, seq_num: int) -> None:
        assert seq_num >= 1
        self._next_target = seq_num

    def save_sent(self, seq_num: int, raw: bytes) -> None:
        _remember(self._messages, seq_num, raw, self._messages_max)

    def load_sent(self, begin: int, end: int) -> dict[int, bytes]:
        return {s: m for s, m in self._messages.items() if begin <= s <= end}

    @property
    def needs_sync(self) -> bool:
        return False

    def sync(self) -> None:
        return None


def _remember(messages: OrderedDict[int, bytes], seq_num: int, raw: bytes, cap: int) -> None:
    messages[seq_num] = raw
    messages.move_to_end(seq_num)
    while len(messages) > cap:
        messages.popitem(last=False)


def session_directory(root: Path, session_id: str, trading_day: date) -> Path:
    """Where one session's state for one trading day lives: `root/<session_id>/<YYYY-MM-DD>`."""
    if not _SESSION_ID_RE.fullmatch(session_id):
        raise ValueError(f"session id {session_id!r} is not a safe directory name")
    return root / session_id / trading_day.isoformat()


class FileSessionStore:
    """A `SessionStore` persisted under `session_directory(root, session_id, trading_day)`."""

    def __init__(
        self,
        root: Path,
        session_id: str,
        trading_day: date,
        *,
        messages_max: int = MESSAGES_MAX,
        durable: bool = True,
        group_commit: bool = False,
    ) -> None:
        assert messages_max > 0
        assert durable or not group_commit, "group commit is a way of being durable"
        self.directory = session_directory(root, session_id, trading_day)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._messages_max = messages_max
        self._durable = durable
        self._group_commit = group_commit
        self._messages: OrderedDict[int, bytes] = OrderedDict()
        self._next_sender, self._next_target = self._read_seqnums()
        self._written = (self._next_sender, self._next_target)  # as in the seqnums file
        self._log_records = self._read_log()
        self._last_logged = next(reversed(self._messages)) if self._messages else 0
        if self._messages:
            # The log may be ahead of the seqnum file if we crashed between the two writes.
            self._next_sender = max(self._next_sender, self._last_logged + 1)
        self._log_unsynced = False
        self._seqnums_unsynced = False
        self.syncs = 0  # fsyncs of the log by `sync()` (group commit), for tests and benchmarks
        self._log = open(self.directory / _MESSAGES_FILE, "ab")  # noqa: SIM115 - owned handle

    def close(self) -> None:
        self.sync()
        self._log.close()

    def __enter__(self) -> FileSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def next_sender_seq_num(self) -> int:
        return self._next_sender

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    def set_next_sender_seq_num(self, seq_num: int) -> None:
        assert seq_num >= 1
        self._next_sender = seq_num
        self._seqnums_changed()

    def set_next_target_seq_num(self, seq_num: int) -> None:
        assert seq_num >= 1
        self._next_target = seq_num
        self._seqnums_changed()

    def _seqnums_changed(self) -> None:
        if self._group_commit:
            self._seqnums_unsynced = True
        else:
            self._write_seqnums()

    def save_sent(self, seq_num: int, raw: bytes) -> None:
        self._log.write(b"%d %d\n" % (seq_num, len(raw)) + raw + b"\n")
        self._log.flush()
        if self._group_commit:
            self._log_unsynced = True
        elif self._durable:
            os.fsync(self._log.fileno())
        self._last_logged = seq_num
        _remember(self._messages, seq_num, raw, self._messages_max)
        self._log_records += 1
        if self._log_records >= 2 * self._messages_max:
            self._compact()

    def load_sent(self, begin: int, end: int) -> dict[int, bytes]:
        return {s: m for s, m in self._messages.items() if begin <= s <= end}

    @property
    def needs_sync(self) -> bool:
        return self._log_unsynced or self._seqnums_unsynced

    def sync(self) -> None:
        """One fsync for every message appended since the last call; the numbers file only
        when the log does not imply it (reopening takes the log's last number + 1)."""
        if self._log_unsynced:
            os.fsync(self._log.fileno())
            self._log_unsynced = False
            self.syncs += 1
        if self._seqnums_unsynced:
            # Reopening takes max(file, log's last + 1): a file number above the log's (before
            # a reset to 1) must be rewritten, or it would win.
            implied = (
                self._next_sender == self._last_logged + 1
                and self._written[0] <= self._next_sender
                and self._next_target == self._written[1]
            )
            if not implied:
                self._write_seqnums()
            self._seqnums_unsynced = False

    def _read_seqnums(self) -> tuple[int, int]:
        path = self.directory / _SEQNUMS_FILE
        if not path.exists():
            return 1, 1
        data = json.loads(path.read_text(encoding="ascii"))
        sender, target = int(data["next_sender_seq_num"]), int(data["next_target_seq_num"])
        if sender < 1 or target < 1:
            raise ValueError(f"{path}: sequence numbers must be positive")
        return sender, target

    def _write_seqnums(self) -> None:
        text = json.dumps(
            {"next_sender_seq_num": self._next_sender, "next_target_seq_num": self._next_target}
        )
        self._atomic_write(_SEQNUMS_FILE, text.encode("ascii"))
        self._written = (self._next_sender, self._next_target)

    def _atomic_write(self, name: str, data: bytes) -> None:
        tmp = self.directory / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if self._durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.directory / name)
        if self._durable:
            # The rename itself is only durable once the directory entry is on disk.
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _read_log(self) -> int:
        """Load the log's tail into memory; truncate a torn last record. Returns records read."""
        path = self.directory / _MESSAGES_FILE
        if not path.exists():
            return 0
        data = path.read_bytes()
        pos = records = 0
        while pos < len(data):
            header_end = data.find(b"\n", pos, pos + _RECORD_HEADER_BYTES_MAX)
            parsed = _parse_header(data[pos:header_end]) if header_end >= 0 else None
            if parsed is None:
                break
            seq_num, length = parsed
            end = header_end + 1 + length
            if end + 1 > len(data) or data[end : end + 1] != b"\n":
                break
            _remember(self._messages, seq_num, data[header_end + 1 : end], self._messages_max)
            records += 1
            pos = end + 1
        if pos < len(data):
            # A crash mid-append: the torn tail was never handed to the transport.
            with open(path, "r+b") as f:
                f.truncate(pos)
        return records

    def _compact(self) -> None:
        data = b"".join(b"%d %d\n" % (s, len(m)) + m + b"\n" for s, m in self._messages.items())
        self._log.close()
        self._atomic_write(_MESSAGES_FILE, data)
        self._log = open(self.directory / _MESSAGES_FILE, "ab")  # noqa: SIM115 - owned handle
        self._log_records = len(self._messages)
        self._log_unsynced = False  # the rewrite above is fsync'd when the store is durable


def _parse_header(line: bytes) -> tuple[int, int] | None:
    seq, _, length = line.partition(b" ")
    if not (seq.isdigit() and length.isdigit()):
        return None
    return int(seq), int(length)

"""A sans-I/O FIXT.1.1 session state machine, as OCG-C runs it, for either end of a link.

The transport (or a test) drives it: `connect` when TCP is up, `receive` for every decoded item,
`tick` whenever `next_deadline_ns` passes, `send` for business messages, `logout` to leave,
`disconnected` when TCP drops. Each call returns a `SessionOutput`: messages to write, business
messages to deliver to the application in sequence order, events (logon completed, session
ended) and whether to close the connection. Time is always passed in; nothing here reads a
clock, opens a socket or sleeps. The injected `SessionStore` holds sequence numbers and sent
messages; a file-backed store makes it durable, a memory store keeps it pure.

Guarantees:
- Inbound business messages, and the peer's session-level Rejects (35=3, which name one of
  our messages by RefSeqNum), are delivered exactly once and in MsgSeqNum order: a gap sends a
  ResendRequest (EndSeqNo 0, to the end) and later messages wait in a bounded queue; PossDup
  messages already seen are dropped; a too-low MsgSeqNum without PossDup ends the session.
- Logon's NextExpectedMsgSeqNum (789) drives recovery both ways: above our next outgoing
  number → Logout; equal → carry on; lower → replay from there. Business messages are resent
  with PossDupFlag and OrigSendingTime, session messages are replaced by SequenceReset-GapFill.
- Business messages sent while not logged on are numbered and stored, then delivered by that
  replay after the next logon (OCG-C delivers reports generated while a client was away).
- Silence is bounded: Heartbeat after one quiet interval, TestRequest after
  `test_request_after_intervals` silent ones, Logout and disconnect `disconnect_after_intervals`
  later. Logon, Logout and an unanswered resend each have a timeout.
- A business message whose header ApplVerID (1128) is not 9 (FIX 5.0 SP2) is refused with a
  Reject, SessionRejectReason 18, and not delivered.
- Illegal state transitions raise `SessionStateError` (a programmer error, not peer input).

Limits: no SendingTime accuracy check, no encryption, no mid-session day rollover (open a new
store per trading day), and a ResendRequest is answered for at most `resend_range_max`
messages at a time (the peer sees the remaining gap and asks again).
"""

from __future__ import annotations

import hmac

from sampan.fix.codec import (
    TAG_MSG_SEQ_NUM,
    TAG_MSG_TYPE,
    TAG_ORIG_SENDING_TIME,
    TAG_POSS_DUP_FLAG,
    TAG_SENDER_COMP_ID,
    TAG_SENDING_TIME,
    TAG_TARGET_COMP_ID,
    TAG_TEXT,
    DecodeError,
    DecodeErrorKind,
    FieldError,
    FixMessage,
    decode_one,
    encode,
    format_utc_timestamp,
)
from sampan.fix.session_types import (
    APPL_VER_ID_FIX50SP2,
    LOGGED_ON_STATES,
    LOGON_789_TOO_HIGH,
    MSG_HEARTBEAT,
    MSG_LOGON,
    MSG_LOGOUT,
    MSG_REJECT,
    MSG_RESEND_REQUEST,
    MSG_SEQUENCE_RESET,
    MSG_TEST_REQUEST,
    SESSION_MSG_TYPES,
    SESSION_STATUS_ACTIVE,
    SESSION_STATUS_INVALID_PASSWORD,
    TAG_APPL_VER_ID,
    TAG_BEGIN_SEQ_NO,
    TAG_DEFAULT_APPL_VER_ID,
    TAG_ENCRYPT_METHOD,
    TAG_END_SEQ_NO,
    TAG_GAP_FILL_FLAG,
    TAG_HEART_BT_INT,
    TAG_NEW_SEQ_NO,
    TAG_NEXT_EXPECTED_MSG_SEQ_NUM,
    TAG_PASSWORD,
    TAG_REF_MSG_TYPE,
    TAG_REF_SEQ_NUM,
    TAG_REF_TAG_ID,
    TAG_SESSION_REJECT_REASON,
    TAG_SESSION_STATUS,
    TAG_TEST_REQ_ID,
    LogonCompleted,
    OutputBatch,
    ProtocolIssue,
    SessionConfig,
    SessionEnded,
    SessionOutput,
    SessionRejectReason,
    SessionRole,
    SessionState,
    SessionStateError,
    check_transition,
)
from sampan.fix.store import SessionStore

_HEADER_TAGS = frozenset(
    {
        TAG_MSG_TYPE,
        TAG_SENDER_COMP_ID,
        TAG_TARGET_COMP_ID,
        TAG_MSG_SEQ_NUM,
        TAG_SENDING_TIME,
        TAG_POSS_DUP_FLAG,
        TAG_ORIG_SENDING_TIME,
    }
)
_NS_PER_S = 1_000_000_000


class Session:
    """One FIX session. Not thread-safe: drive it from one task."""

    def __init__(self, config: SessionConfig, store: SessionStore) -> None:
        self.config = config
        self.store = store
        self._state = SessionState.DISCONNECTED
        self._out = OutputBatch()
        self._now_ns = 0
        self._heartbeat_ns = config.heartbeat_interval_s * _NS_PER_S
        self._state_since_ns = 0
        self._last_sent_ns = 0
        self._last_received_ns = 0
        self._test_request_sent_ns: int | None = None
        # Out-of-order inbound messages by MsgSeqNum; None marks one already acted on (a
        # Logon or ResendRequest) whose number only needs to be consumed.
        self._queued: dict[int, FixMessage | None] = {}
        self._resend_target = 0  # highest inbound MsgSeqNum seen while a gap is open
        self._resend_begin = 0  # the BeginSeqNo we last asked for (or our Logon's 789)
        self._resend_progress_ns = 0

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_logged_on(self) -> bool:
        return self._state in LOGGED_ON_STATES

    def sent_message(self, seq_num: int) -> FixMessage | None:
        """The message we sent as `seq_num`, from the store (None when it is not kept): what a
        peer's Reject with that RefSeqNum refused."""
        if seq_num < 1:
            return None
        return _decode_stored(self.store.load_sent(seq_num, seq_num).get(seq_num))

    # ---- the driving API -------------------------------------------------------------

    def connect(self, now_ns: int) -> SessionOutput:
        """TCP is up: an initiator sends Logon, an acceptor starts waiting for one."""
        self._begin(now_ns)
        self._last_received_ns = now_ns
        if self.config.role is SessionRole.ACCEPTOR:
            self._to(SessionState.AWAITING_LOGON)
        else:
            self._to(SessionState.LOGON_SENT)
            self._emit(MSG_LOGON, self._logon_body())
        return self._out.freeze()

    def receive(self, item: FixMessage | DecodeError, now_ns: int) -> SessionOutput:
        """Handle one decoded inbound message or decoding error."""
        self._begin(now_ns)
        if self._state is SessionState.DISCONNECTED:
            raise SessionStateError("receive() while disconnected")
        if isinstance(item, DecodeError):
            self._on_decode_error(item)
        else:
            self._last_received_ns = now_ns
            self._test_request_sent_ns = None
            if self._state in (SessionState.AWAITING_LOGON, SessionState.LOGON_SENT):
                self._on_logon_phase(item)
            else:
                self._on_sequenced(item)
        return self._out.freeze()

    def send(self, msg: FixMessage, now_ns: int) -> SessionOutput:
        """Number, store and (when logged on) send a business message; returns what to write.

        Sent while not logged on, the message is kept and replayed after the next logon.
        """
        self._begin(now_ns)
        if msg.msg_type in SESSION_MSG_TYPES:
            raise SessionStateError(f"send() is for business messages, not {msg.msg_type!r}")
        self._emit(msg.msg_type, msg.fields[1:], store=True, transmit=self.is_logged_on)
        return self._out.freeze()

    def reject(
        self, msg: FixMessage, reason: SessionRejectReason, text: str, now_ns: int
    ) -> SessionOutput:
        """Refuse a delivered message at the session level (35=3, RefSeqNum its MsgSeqNum):
        the application found it unfit to act on."""
        self._begin(now_ns)
        seq = msg.msg_seq_num
        if not self.is_logged_on or seq is None:
            raise SessionStateError("reject() needs a logged-on session and a sequenced message")
        self._reject(seq, reason, text, ref_msg_type=msg.msg_type)
        return self._out.freeze()

    def logout(self, now_ns: int, text: str = "") -> SessionOutput:
        """Start an orderly Logout, or drop a connection that never logged on."""
        self._begin(now_ns)
        if self.is_logged_on:
            self._emit(MSG_LOGOUT, ((TAG_TEXT, text),) if text else ())
            self._to(SessionState.LOGOUT_SENT)
        elif self._state is not SessionState.DISCONNECTED:
            self._end(text or "logout before logon")
        else:
            raise SessionStateError("logout() while disconnected")
        return self._out.freeze()

    def disconnected(self, now_ns: int, reason: str) -> SessionOutput:
        """The transport lost the connection. Idempotent."""
        self._begin(now_ns)
        if self._state is not SessionState.DISCONNECTED:
            self._end(reason)
            self._out.disconnect = False  # already gone; nothing for the transport to close
        return self._out.freeze()

    def next_deadline_ns(self) -> int | None:
        """When `tick` next has work to do, or None while disconnected."""
        s, cfg = self._state, self.config
        if s is SessionState.DISCONNECTED:
            return None
        if s in (SessionState.AWAITING_LOGON, SessionState.LOGON_SENT):
            return self._state_since_ns + cfg.logon_timeout_s * _NS_PER_S
        if s is SessionState.LOGOUT_SENT:
            return self._state_since_ns + cfg.logout_timeout_s * _NS_PER_S
        hb = self._heartbeat_ns
        deadlines = [self._last_sent_ns + hb]
        if self._test_request_sent_ns is None:
            deadlines.append(self._last_received_ns + cfg.test_request_after_intervals * hb)
        else:
            deadlines.append(self._test_request_sent_ns + cfg.disconnect_after_intervals * hb)
        if s is SessionState.RESENDING:
            deadlines.append(self._resend_progress_ns + hb)
        return min(deadlines)

    def tick(self, now_ns: int) -> SessionOutput:
        """Run timers: heartbeats, test requests, timeouts, resend retries."""
        self._begin(now_ns)
        s, cfg, hb = self._state, self.config, self._heartbeat_ns
        if s is SessionState.DISCONNECTED:
            return self._out.freeze()
        deadline = self.next_deadline_ns()
        if s in (SessionState.AWAITING_LOGON, SessionState.LOGON_SENT):
            if deadline is not None and now_ns >= deadline:
                self._end("logon timeout")
        elif s is SessionState.LOGOUT_SENT:
            if deadline is not None and now_ns >= deadline:
                self._end("logout timeout")
        elif self._test_request_sent_ns is not None and (
            now_ns >= self._test_request_sent_ns + cfg.disconnect_after_intervals * hb
        ):
            self._emit(MSG_LOGOUT, ((TAG_TEXT, "heartbeat timeout"),))
            self._end("heartbeat timeout")
        else:
            if self._test_request_sent_ns is None and (
                now_ns >= self._last_received_ns + cfg.test_request_after_intervals * hb
            ):
                self._test_request_sent_ns = now_ns
                self._emit(MSG_TEST_REQUEST, ((TAG_TEST_REQ_ID, f"T{now_ns}"),))
            if s is SessionState.RESENDING and now_ns >= self._resend_progress_ns + hb:
                self._request_resend()  # the peer never answered or the answer was lost
            if now_ns >= self._last_sent_ns + hb:
                self._emit(MSG_HEARTBEAT, ())
        return self._out.freeze()

    # ---- inbound -----------------------------------------------------------------------

    def _on_decode_error(self, err: DecodeError) -> None:
        self._out.events.append(ProtocolIssue(f"{err.kind}: {err.detail}"))
        seq = err.msg_seq_num
        if err.kind is not DecodeErrorKind.MALFORMED or seq is None:
            # Garbled frames are ignored (FIXT session rules); the next good message
            # reveals the gap and recovery fetches the lost one.
            return
        if self._state in (SessionState.AWAITING_LOGON, SessionState.LOGON_SENT):
            self._end(f"malformed message before logon: {err.detail}")
            return
        expected = self.store.next_target_seq_num
        if seq == expected:
            self._reject(seq, SessionRejectReason.OTHER, err.detail)
            self._advance_target(seq + 1)
        elif seq > expected and self.is_logged_on:
            self._note_gap(seq)

    def _on_logon_phase(self, msg: FixMessage) -> None:
        if msg.msg_type == MSG_LOGOUT:
            self._end(f"logon refused: {msg.get(TAG_TEXT) or 'no reason given'}")
            return
        if msg.msg_type != MSG_LOGON:
            # FIXT: a first message other than Logon is answered by disconnecting.
            self._end(f"first message was {msg.msg_type!r}, not Logon")
            return
        if self._password_refused(msg):
            refused = "invalid username or password"
            self._emit(
                MSG_LOGOUT,
                ((TAG_SESSION_STATUS, SESSION_STATUS_INVALID_PASSWORD), (TAG_TEXT, refused)),
            )
            self._end(f"logon refused: {refused} (SenderCompID {msg.get(TAG_SENDER_COMP_ID)})")
            return
        problem = self._logon_problem(msg)
        if problem is not None:
            self._emit(MSG_LOGOUT, ((TAG_TEXT, problem),))
            self._end(problem)
            return
        seq = msg.require_int(TAG_MSG_SEQ_NUM)
        peer_expects = msg.require_int(TAG_NEXT_EXPECTED_MSG_SEQ_NUM)
        replay_end = self.store.next_sender_seq_num - 1
        expected = self.store.next_target_seq_num
        if seq == expected:
            self._advance_target(seq + 1)
        if self.config.role is SessionRole.ACCEPTOR:
            self._heartbeat_ns = msg.require_int(TAG_HEART_BT_INT) * _NS_PER_S
            self._emit(MSG_LOGON, self._logon_body())
        if seq > expected:
            # Our own Logon's 789 already asked the peer to replay; just wait for it.
            self._queued[seq] = None
            self._to(SessionState.RESENDING)
            self._resend_target = seq
            self._resend_begin = expected
            self._resend_progress_ns = self._now_ns
        else:
            self._to(SessionState.ACTIVE)
        self._out.events.append(
            LogonCompleted(
                self._heartbeat_ns // _NS_PER_S,
                self.store.next_sender_seq_num,
                self.store.next_target_seq_num,
            )
        )
        if peer_expects <= replay_end:
            # Bounded like any resend; the peer sees the rest as a gap and asks for it.
            self._replay(
                peer_expects, min(replay_end, peer_expects + self.config.resend_range_max - 1)
            )

    def _password_refused(self, msg: FixMessage) -> bool:
        """An acceptor with a password refuses a Logon without that password (compared in
        constant time); a Logon with the wrong CompIDs is refused by `_logon_problem` anyway."""
        expected = self.config.password
        if self.config.role is not SessionRole.ACCEPTOR or expected is None:
            return False
        given = msg.get(TAG_PASSWORD) or ""
        return not hmac.compare_digest(given.encode(), expected.encode())

    def _logon_problem(self, msg: FixMessage) -> str | None:
        """Why this Logon must be refused, or None. Runs before any state changes."""
        cfg = self.config
        if msg.get(TAG_SENDER_COMP_ID) != cfg.target_comp_id:
            return f"SenderCompID must be {cfg.target_comp_id}"
        if msg.get(TAG_TARGET_COMP_ID) != cfg.sender_comp_id:
            return f"TargetCompID must be {cfg.sender_comp_id}"
        if msg.get(TAG_DEFAULT_APPL_VER_ID) != APPL_VER_ID_FIX50SP2:
            return "DefaultApplVerID (1137) must be 9 (FIX50SP2)"
        try:
            seq = msg.require_int(TAG_MSG_SEQ_NUM)
            heartbeat_s = msg.require_int(TAG_HEART_BT_INT)
            peer_expects = msg.require_int(TAG_NEXT_EXPECTED_MSG_SEQ_NUM)
        except FieldError as exc:
            return f"Logon invalid: {exc}"
        if not cfg.heartbeat_interval_s_min <= heartbeat_s <= cfg.heartbeat_interval_s_max:
            return f"HeartBtInt {heartbeat_s} outside {cfg.heartbeat_interval_s_min}.."
        expected = self.store.next_target_seq_num
        if seq < expected and not msg.poss_dup:
            return f"MsgSeqNum too low, expecting {expected} but received {seq}"
        next_out = self.store.next_sender_seq_num
        if peer_expects < 1 or peer_expects > next_out:
            return LOGON_789_TOO_HIGH.format(peer_expects, next_out)
        return None

    def _on_sequenced(self, msg: FixMessage) -> None:
        seq = msg.msg_seq_num
        if seq is None:
            self._emit(MSG_LOGOUT, ((TAG_TEXT, "MsgSeqNum missing or invalid"),))
            self._end("MsgSeqNum missing or invalid")
            return
        if (
            msg.get(TAG_SENDER_COMP_ID) != self.config.target_comp_id
            or msg.get(TAG_TARGET_COMP_ID) != self.config.sender_comp_id
        ):
            self._reject(seq, SessionRejectReason.COMPID_PROBLEM, "CompID problem")
            self._emit(MSG_LOGOUT, ((TAG_TEXT, "CompID problem"),))
            self._end("CompID problem")
            return
        acted_on = False
        if msg.msg_type == MSG_RESEND_REQUEST:
            # Answered whatever its number: both ends may have gaps at once, and each
            # waiting for the other's ResendRequest to come in order would deadlock.
            acted_on = self._answer_resend(msg)
        expected = self.store.next_target_seq_num
        if seq < expected:
            if not msg.poss_dup:
                text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
                self._emit(MSG_LOGOUT, ((TAG_TEXT, text),))
                self._end(text)
            return  # a PossDup we already processed
        if seq > expected:
            if msg.msg_type == MSG_LOGOUT:
                # Leaving anyway; the next Logon's 789 recovers whatever is missing.
                self._finish_logout(msg)
                return
            if self._state is SessionState.LOGOUT_SENT:
                return  # no recovery while leaving; only the peer's Logout matters now
            if len(self._queued) < self.config.queued_messages_max:
                self._queued[seq] = None if acted_on else msg
            self._note_gap(seq)
            return
        self._process_in_order(msg, acted_on)
        while self._state in LOGGED_ON_STATES and self.store.next_target_seq_num in self._queued:
            n = self.store.next_target_seq_num
            queued = self._queued.pop(n)
            if queued is None:
                self._advance_target(n + 1)
            else:
                self._process_in_order(queued, acted_on=False)
        self._after_progress()

    def _process_in_order(self, msg: FixMessage, acted_on: bool) -> None:
        seq = msg.msg_seq_num
        assert seq is not None and seq == self.store.next_target_seq_num
        mt = msg.msg_type
        try:
            if mt == MSG_SEQUENCE_RESET:
                self._apply_sequence_reset(msg, seq)
                return
            if mt == MSG_TEST_REQUEST:
                self._emit(MSG_HEARTBEAT, ((TAG_TEST_REQ_ID, msg.require(TAG_TEST_REQ_ID)),))
            elif mt == MSG_RESEND_REQUEST and not acted_on:
                self._answer_resend(msg, strict=True)
            elif mt == MSG_REJECT:
                # The peer refused one of our messages: the application must know which one
                # (RefSeqNum) to end what it stood for, so the Reject is delivered like a
                # business message, in sequence.
                self._out.events.append(ProtocolIssue(f"peer rejected: {msg.fields[1:]}"))
                self._out.delivered.append(msg)
            elif mt not in SESSION_MSG_TYPES and msg.get(TAG_APPL_VER_ID) not in (
                None,
                APPL_VER_ID_FIX50SP2,
            ):
                self._reject(
                    seq,
                    SessionRejectReason.INVALID_APPL_VER_ID,
                    f"ApplVerID {msg.get(TAG_APPL_VER_ID)!r} unsupported; only 9 (FIX50SP2)",
                    ref_tag=TAG_APPL_VER_ID,
                    ref_msg_type=mt,
                )
            elif mt == MSG_LOGOUT:
                self._advance_target(seq + 1)
                self._finish_logout(msg)
                return
            elif mt == MSG_LOGON:
                self._emit(MSG_LOGOUT, ((TAG_TEXT, "Logon while logged on"),))
                self._end("Logon while logged on")
                return
            elif mt not in SESSION_MSG_TYPES:
                self._out.delivered.append(msg)
        except FieldError as exc:
            reason = (
                SessionRejectReason.REQUIRED_TAG_MISSING
                if exc.reason == "required field missing"
                else SessionRejectReason.INCORRECT_DATA_FORMAT
            )
            self._reject(seq, reason, str(exc), ref_tag=exc.tag, ref_msg_type=mt)
        self._advance_target(seq + 1)

    def _apply_sequence_reset(self, msg: FixMessage, seq: int) -> None:
        new_seq = msg.require_int(TAG_NEW_SEQ_NO)
        if new_seq <= seq:
            self._reject(seq, SessionRejectReason.VALUE_INCORRECT, f"NewSeqNo {new_seq} too low")
            self._advance_target(seq + 1)
            return
        self._advance_target(new_seq)
        # Queued messages inside the skipped range will never be processed.
        for n in [n for n in self._queued if n < new_seq]:
            del self._queued[n]

    def _finish_logout(self, msg: FixMessage) -> None:
        if self._state is not SessionState.LOGOUT_SENT:
            self._emit(MSG_LOGOUT, ())
        self._end(f"logout: {msg.get(TAG_TEXT) or 'by peer'}")

    def _advance_target(self, next_seq: int) -> None:
        self.store.set_next_target_seq_num(next_seq)
        self._resend_progress_ns = self._now_ns

    def _note_gap(self, seq: int) -> None:
        self._resend_target = max(self._resend_target, seq)
        if self._state is SessionState.ACTIVE:
            self._to(SessionState.RESENDING)
            self._request_resend()
        elif self.store.next_target_seq_num > self._resend_begin:
            # Progress since our last request, then a fresh hole: the replay itself lost a
            # message. Without progress the hole is the one we already asked about.
            self._request_resend()

    def _request_resend(self) -> None:
        begin = self.store.next_target_seq_num
        self._resend_begin = begin
        self._resend_progress_ns = self._now_ns
        self._emit(MSG_RESEND_REQUEST, ((TAG_BEGIN_SEQ_NO, str(begin)), (TAG_END_SEQ_NO, "0")))

    def _after_progress(self) -> None:
        if self._state is SessionState.RESENDING and (
            self.store.next_target_seq_num > self._resend_target
        ):
            self._to(SessionState.ACTIVE)
            self._queued.clear()

    # ---- outbound ----------------------------------------------------------------------

    def _answer_resend(self, msg: FixMessage, strict: bool = False) -> bool:
        """Replay what the peer asked for; True when answered. `strict` raises on bad fields."""
        try:
            begin = msg.require_int(TAG_BEGIN_SEQ_NO)
            end = msg.require_int(TAG_END_SEQ_NO)
        except FieldError:
            if strict:
                raise
            return False
        last_sent = self.store.next_sender_seq_num - 1
        if begin < 1 or end < 0 or (end != 0 and end < begin):
            if strict:
                raise FieldError(TAG_BEGIN_SEQ_NO, f"bad range {begin}..{end}")
            return False
        end = last_sent if end == 0 or end > last_sent else end
        end = min(end, begin + self.config.resend_range_max - 1)
        if begin <= end:
            self._replay(begin, end)
        else:
            self._out.events.append(ProtocolIssue(f"resend from {begin}, last sent {last_sent}"))
        return True

    def _replay(self, begin: int, end: int) -> None:
        """Resend [begin, end]: stored business messages as PossDup, the rest gap-filled."""
        stored = self.store.load_sent(begin, end)
        gap_start: int | None = None
        for seq in range(begin, end + 1):
            original = _decode_stored(stored.get(seq))
            if original is None:
                gap_start = seq if gap_start is None else gap_start
                continue
            if gap_start is not None:
                self._gap_fill(gap_start, seq)
                gap_start = None
            body = tuple((t, v) for t, v in original.fields if t not in _HEADER_TAGS)
            orig_time = original.get(TAG_SENDING_TIME) or format_utc_timestamp(self._now_ns)
            self._out.outbound.append(
                FixMessage(self._header(original.msg_type, seq, orig_time) + body)
            )
        if gap_start is not None:
            self._gap_fill(gap_start, end + 1)
        self._last_sent_ns = self._now_ns

    def _gap_fill(self, seq: int, new_seq: int) -> None:
        now = format_utc_timestamp(self._now_ns)
        body = ((TAG_GAP_FILL_FLAG, "Y"), (TAG_NEW_SEQ_NO, str(new_seq)))
        self._out.outbound.append(FixMessage(self._header(MSG_SEQUENCE_RESET, seq, now) + body))

    def _header(
        self, msg_type: str, seq: int, orig_sending_time: str | None = None
    ) -> tuple[tuple[int, str], ...]:
        header: tuple[tuple[int, str], ...] = (
            (TAG_MSG_TYPE, msg_type),
            (TAG_SENDER_COMP_ID, self.config.sender_comp_id),
            (TAG_TARGET_COMP_ID, self.config.target_comp_id),
            (TAG_MSG_SEQ_NUM, str(seq)),
            (TAG_SENDING_TIME, format_utc_timestamp(self._now_ns)),
        )
        if orig_sending_time is not None:
            header += ((TAG_POSS_DUP_FLAG, "Y"), (TAG_ORIG_SENDING_TIME, orig_sending_time))
        return header

    def _emit(
        self,
        msg_type: str,
        body: tuple[tuple[int, str], ...],
        *,
        store: bool = False,
        transmit: bool = True,
    ) -> None:
        seq = self.store.next_sender_seq_num
        msg = FixMessage(self._header(msg_type, seq) + body)
        if store:
            # Stored before the transport sees it, so a crash can never lose a sent message.
            self.store.save_sent(seq, encode(msg))
        self.store.set_next_sender_seq_num(seq + 1)
        if transmit:
            self._out.outbound.append(msg)
            self._last_sent_ns = self._now_ns

    def _logon_body(self) -> tuple[tuple[int, str], ...]:
        body: tuple[tuple[int, str], ...] = (
            (TAG_ENCRYPT_METHOD, "0"),
            (TAG_HEART_BT_INT, str(self._heartbeat_ns // _NS_PER_S)),
            (TAG_NEXT_EXPECTED_MSG_SEQ_NUM, str(self.store.next_target_seq_num)),
            (TAG_DEFAULT_APPL_VER_ID, APPL_VER_ID_FIX50SP2),
        )
        if self.config.role is SessionRole.INITIATOR and self.config.password is not None:
            body += ((TAG_PASSWORD, self.config.password),)  # a Logon is never stored
        if self.config.role is SessionRole.ACCEPTOR and self.config.password is not None:
            body += ((TAG_SESSION_STATUS, SESSION_STATUS_ACTIVE),)
        return body

    def _reject(
        self,
        ref_seq: int,
        reason: SessionRejectReason,
        text: str,
        *,
        ref_tag: int | None = None,
        ref_msg_type: str | None = None,
    ) -> None:
        body: list[tuple[int, str]] = [(TAG_REF_SEQ_NUM, str(ref_seq))]
        if ref_tag is not None:
            body.append((TAG_REF_TAG_ID, str(ref_tag)))
        if ref_msg_type is not None:
            body.append((TAG_REF_MSG_TYPE, ref_msg_type))
        body += [(TAG_SESSION_REJECT_REASON, str(int(reason))), (TAG_TEXT, text[:200])]
        self._emit(MSG_REJECT, tuple(body))
        self._out.events.append(ProtocolIssue(f"rejected {ref_seq}: {text}"))

    # ---- state -------------------------------------------------------------------------

    def _begin(self, now_ns: int) -> None:
        self._out = OutputBatch()
        self._now_ns = now_ns

    def _to(self, new: SessionState) -> None:
        check_transition(self._state, new)
        self._state = new
        self._state_since_ns = self._now_ns

    def _end(self, reason: str) -> None:
        was_logged_on = self._state in LOGGED_ON_STATES or self._state is SessionState.LOGOUT_SENT
        self._to(SessionState.DISCONNECTED)
        self._queued.clear()
        self._test_request_sent_ns = None
        self._resend_target = self._resend_begin = 0
        self._heartbeat_ns = self.config.heartbeat_interval_s * _NS_PER_S
        self._out.events.append(SessionEnded(reason, was_logged_on))
        self._out.disconnect = True


def _decode_stored(raw: bytes | None) -> FixMessage | None:
    if raw is None:
        return None
    try:
        return decode_one(raw)
    except ValueError:
        return None  # a damaged stored copy can only be gap-filled

"""Timed delivery of replies: one heap of due times for all streams, served by a single timer.

Per-token ``asyncio.sleep`` tasks cost a task switch and a timer per token and drift as sleeps
overrun; here every write is due at an absolute time computed from receipt, so a late wake-up
delays one chunk but never shifts the ones after it, and one wake-up writes every chunk due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import sys
import traceback
from time import monotonic_ns

from loadtest.sim.generate import Plan, RequestError, completion_body, token_text, usage_json
from loadtest.sim.state import Conn, SimState, Stats
from loadtest.sim.tools import tool_choices, tool_message
from loadtest.timer import make_timer

SSE_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n")
END_OF_BODY = b"0\r\n\r\n"


class Scheduler:
    """A min-heap of (due_ns, seq, stream) behind one precise timer armed for its head."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Stats) -> None:
        self._stats = stats
        self._heap: list[tuple[int, int, Stream]] = []
        self._seq = itertools.count()
        self._timer = make_timer(loop, self._run)
        self._armed_ns: int | None = None
        self._running = False

    def push(self, due_ns: int, stream: Stream) -> None:
        heapq.heappush(self._heap, (due_ns, next(self._seq), stream))
        # While running, _run re-arms once at the end instead of on every push.
        if not self._running and (self._armed_ns is None or due_ns < self._armed_ns):
            self._armed_ns = due_ns
            self._timer.arm(due_ns)

    def close(self) -> None:
        self._timer.close()
        self._heap.clear()

    def _run(self) -> None:
        self._armed_ns = None
        self._running = True
        self._stats.wakeups += 1
        heap = self._heap
        try:
            while heap and heap[0][0] <= monotonic_ns():
                stream = heapq.heappop(heap)[2]
                if stream.live:
                    try:
                        stream.step()
                    except Exception:  # a bug in one reply must not stop every other stream
                        traceback.print_exc(file=sys.stderr)
                        stream.conn.drop()
        finally:
            self._running = False
        if heap:
            # No batching floor needed: under load the while-loop above already drains neighbours.
            self._armed_ns = heap[0][0]
            self._timer.arm(heap[0][0])


class Stream:
    """One generation reply (streamed or not) on its way out; ``step`` runs when ``due`` is reached."""

    __slots__ = ("arrival_ns", "conn", "disconnect_ns", "due", "first_ns", "head", "keep_alive", "live", "log_ns",
                 "log_tokens", "next_end", "plan", "recv_ns", "rng", "sent", "sim", "slot_ns", "tpot_ns")

    def __init__(self, sim: SimState, conn: Conn, plan: Plan, recv_ns: int, head: bytes, keep_alive: bool,
                 arrival_ns: int | None = None) -> None:
        self.sim = sim
        self.conn = conn
        self.plan = plan
        # recv_ns anchors the schedule (receipt, or the slot when it waited, plus its prefill);
        # arrival_ns is the receipt itself and slot_ns when it took its slot (sim/engine.py).
        self.recv_ns = recv_ns
        self.arrival_ns = recv_ns if arrival_ns is None else arrival_ns
        self.slot_ns = self.arrival_ns
        self.disconnect_ns: int | None = None
        self.head = head
        self.keep_alive = keep_alive
        self.sent = 0
        self.next_end = 0
        self.due = 0
        self.live = True
        self.first_ns: int | None = None
        self.rng = random.Random(plan.seed) if sim.chunk_tokens_max is not None else None
        self.tpot_ns = sim.tpot_ns if plan.tpot_factor == 1.0 else round(sim.tpot_ns * plan.tpot_factor)  # --jitter
        logging = sim.chunk_log is not None
        self.log_tokens: list[int] | None = [] if logging else None
        self.log_ns: list[int] | None = [] if logging else None

    @property
    def prompt_tokens(self) -> int:
        return self.plan.prompt_tokens

    @property
    def cached_tokens(self) -> int:
        return self.plan.cached_tokens or 0

    def start(self) -> None:
        """Send what is due on receipt (headers, role chunk) and schedule the first timed write."""
        sim, plan = self.sim, self.plan
        sim.engine.take_slot(self)
        has_fault = plan.fault is not None and plan.fault_after <= plan.n_tokens
        if not has_fault:
            plan.fault = None
        if plan.stream:
            out = SSE_HEADERS + (b"Connection: keep-alive\r\n\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
            self.conn.write(out + self._opening())
            self.next_end = 0 if has_fault and plan.fault_after == 0 else self._end_after(0)
        else:
            self.next_end = plan.fault_after if has_fault else plan.n_tokens
        self.due = self.recv_ns + sim.ttft_ns + max(self.next_end - 1, 0) * self.tpot_ns
        sim.scheduler.push(self.due, self)

    def _opening(self) -> bytes:
        """What a stream sends on receipt, before its first token: a comment, Azure's prompt-filter
        chunk and the role chunk, as configured (sim/messages.py: message_start and its first block)."""
        sim, plan, out = self.sim, self.plan, b""
        if sim.config.sse_comments:
            out += self._comment(b"keep-alive")
        if plan.chat and sim.config.empty_choices_chunks:  # Azure's prompt-filter chunk
            out += self._frame(self.head + b',"choices":[],"prompt_filter_results":[{"prompt_index":0}]}')
        if plan.chat and sim.config.role_chunk:
            out += self._frame(self.head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                                           b'"logprobs":null,"finish_reason":null}]}')
        return out

    def _end_after(self, sent: int) -> int:
        """End (exclusive) of the next chunk; chunks never straddle the reasoning or fault boundary."""
        plan = self.plan
        rng = self.rng
        size = self.sim.tokens_per_chunk if rng is None else (
            1 if sent == 0 else rng.randint(1, self.sim.chunk_tokens_max))  # type: ignore[arg-type]
        end = min(sent + size, plan.n_tokens)
        if sent < plan.reasoning_tokens:
            end = min(end, plan.reasoning_tokens)
        if plan.fault is not None and sent < plan.fault_after:
            end = min(end, plan.fault_after)
        return end

    def _frame(self, data: bytes) -> bytes:
        """One SSE event as one HTTP chunk."""
        self.sim.stats.events_sent += 1
        event = self.sim.data_prefix + data + self.sim.eol2
        return b"%x\r\n%b\r\n" % (len(event), event)

    def _comment(self, text: bytes) -> bytes:
        """An SSE comment line (keep-alives, ': PROCESSING') as one HTTP chunk: carries no event."""
        event = b": " + text + self.sim.eol2
        return b"%x\r\n%b\r\n" % (len(event), event)

    def _usage(self) -> bytes:
        return b',"usage":' + usage_json(self.plan.prompt_tokens, self.sent,
                                         min(self.sent, self.plan.reasoning_tokens), self.plan.cached_tokens,
                                         self.plan.image_tokens)

    def step(self) -> None:
        now = monotonic_ns()
        sim, plan = self.sim, self.plan
        stats = sim.stats
        stats.late(now - self.due)
        if not plan.stream:
            self._finish_plain(now)
            return
        out = [self._comment(b"PROCESSING")] if sim.config.sse_comments else []
        start, end = self.sent, self.next_end
        if end > start and plan.tool_calls is not None:  # a reply that calls tools (sim/tools.py)
            self.sent = end
            usage = self._usage() if sim.usage_per_chunk or plan.continuous_usage else b""
            choices = tool_choices(plan, start, end)
            out += [self._frame(self.head + b',"choices":[' + c + b"]" + (usage if c is choices[-1] else b"") + b"}")
                    for c in choices]
            self._generated(start, end, now)
        elif end > start:
            text = token_text(start, end, plan.word)
            self.sent = end
            if plan.chat:
                key = b"reasoning_content" if end <= plan.reasoning_tokens else b"content"
                choice = b'{"index":0,"delta":{"%b":"%b"},"logprobs":null,"finish_reason":null}' % (key, text)
            else:
                choice = b'{"index":0,"text":"%b","logprobs":null,"finish_reason":null}' % text
            out.append(self._frame(self.head + b',"choices":[' + choice + b"]"
                                   + (self._usage() if sim.usage_per_chunk or plan.continuous_usage else b"") + b"}"))
            if sim.config.empty_chunks:
                out.append(self._frame(self.head + (b',"choices":[{"index":0,"delta":{"content":""},'
                                                    if plan.chat else b',"choices":[{"index":0,"text":"",')
                                       + b'"logprobs":null,"finish_reason":null}]}'))
            stats.tokens_sent += end - start
            sim.engine.generated(self, start, end)
            if self.log_tokens is not None and self.disconnect_ns is None:  # what really went out
                self.log_tokens.append(end - start)
                self.log_ns.append(now)  # type: ignore[union-attr]
            if self.first_ns is None:
                self.first_ns = now
        self._end_step(out, now)

    def _end_step(self, out: list[bytes], now: int) -> None:
        """How every step ends, whatever frames its dialect wrote: the fault due at this token, the
        reply's end, or the frames out and the next step scheduled."""
        plan, sim = self.plan, self.sim
        if plan.fault is not None and self.sent == plan.fault_after:
            self._fault(out, now)
        elif self.sent >= plan.n_tokens:
            self._finish_stream(out, now)
        else:
            self.conn.write(b"".join(out))
            self.next_end = self._end_after(self.sent)
            self.due = self.recv_ns + sim.ttft_ns + (self.next_end - 1) * self.tpot_ns
            sim.scheduler.push(self.due, self)

    def _generated(self, start: int, end: int, now: int) -> None:
        """Pieces start..end-1 went out now (tool calls, Messages, transcripts): the counters, the
        engine and the log hear of it (the chat/completions text path does the same inline: it runs
        per token)."""
        self.sim.stats.tokens_sent += end - start
        self.sim.engine.generated(self, start, end)
        if self.log_tokens is not None and self.disconnect_ns is None:  # what really went out
            self.log_tokens.append(end - start)
            self.log_ns.append(now)  # type: ignore[union-attr]
        if self.first_ns is None:
            self.first_ns = now

    def _finish_stream(self, out: list[bytes], now: int) -> None:
        sim, plan = self.sim, self.plan
        finish = plan.finish_reason.encode()
        usage = self._usage() if sim.usage_per_chunk or plan.continuous_usage else b""
        if plan.chat:
            choice = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"%b"}' % finish
        else:
            choice = b'{"index":0,"text":"","logprobs":null,"finish_reason":"%b"}' % finish
        out.append(self._frame(self.head + b',"choices":[' + choice + b"]" + usage + b"}"))
        if plan.include_usage:
            out.append(self._frame(self.head + b',"choices":[]' + self._usage() + self._timings() + b"}"))
        if sim.config.done:
            out.append(self._frame(b"[DONE]"))
        out.append(END_OF_BODY)
        self.conn.write(b"".join(out))
        self._close(now, completed=True)

    def _fault(self, out: list[bytes], now: int) -> None:
        kind = self.plan.fault
        if kind == "disconnect":
            self.conn.write(b"".join(out))
            self._close(now, completed=False, drop=True)
            return
        out.extend(self._error_frames() if kind == "stream_error" else self._malformed_frames())
        out.append(END_OF_BODY)
        self.conn.write(b"".join(out))
        self._close(now, completed=False)

    def _finish_plain(self, now: int) -> None:
        """A non-stream reply goes out whole when its last token (or its fault) is due."""
        plan, conn = self.plan, self.conn
        if plan.fault == "disconnect":
            self._close(now, completed=False, drop=True)
            return
        if plan.fault == "stream_error":
            error = self._plain_error()
            conn.send(error.status, error.body(), self.keep_alive)
        elif plan.fault == "malformed":
            conn.send(200, b"{not json", self.keep_alive)
        else:
            self.sent = plan.n_tokens
            self.sim.stats.tokens_sent += plan.n_tokens
            self.sim.engine.generated(self, 0, plan.n_tokens)  # a whole reply: accounted when it is sent
            conn.send(200, self._plain_body(), self.keep_alive)
        self._close(now, completed=plan.fault is None)

    # -- what a dialect (sim/messages.py) says in its own words --------------------------------------
    def _error_frames(self) -> list[bytes]:
        """A stream's error event (--stream-error-after-tokens)."""
        frames = [self._frame(b'{"error":{"message":"simulated failure","type":"server_error"}}')]
        return frames + [self._frame(b"[DONE]")] if self.sim.config.done else frames

    def _malformed_frames(self) -> list[bytes]:
        return [self._frame(b"{not json")]

    def _plain_error(self) -> RequestError:
        """A non-streamed reply's failure (--stream-error-after-tokens)."""
        return RequestError(500, "simulated failure")

    def _plain_body(self) -> bytes:
        """A non-streamed reply, whole."""
        plan = self.plan
        return completion_body(plan, self.head, self.sim.config.usage, self._timings(),
                               tool_message(plan) if plan.tool_calls is not None else None)

    def _timings(self) -> bytes:
        """llama.cpp's timings (--timings): prompt_ms is the true prefill, slot -> first token."""
        return self.sim.prompting.timings(self.plan, self.sent, self.recv_ns + self.sim.ttft_ns - self.slot_ns)

    def _log(self, end: str, now: int) -> None:
        """The reply's line in --log-chunks: its chunks, and the engine's side (sim/engine.py) of it."""
        if self.log_tokens is None:
            return
        head = self.head
        first_ns = self.recv_ns + self.sim.ttft_ns if self.sent else None
        slot_ns = self.slot_ns if self.due else None  # a reply still waiting has due 0 and no slot
        self.sim.log_chunks(head[7:head.index(b'"', 7)].decode(), self.log_tokens, self.log_ns or [],
                            end == "finished" and self.disconnect_ns is None, {
            "end": end, "recv_ns": self.arrival_ns, "slot_ns": slot_ns, "first_token_ns": first_ns, "end_ns": now,
            "disconnect_ns": self.disconnect_ns,
            "queue_s": None if slot_ns is None else (slot_ns - self.arrival_ns) / 1e9,
            "prefill_s": None if first_ns is None else (first_ns - self.slot_ns) / 1e9,
            "prompt_tokens": self.plan.prompt_tokens, "cached_tokens": self.plan.cached_tokens,
            "generated_tokens": self.sent, **(self.plan.log_extra or {})})

    def _close(self, now: int, *, completed: bool, drop: bool = False) -> None:
        stats = self.sim.stats
        self.live = False
        self.sim.engine.free_slot(self, now, self.plan.finish_reason if completed else "abort")
        self._log("disconnected" if self.disconnect_ns is not None else "finished" if completed else "failed", now)
        stats.last_done_ns = now
        if self.disconnect_ns is not None:
            pass  # an engine that keeps generating after its client left: counted as aborted then
        elif completed:
            stats.requests_completed += 1
            if self.first_ns is not None:
                stats.ttft_ns.append(self.first_ns - self.recv_ns)
                head = self.head
                stats.first_token_ns[head[7:head.index(b'"', 7)].decode()] = self.first_ns
        else:
            stats.requests_failed += 1
        if drop:
            self.conn.drop()
        else:
            self.conn.stream_done(self.keep_alive)
        if self.sim.waiting:
            self.sim.release()

    def cancel(self) -> None:
        """The client went away: count the reply as aborted and, as an engine that handles it does,
        free its slot and KV at once (or leave the queue); with --keep-generating-on-disconnect it
        runs on unseen (or still waits for its slot) until it would have ended."""
        sim = self.sim
        if not self.live or self.disconnect_ns is not None:
            return
        now = monotonic_ns()
        self.disconnect_ns = now
        sim.stats.requests_aborted += 1
        if sim.config.keep_generating_on_disconnect:
            return
        self.live = False
        if self.due:  # started (a reply still waiting for a slot has due 0 and holds none)
            sim.engine.free_slot(self, now, "abort")
        else:
            sim.engine.waiting -= 1
        self._log("disconnected", now)
        if self.due and sim.waiting:
            sim.release()

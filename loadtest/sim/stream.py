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

    __slots__ = ("sim", "conn", "plan", "recv_ns", "head", "keep_alive", "sent", "next_end", "due", "live",
                 "first_ns", "rng", "log_tokens", "log_ns")

    def __init__(self, sim: SimState, conn: Conn, plan: Plan, recv_ns: int, head: bytes, keep_alive: bool) -> None:
        self.sim = sim
        self.conn = conn
        self.plan = plan
        self.recv_ns = recv_ns
        self.head = head
        self.keep_alive = keep_alive
        self.sent = 0
        self.next_end = 0
        self.due = 0
        self.live = True
        self.first_ns: int | None = None
        self.rng = random.Random(plan.seed) if sim.chunk_tokens_max is not None else None
        logging = sim.chunk_log is not None
        self.log_tokens: list[int] | None = [] if logging else None
        self.log_ns: list[int] | None = [] if logging else None

    def start(self) -> None:
        """Send what is due on receipt (headers, role chunk) and schedule the first timed write."""
        sim, plan = self.sim, self.plan
        sim.stats.active += 1
        sim.stats.max_active = max(sim.stats.max_active, sim.stats.active)
        has_fault = plan.fault is not None and plan.fault_after <= plan.n_tokens
        if not has_fault:
            plan.fault = None
        if plan.stream:
            out = SSE_HEADERS + (b"Connection: keep-alive\r\n\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
            if sim.config.sse_comments:
                out += self._comment(b"keep-alive")
            if plan.chat and sim.config.empty_choices_chunks:  # Azure's prompt-filter chunk
                out += self._frame(self.head + b',"choices":[],"prompt_filter_results":[{"prompt_index":0}]}')
            if plan.chat and sim.config.role_chunk:
                out += self._frame(self.head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                                               b'"logprobs":null,"finish_reason":null}]}')
            self.conn.write(out)
            self.next_end = 0 if has_fault and plan.fault_after == 0 else self._end_after(0)
        else:
            self.next_end = plan.fault_after if has_fault else plan.n_tokens
        self.due = self.recv_ns + sim.ttft_ns + max(self.next_end - 1, 0) * sim.tpot_ns
        sim.scheduler.push(self.due, self)

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
                                         min(self.sent, self.plan.reasoning_tokens))

    def step(self) -> None:
        now = monotonic_ns()
        sim, plan = self.sim, self.plan
        stats = sim.stats
        late = now - self.due
        stats.late_sum_ns += late
        stats.late_count += 1
        if late > stats.late_max_ns:
            stats.late_max_ns = late
        if not plan.stream:
            self._finish_plain(now)
            return
        out = [self._comment(b"PROCESSING")] if sim.config.sse_comments else []
        start, end = self.sent, self.next_end
        if end > start:
            text = token_text(start, end)
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
            if self.log_tokens is not None:
                self.log_tokens.append(end - start)
                self.log_ns.append(now)  # type: ignore[union-attr]
            if self.first_ns is None:
                self.first_ns = now
        if plan.fault is not None and self.sent == plan.fault_after:
            self._fault(out, now)
        elif self.sent >= plan.n_tokens:
            self._finish_stream(out, now)
        else:
            self.conn.write(b"".join(out))
            self.next_end = self._end_after(self.sent)
            self.due = self.recv_ns + sim.ttft_ns + (self.next_end - 1) * sim.tpot_ns
            sim.scheduler.push(self.due, self)

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
            out.append(self._frame(self.head + b',"choices":[]' + self._usage() + sim.prompting.timings(plan, self.sent)
                                   + b"}"))
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
        if kind == "stream_error":
            out.append(self._frame(b'{"error":{"message":"simulated failure","type":"server_error"}}'))
            if self.sim.config.done:
                out.append(self._frame(b"[DONE]"))
        else:  # malformed
            out.append(self._frame(b"{not json"))
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
            error = RequestError(500, "simulated failure")
            conn.send(error.status, error.body(), self.keep_alive)
        elif plan.fault == "malformed":
            conn.send(200, b"{not json", self.keep_alive)
        else:
            self.sent = plan.n_tokens
            self.sim.stats.tokens_sent += plan.n_tokens
            conn.send(200, completion_body(plan, self.head, self.sim.config.usage), self.keep_alive)
        self._close(now, completed=plan.fault is None)

    def _close(self, now: int, *, completed: bool, drop: bool = False) -> None:
        stats = self.sim.stats
        self.live = False
        stats.active -= 1
        if self.log_tokens is not None:
            head = self.head
            self.sim.log_chunks(head[7:head.index(b'"', 7)].decode(), self.log_tokens, self.log_ns or [], completed)
        stats.last_done_ns = now
        if completed:
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
        """The client went away: stop writing and count the reply as aborted."""
        if self.live:
            self.live = False
            self.sim.stats.requests_aborted += 1
            if self.due:  # started (a reply still waiting for a slot has due 0 and holds none)
                self.sim.stats.active -= 1
                if self.sim.waiting:
                    self.sim.release()

"""The simulated OpenAI-compatible server: its routes and replies, over a raw asyncio protocol
with httptools parsing and keep-alive (sim/connection.py).

A framework (aiohttp, starlette) would cost tens of microseconds per request and per chunk, and
the sim must stay far cheaper than the client it measures; these two files are the whole HTTP layer.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from time import monotonic_ns

import orjson

from loadtest.eventloop import loop_factory
from loadtest.sim import pooling
from loadtest.sim.config import SimConfig
from loadtest.sim.connection import Connection, Request
from loadtest.sim.generate import RequestError, object_head, plan_request
from loadtest.sim.images import take_images
from loadtest.sim.limits import ServerLimits
from loadtest.sim.messages import handle_messages
from loadtest.sim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from loadtest.sim.metrics import MetricsPage
from loadtest.sim.prefixcache import PrefixCache
from loadtest.sim.prompting import PATHS as PROMPT_PATHS
from loadtest.sim.prompting import Prompting
from loadtest.sim.responses import ResponsesStream, azure_path, plan_responses, requested_tokens
from loadtest.sim.state import SimState, content_hash, request_log
from loadtest.sim.stream import Scheduler, Stream
from loadtest.sim.tokenize import tokenize_body
from loadtest.sim.tools import logged_calls, plan_tool_calls
from loadtest.sim.transcribe import transcribe


class Sim(SimState):
    """Server-wide state (see SimState), the scheduler, and routing."""

    def __init__(self, config: SimConfig, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(config)
        self.loop = loop
        self.scheduler = Scheduler(loop, self.stats)
        self.metrics_page = MetricsPage(config, self.engine)
        self.connections: set[Connection] = set()
        self.connections_made = 0
        self.waiting: deque[Stream] = deque()  # replies waiting for a slot under max_concurrency
        self.model_json = orjson.dumps(config.model)
        self.auth_ok = None if config.api_key is None else b"Bearer " + config.api_key.encode()
        self.last_id = 0
        self.prompting = Prompting(config)
        self.prefix_cache = (PrefixCache(config.prefix_cache_tokens, config.prefix_block_tokens,
                                         keep_on_disconnect=config.keep_generating_on_disconnect)
                             if config.prefix_cache_tokens else None)
        self.valid_requests = 0
        self.public_config = config.public_dict()
        self.limits = ServerLimits(config) if config.rpm_limit or config.tpm_limit or config.rate_limit_every else None
        self.data_prefix = b"data:" if config.data_no_space else b"data: "
        self.models_body = orjson.dumps({"object": "list", "data": [
            {"id": config.model, "object": "model", "created": 0, "owned_by": "loadtest-sim"}]})

    def handle(self, conn: Connection, req: Request) -> None:
        path, method, keep = req.path, req.method, req.keep_alive
        if path.startswith(b"/openai/"):  # Azure OpenAI: a deployment URL with api-version, or /openai/v1
            try:
                path = azure_path(path, req.query, self.config.model)
            except RequestError as error:
                return self._error(conn, error, keep)
        if path in (b"/v1/chat/completions", b"/v1/completions", b"/v1/responses"):
            if method != b"POST":
                return self._error(conn, RequestError(405, f"Method {method.decode()} not allowed"), keep)
            return self._generate(conn, req, chat=path == b"/v1/chat/completions", responses=path == b"/v1/responses")
        if path in pooling.PATHS:  # /v1/embeddings, /v1/rerank, /v2/rerank: nothing generated
            return pooling.handle(self, conn, req, path)
        if path == b"/v1/audio/transcriptions":  # a multipart audio upload (sim/transcribe.py)
            return transcribe(self, conn, req)
        if path == b"/v1/messages":  # Anthropic's Messages API (sim/messages.py)
            return handle_messages(self, conn, req)
        if path == b"/v1/models" and method == b"GET":
            if not self._authorized(req):
                return self._error(conn, _unauthorized(), keep)
            return conn.respond(200, self.models_body, keep)
        if path == b"/tokenize" and method == b"POST" and self.config.tokenize_endpoint:
            status, body = tokenize_body(req.body, self.prompting.tokenize if self.prompting.has_tokenizer else None)
            return conn.respond(status, body, keep)
        if path == b"/health" and method == b"GET":
            return conn.respond(200, b'{"status":"ok"}', keep)
        if path == b"/metrics" and method == b"GET" and self.config.metrics:  # none: 404, as without metrics
            return self._metrics(conn, keep)
        if path == b"/sim/stats" and method == b"GET":
            return conn.respond(200, orjson.dumps(self.stats.snapshot(self.public_config)), keep)
        if path == b"/sim/reset" and method == b"POST":
            self.stats.reset()
            return conn.respond(200, b'{"status":"ok"}', keep)
        if path in PROMPT_PATHS:
            return conn.respond(*self.prompting.answer(method, path), keep)
        if path in (b"/v1/models", b"/health", b"/sim/stats", b"/sim/reset"):
            return self._error(conn, RequestError(405, f"Method {method.decode()} not allowed"), keep)
        self._error(conn, RequestError(404, f"Not found: {path.decode(errors='replace')}",
                                       code="not_found"), keep)

    def _metrics(self, conn: Connection, keep_alive: bool) -> None:
        """GET /metrics, written when answered; --metrics-delay-ms holds the answer (and this
        connection's next request) back on a timer while every reply goes on generating."""
        if not self.config.metrics_delay_ms:
            return conn.respond(200, self.metrics_page.render(), keep_alive, content_type=_METRICS_TYPE)
        conn.busy = True
        self.loop.call_later(self.config.metrics_delay_ms / 1e3, self._metrics_late, conn, keep_alive)

    def _metrics_late(self, conn: Connection, keep_alive: bool) -> None:
        conn.send(200, self.metrics_page.render(), keep_alive, content_type=_METRICS_TYPE)
        conn.stream_done(keep_alive)  # frees the connection for its next request (or closes it)

    def _authorized(self, req: Request) -> bool:
        return self.auth_ok is None or req.auth == self.auth_ok

    @staticmethod
    def _error(conn: Connection, error: RequestError, keep_alive: bool) -> None:
        conn.respond(error.status, error.body(), keep_alive, error.headers)

    def _generate(self, conn: Connection, req: Request, chat: bool, responses: bool = False) -> None:
        stats, config = self.stats, self.config
        stats.received(req.recv_ns)
        try:
            if not self._authorized(req):
                raise _unauthorized()
            try:
                body = orjson.loads(req.body)
            except orjson.JSONDecodeError as exc:
                raise RequestError(400, f"Could not parse request body as JSON: {exc}") from None
            # The Nth *valid* request fails, so invalid ones do not shift which requests fail.
            nth = self.valid_requests + 1
            fail = config.fail_every is None or nth % config.fail_every == 0
            plan = (plan_responses(config, body, fail, seed=self.last_id + 1) if responses
                    else plan_request(config, chat, body, fail, seed=self.last_id + 1))
            if chat:  # tool messages checked as OpenAI does; with --tool-call-rounds maybe a reply of calls
                plan_tool_calls(config, body, plan)
            plan.prompt_tokens = self.prompting.prompt_tokens(chat, body, plan.prompt_tokens)
            if config.reject_max_tokens and chat and isinstance(body.get("max_tokens"), int):
                raise RequestError(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                        "Use 'max_completion_tokens' instead.", param="max_tokens",
                                   code="unsupported_parameter")
            if self.limits is not None and (refusal := self.limits.admit(plan.prompt_tokens + requested_tokens(body, plan))):
                stats.rate_limited += 1
                raise refusal
            self.valid_requests = nth
            if fail and config.fail_status is not None:
                raise RequestError(config.fail_status, f"simulated failure (HTTP {config.fail_status})")
        except RequestError as error:
            stats.requests_failed += 1
            stats.last_done_ns = monotonic_ns()
            return conn.respond(error.status, error.body(), req.keep_alive, error.headers)
        self.last_id += 1
        if responses:
            head = b'{"id":"resp_%d","object":"response","created_at":%d,"model":%b' % (
                self.last_id, int(time.time()), self.model_json)
            return conn.begin(ResponsesStream(self, conn, plan, req.recv_ns, head, req.keep_alive))
        head = object_head(chat, plan.stream, self.last_id, int(time.time()), self.model_json)
        if config.replies_from_prompt and chat:
            plan.word = b"w%b_" % content_hash(body.get("messages")).encode()[:8]
        if self.chunk_log is not None:
            plan.log_extra = request_log(body, req.logged_header, self.log_header is not None, req.body)
            plan.log_extra["connection"] = conn.number
            if config.replies_from_prompt and chat:
                plan.log_extra["word"] = plan.word.decode()
            if plan.tool_calls is not None:
                plan.log_extra["tool_calls"] = logged_calls(plan)
        if self.prefix_cache is not None:
            plan.block_hashes = self.prefix_cache.block_hashes(self.prompting.token_keys(chat, body))
        take_images(config, body, plan)  # a chat request's images: --image-tokens each, before its prefill
        stream = Stream(self, conn, plan, req.recv_ns, head, req.keep_alive, arrival_ns=req.recv_ns)
        if self.config.max_concurrency is not None and self.stats.active >= self.config.max_concurrency:
            conn.stream = stream  # a waiting reply: a closed connection still cancels it
            self.waiting.append(stream)
            self.engine.waiting += 1
            return
        self._prefill(stream)
        conn.begin(stream)

    def _prefill(self, stream: Stream) -> None:
        """The reply takes its slot (at stream.slot_ns): the prefix cache is looked up then, and
        the uncached prompt tokens' prefill shifts its schedule; its blocks are cached when that
        prefill ends (its first token is due)."""
        plan, cache = stream.plan, self.prefix_cache
        computed = plan.prompt_tokens
        if cache is not None:
            plan.cached_tokens = cache.lookup(plan.block_hashes, plan.prompt_tokens, stream.slot_ns)
            computed -= plan.cached_tokens
        stream.recv_ns = stream.slot_ns + self.prompting.prefill_ns(computed)  # slow prefill shifts the schedule
        if plan.ttft_factor != 1.0:  # --jitter: this reply's TTFT is ttft x factor
            stream.recv_ns += round(self.ttft_ns * (plan.ttft_factor - 1.0))
        if cache is not None:
            cache.insert_at(stream.recv_ns + self.ttft_ns, plan.block_hashes, stream)

    def release(self) -> None:
        """A slot freed: start the longest-waiting live reply, its clock from now."""
        while self.waiting and (self.config.max_concurrency is None or self.stats.active < self.config.max_concurrency):
            stream = self.waiting.popleft()
            if stream.live:  # a reply whose client left is gone (or still here: --keep-generating-on-disconnect)
                self.engine.waiting -= 1
                stream.slot_ns = monotonic_ns()
                self._prefill(stream)
                stream.start()


_METRICS_TYPE = METRICS_CONTENT_TYPE.encode()


def _unauthorized() -> RequestError:
    return RequestError(401, "Incorrect API key provided.", code="invalid_api_key")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed, as the client (its per-write overhead is several times lower)."""
    return (loop_factory() or asyncio.new_event_loop)()


async def serve(config: SimConfig, announce: Callable[[str, int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set; ``announce(host, port)`` is called once the socket listens."""
    loop = asyncio.get_running_loop()
    sim = Sim(config, loop)
    server = await loop.create_server(lambda: Connection(sim), config.host, config.port, backlog=4096,
                                      reuse_address=True)
    host, port = server.sockets[0].getsockname()[:2]
    if announce is not None:
        announce(host, port)
    stop = stop or asyncio.Event()
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(sim.connections):
            conn.drop()
        sim.scheduler.close()
        sim.close()


def run(config: SimConfig, *, announce: Callable[[str, int], None] | None = None,
        exit_on_stdin_eof: bool = False) -> None:
    """Run the server in this thread until SIGINT/SIGTERM (or stdin EOF, when asked)."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:
        # The parent holds our stdin pipe; EOF means it exited or died, so we must not outlive it.
        def watch() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                try:
                    loop.call_soon_threadsafe(stop.set)
                except RuntimeError:  # the loop already closed
                    pass

        threading.Thread(target=watch, name="stdin-watch", daemon=True).start()
    try:
        loop.run_until_complete(serve(config, announce, stop))
    finally:
        loop.close()

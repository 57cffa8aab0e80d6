"""The sim's Responses API (``POST /v1/responses``) and Azure OpenAI paths.

Streams are typed events (``event: response.output_text.delta`` + ``data: {...}``) ending in
``response.completed`` (or ``response.incomplete`` at max_output_tokens) whose ``response.usage``
holds input/output tokens and ``output_tokens_details.reasoning_tokens``. Reasoning is hidden, as
OpenAI's is: its tokens take their time on the schedule but send no text.
"""

from __future__ import annotations

import re
from time import monotonic_ns
from typing import Any

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import DEFAULT_MAX_TOKENS, Plan, RequestError, _positive_int, _words, token_text
from loadtest.sim.stream import END_OF_BODY, SSE_HEADERS, Stream

_DEPLOYMENT = re.compile(rb"^/openai/deployments/([^/]+)(/.*)$")


def azure_path(path: bytes, query: bytes, model: str) -> bytes:
    """``/openai/deployments/NAME/chat/completions?api-version=V`` (or ``/openai/v1/...``) as the
    /v1 path it stands for; a missing api-version or an unknown deployment is refused as Azure does."""
    if path.startswith(b"/openai/v1/"):
        return path[len(b"/openai"):]
    m = _DEPLOYMENT.match(path)
    if not m:
        raise RequestError(404, "Resource not found", code="404")
    if b"api-version=" not in query:
        raise RequestError(400, "Missing required query parameter: api-version", code="missing_api_version")
    if m.group(1).decode(errors="replace") != model:
        raise RequestError(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound")
    return b"/v1" + m.group(2)


def requested_tokens(body: dict[str, Any], plan: Plan) -> int:
    """The output tokens a provider charges against a token limit: the requested maximum."""
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return plan.n_tokens


def plan_responses(config: SimConfig, body: Any, fail: bool, seed: int = 0) -> Plan:
    if not isinstance(body, dict):
        raise RequestError(400, "Request body must be a JSON object")
    model = body.get("model")
    if model and model != config.model:
        raise RequestError(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")
    if "input" not in body:
        raise RequestError(400, "Missing required parameter: 'input'.", param="input")
    if "max_tokens" in body:
        raise RequestError(400, "Unsupported parameter: 'max_tokens'. In the Responses API, this parameter has "
                                "moved to 'max_output_tokens'.", param="max_tokens")
    items = body["input"]
    prompt_tokens = _words(items if not isinstance(items, list) else [i.get("content") if isinstance(i, dict) else i
                                                                       for i in items])
    max_tokens = _positive_int(body, "max_output_tokens")
    limit = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    n = limit if config.output_tokens is None else min(config.output_tokens, limit)
    return Plan(chat=False, stream=body.get("stream") is True, include_usage=config.usage, continuous_usage=False,
                prompt_tokens=prompt_tokens, seed=seed,
                n_tokens=n, reasoning_tokens=min(config.reasoning_tokens, n), finish_reason="length" if n >= limit else "stop",
                fault=None, fault_after=0)


class ResponsesStream(Stream):
    __slots__ = ("seq",)

    def _event(self, name: bytes, data: bytes) -> bytes:
        self.sim.stats.events_sent += 1
        eol = self.sim.eol2[: len(self.sim.eol2) // 2]
        event = b"event: " + name + eol + self.sim.data_prefix + data + self.sim.eol2
        return b"%x\r\n%b\r\n" % (len(event), event)

    def _response(self, status: bytes, text: bytes | None) -> bytes:
        """The response object: head (id, object, created_at, model), status, output, usage."""
        plan = self.plan
        out = b"[]"
        if text is not None:
            out = b'[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[' \
                  b'{"type":"output_text","text":"%b","annotations":[]}]}]' % text
        body = self.head + b',"status":"%b","output":%b' % (status, out)
        if status != b"in_progress":
            if plan.finish_reason == "length":
                body += b',"incomplete_details":{"reason":"max_output_tokens"}'
            if plan.include_usage:
                r = plan.reasoning_tokens
                body += (b',"usage":{"input_tokens":%d,"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":%d},'
                         b'"total_tokens":%d}' % (plan.prompt_tokens, self.sent, r, plan.prompt_tokens + self.sent))
        return body + b"}"

    def start(self) -> None:
        sim, plan = self.sim, self.plan
        self.seq = 0
        if not plan.stream:
            sim.engine.take_slot(self)
            self.next_end = plan.n_tokens
            self.due = self.recv_ns + sim.ttft_ns + max(self.next_end - 1, 0) * sim.tpot_ns
            sim.scheduler.push(self.due, self)
            return
        plan.fault = None
        head = SSE_HEADERS + (b"Connection: keep-alive\r\n\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
        created = self._event(b"response.created", b'{"type":"response.created","sequence_number":0,"response":'
                              + self._response(b"in_progress", None) + b"}")
        sim.engine.take_slot(self)
        self.conn.write(head + created)
        self.next_end = self._end_after(0)
        self.due = self.recv_ns + sim.ttft_ns + max(self.next_end - 1, 0) * sim.tpot_ns
        sim.scheduler.push(self.due, self)

    def step(self) -> None:
        now = monotonic_ns()
        sim, plan = self.sim, self.plan
        if not plan.stream:
            self.sent = plan.n_tokens
            sim.stats.tokens_sent += plan.n_tokens
            sim.engine.generated(self, 0, plan.n_tokens)
            text = token_text(plan.reasoning_tokens, plan.n_tokens)
            status = b"incomplete" if plan.finish_reason == "length" else b"completed"
            self.conn.send(200, self._response(status, text), self.keep_alive)
            self._close(now, completed=True)
            return
        out = [self._comment(b"PROCESSING")] if sim.config.sse_comments else []
        start, end = self.sent, self.next_end
        self.sent = end
        sim.stats.tokens_sent += end - start
        sim.engine.generated(self, start, end)
        if end > plan.reasoning_tokens:  # hidden reasoning sends nothing
            self.seq += 1
            text = token_text(max(start, plan.reasoning_tokens), end)
            out.append(self._event(b"response.output_text.delta", b'{"type":"response.output_text.delta","item_id":"msg_1",'
                                   b'"output_index":0,"content_index":0,"delta":"%b","sequence_number":%d}' % (text, self.seq)))
            if self.first_ns is None:
                self.first_ns = now
        if self.sent >= plan.n_tokens:
            status = b"incomplete" if plan.finish_reason == "length" else b"completed"
            name = b"response." + status
            text = token_text(plan.reasoning_tokens, plan.n_tokens)
            out.append(self._event(name, b'{"type":"%b","sequence_number":%d,"response":%b}' % (
                name, self.seq + 1, self._response(status, text))))
            out.append(END_OF_BODY)
            self.conn.write(b"".join(out))
            self._close(now, completed=True)
            return
        if out:
            self.conn.write(b"".join(out))
        self.next_end = self._end_after(self.sent)
        self.due = self.recv_ns + sim.ttft_ns + (self.next_end - 1) * sim.tpot_ns
        sim.scheduler.push(self.due, self)

"""The option groups of the workloads beyond single-turn text prompts, defined once each: embeddings
and rerank, multi-turn sessions, agentic tool loops, images and audio, trace replay. Split from
cli/options.py (the common groups) by what they shape: what each request is, not where it goes or
how much load there is. Like options.py, nothing here imports more than argparse and argtypes."""

from __future__ import annotations

import argparse

from loadtest.cli import argtypes


def pooling(p: argparse.ArgumentParser) -> None:
    """--batch-size, --documents, --document-tokens, --encoding-format: what an embeddings or rerank
    request carries (docs/embeddings.md)."""
    g = p.add_argument_group("embeddings and rerank (--api embeddings|rerank; docs/embeddings.md)")
    g.add_argument("--batch-size", type=argtypes.positive_int, default=1, metavar="N",
                   help="--api embeddings: inputs per request (default 1); with --dataset synthetic each exactly "
                        "--prompt-tokens long")
    g.add_argument("--documents", type=argtypes.positive_int, default=8, metavar="N",
                   help="--api rerank: documents scored against each query (default 8)")
    g.add_argument("--document-tokens", type=argtypes.positive_int, metavar="L",
                   help="--api rerank with --dataset synthetic: each document exactly L tokens (default: --prompt-tokens)")
    g.add_argument("--encoding-format", choices=("float", "base64"),
                   help="--api embeddings: encoding_format to ask for (default: not sent, the server's float)")


def sessions(p: argparse.ArgumentParser, *, command: str) -> None:
    """Multi-turn sessions (single, throughput; docs/load-shapes.md "Multi-turn sessions")."""
    g = p.add_argument_group("multi-turn sessions (each job a conversation; --num-prompts and --concurrency count "
                             "sessions)")
    g.add_argument("--turns", type=argtypes.positive_int, metavar="N",
                   help="with --dataset synthetic: sessions of N user turns, the first --prompt-tokens long")
    g.add_argument("--turn-prompt-tokens", type=argtypes.positive_int, metavar="T",
                   help="with --turns: each later user turn T tokens (default: --prompt-tokens)")
    g.add_argument("--multi-turn", action="store_true",
                   help="run a conversation file's rows (messages / conversations) as sessions, one turn per user turn")
    g.add_argument("--history", choices=("actual", "recorded"), default="actual",
                   help="what earlier replies a turn carries: the server's actual ones (default) or, with "
                        "--multi-turn, the dataset's recorded assistant turns")
    g.add_argument("--think-time", type=argtypes.seconds, default=0.0, metavar="S",
                   help="seeded exponential pause of mean S between a reply and the next turn (default 0); "
                        "outside every latency")
    g.add_argument("--session-header", metavar="NAME", type=argtypes.header_name,
                   help="send the session's stable id in this request header (e.g. x-session-id, for sticky routing; "
                        "also a --trace's sessions)")
    if command == "throughput":
        g.add_argument("--session-rate", type=argtypes.rate, metavar="R",
                       help="sessions/s started open-loop (instead of --concurrency users)")


def tools(p: argparse.ArgumentParser) -> None:
    """Agentic tool loops (single, throughput; docs/load-shapes.md "Agentic tool loops")."""
    g = p.add_argument_group("agentic tool loops (a task: one user turn, then a request per round of tool calls)")
    g.add_argument("--tools", metavar="FILE|synthetic",
                   help="offer these OpenAI tools with every request (a JSON list or JSONL of {type: function, "
                        "function: {name, description, parameters}}; synthetic: search_documents, run_python) and "
                        "answer each tool call the reply makes")
    g.add_argument("--tool-result-tokens", type=argtypes.positive_int, default=32, metavar="N",
                   help="each tool call's canned result: N tokens by the server's tokenizer (default 32)")
    g.add_argument("--tool-latency", type=argtypes.seconds, default=0.0, metavar="S",
                   help="pause S before answering a reply's tool calls, as the tools would take (default 0); "
                        "outside every latency, recorded as tool_wait_s")
    g.add_argument("--max-tool-rounds", type=argtypes.non_negative_int, default=4, metavar="N",
                   help="answer at most N rounds of tool calls per user turn; a task still calling tools then "
                        "ends as at_max_rounds (default 4)")


def media(p: argparse.ArgumentParser) -> None:
    """Images on chat requests, audio for --api transcriptions (docs/media.md)."""
    g = p.add_argument_group("images and audio (docs/media.md)")
    g.add_argument("--images", type=argtypes.non_negative_int, default=0, metavar="N",
                   help="attach N seeded synthetic images to every chat prompt as image_url content parts (data: "
                        "URLs), after a dataset row's own image / image_url / images (default 0)")
    g.add_argument("--image-size", type=argtypes.image_size, metavar="WxH", help="synthetic image size (default 512x512)")
    g.add_argument("--image-format", choices=("png", "jpeg"), help="synthetic image file format (default png)")
    g.add_argument("--audio-seconds", type=argtypes.positive_float, metavar="S",
                   help="--api transcriptions: length of the seeded speech-like WAV (16 kHz mono) uploaded for a "
                        "prompt whose dataset row names no audio file (default 10)")


def trace(p: argparse.ArgumentParser) -> None:
    """--trace and how it is replayed (throughput; docs/load-shapes.md "Replaying a trace")."""
    g = p.add_argument_group("trace replay (the trace decides when each request starts and what it asks)")
    g.add_argument("--trace", metavar="FILE",
                   help="replay a request trace: Mooncake JSONL, BurstGPT CSV, Azure LLM inference CSV or loadtest "
                        "JSONL (detected); replaces --concurrency/--request-rate/--num-prompts/--duration")
    g.add_argument("--replay-speed", type=argtypes.positive_float, default=1.0, metavar="X",
                   help="play the trace X times as fast (default 1)")
    g.add_argument("--trace-window", metavar="START:END",
                   help="replay only the rows recorded START <= t < END seconds after the trace's first (END optional); "
                        "a session goes whole, by its first row")
    g.add_argument("--max-idle", type=argtypes.seconds, metavar="S",
                   help="shorten every gap between starts longer than S seconds (after --replay-speed) to S")

import pytest

from loadtest.measure.sse import one_event_per_piece, parse_events, parse_stream


def test_events_get_the_stamp_of_the_piece_that_completes_them():
    pieces = [(1, b"data: {\"a\":"), (2, b"1}\n"), (3, b"\ndata: [DONE]\n\n")]
    events, rest = parse_events(pieces)
    assert [(e[0], e[1]) for e in events] == [(3, b'{"a":1}'), (3, b"[DONE]")]
    assert rest == b""


def test_several_events_in_one_piece_share_its_stamp():
    events, _ = parse_events([(7, b"data: 1\n\ndata: 2\n\n"), (9, b"data: 3\n\n")])
    assert [(e[0], e[1]) for e in events] == [(7, b"1"), (7, b"2"), (9, b"3")]


def test_crlf_and_cr_line_endings_even_when_split_across_pieces():
    pieces = [(1, b"data: x\r"), (2, b"\n\r\n"), (3, b"data: y\r\rdata: z\r\r")]
    # A trailing CR may be half of a CRLF: the last event is only complete at the end of the stream.
    assert [(e[0], e[1]) for e in parse_events(pieces)[0]] == [(2, b"x"), (3, b"y")]
    assert [(e[0], e[1]) for e in parse_stream(pieces)] == [(2, b"x"), (3, b"y"), (3, b"z")]


def test_a_split_crlf_is_not_mistaken_for_an_event_end():
    events, rest = parse_events([(1, b"data: x\r"), (2, b"\ndata: more\r\n\r\n")])
    assert [(e[0], e[1]) for e in events] == [(2, b"x\nmore")]


def test_multiline_data_comments_and_event_names():
    block = b": keep-alive\n\nevent: error\ndata: {\"x\":\ndata: 1}\nid: 4\n\n"
    events, _ = parse_events([(5, block)])
    assert len(events) == 1
    assert events[0][2] == b"error"
    assert events[0][1] == b'{"x":\n1}'


def test_data_without_space_after_colon():
    events, _ = parse_events([(1, b"data:[DONE]\n\n")])
    assert events[0][1] == b"[DONE]"


def test_unterminated_final_event_is_kept_by_parse_stream():
    pieces = [(1, b"data: a\n\n"), (4, b"data: b\n")]
    assert [(e[0], e[1]) for e in parse_stream(pieces)] == [(1, b"a"), (4, b"b")]
    assert parse_events(pieces)[1] == b"data: b\n"


def test_one_event_per_piece_gives_each_pieces_data():
    pieces = [(1, b'data: {"a":1}\n\n'), (2, b"data: [DONE]\n\n")]
    assert one_event_per_piece(pieces) == [b'{"a":1}', b"[DONE]"]
    assert [(t, d) for t, d, _ in parse_stream(pieces)] == [(1, b'{"a":1}'), (2, b"[DONE]")]


@pytest.mark.parametrize("pieces", [
    [(1, b"data: 1\n\ndata: 2\n\n")],                 # two events in one piece
    [(1, b"data: 1\n\ndata: 2"), (2, b"\n\n")],       # an event split across pieces
    [(1, b"data: 1"), (2, b"2\n\n")],
    [(1, b"data: {\"x\":\n1}\n\n")],                  # raw newline: SSE makes it two lines
    [(1, b"data: 1\ndata: 2\n\n")],                   # multi-line data
    [(1, b"data: 1\r\n\r\n")],                        # CRLF endings
    [(1, b"data:1\n\n")],                             # no space after the colon
    [(1, b": ping\n\n"), (2, b"data: 1\n\n")],        # a comment
    [(1, b"event: error\ndata: 1\n\n")],              # an event name
    [(1, b"data: 1\n\n"), (2, b"data: 2\n")],         # unterminated last event
    [],                                                # no body at all
])
def test_one_event_per_piece_declines_every_other_shape(pieces):
    assert one_event_per_piece(pieces) is None

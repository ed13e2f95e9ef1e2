import pytest

from connector.hl7.mllp import FrameReader, FrameTooLarge, frame

A = b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|1|P|2.5\rPID|1"
B = b"MSH|^~\\&|A|B|C|D|20260101||ORM^O01|2|P|2.5\rPID|2"


def test_frame_wraps_message_in_start_and_end_blocks():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_reader_returns_message_when_frame_arrives_in_one_chunk():
    assert FrameReader().feed(frame(A)) == [A]


def test_reader_joins_frame_when_split_across_chunks_at_every_byte():
    reader = FrameReader()
    data = frame(A)
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i:i + 1])
    assert out == [A]


def test_reader_returns_both_when_two_messages_arrive_in_one_chunk():
    assert FrameReader().feed(frame(A) + frame(B)) == [A, B]


def test_reader_finds_end_block_when_split_between_0x1c_and_0x0d():
    reader = FrameReader()
    data = frame(A)
    assert reader.feed(data[:-1]) == []
    assert reader.feed(data[-1:] + frame(B)[:5]) == [A]
    assert reader.feed(frame(B)[5:]) == [B]


def test_reader_discards_garbage_before_and_between_frames():
    reader = FrameReader()
    assert reader.feed(b"noise\r\n" + frame(A) + b"\x1c\x0djunk" + frame(B) + b"tail") == [A, B]
    assert reader.discarded == len(b"noise\r\n") + len(b"\x1c\x0djunk") + len(b"tail")


def test_reader_resyncs_when_a_new_frame_starts_before_the_end_block():
    reader = FrameReader()
    assert reader.feed(b"\x0bMSH|cut short" + frame(A)) == [A]
    assert reader.discarded == len(b"MSH|cut short")


def test_reader_raises_and_resyncs_when_frame_is_oversized_across_chunks():
    reader = FrameReader(max_size=100)
    big = b"MSH|^~\\&|BIG|" + b"x" * 300
    reader.feed(b"\x0b" + big[:60])
    with pytest.raises(FrameTooLarge) as exc:
        reader.feed(big[60:200])
    assert exc.value.head.startswith(b"MSH|^~\\&|BIG|")
    assert "100 bytes" in exc.value.text
    assert reader.feed(big[200:]) == []
    assert reader.feed(b"\x1c\x0d" + frame(A)) == [A]


def test_reader_keeps_frames_before_and_after_an_oversized_one_in_one_chunk():
    reader = FrameReader(max_size=100)
    with pytest.raises(FrameTooLarge) as exc:
        reader.feed(frame(A) + frame(b"MSH|" + b"x" * 200) + frame(B))
    assert exc.value.frames == [A]
    assert reader.feed(b"") == [B]

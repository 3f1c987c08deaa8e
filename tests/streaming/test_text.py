"""Text deltas: held back while they could start a stop string or end mid-character."""

from __future__ import annotations

from streaming.text import TextStream


class ByteDecoder:
    """Each id is one byte of UTF-8, decoded as a byte-level BPE tokenizer would."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def feed(stream: TextStream, text: str) -> list[str]:
    data = list(text.encode())
    return [stream.push(data[: i + 1]) for i in range(len(data))]


def test_deltas_join_to_the_text() -> None:
    stream = TextStream(ByteDecoder(), ())
    deltas = feed(stream, "Hello, world")
    assert "".join(deltas) + stream.flush() == "Hello, world"


def test_a_multibyte_character_is_released_whole() -> None:
    stream = TextStream(ByteDecoder(), ())
    deltas = feed(stream, "café")
    assert deltas[-2:] == ["", "é"]
    assert "\ufffd" not in "".join(deltas)


def test_stop_string_is_cut_and_never_shown() -> None:
    stream = TextStream(ByteDecoder(), ("\n\n",))
    deltas = feed(stream, "One line.\n\nNext")
    assert stream.stopped
    assert "".join(deltas) + stream.flush() == "One line."


def test_a_partial_stop_match_is_released_when_it_diverges() -> None:
    stream = TextStream(ByteDecoder(), ("END",))
    deltas = feed(stream, "We ENjoy")
    assert not stream.stopped
    assert deltas[3:6] == ["", "", "ENj"]  # "E" and "EN" held back until "j" rules out "END"
    assert "".join(deltas) + stream.flush() == "We ENjoy"

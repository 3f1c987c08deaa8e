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


def test_whole_words_hold_back_the_word_being_written() -> None:
    stream = TextStream(ByteDecoder(), (), whole_words=True)
    deltas = feed(stream, " the cat sat")
    assert "".join(deltas) == " the cat "  # "sat" may still become "satin"
    assert stream.flush(complete=True) == "sat"


def test_whole_words_leave_out_a_word_cut_off() -> None:
    stream = TextStream(ByteDecoder(), (), whole_words=True)
    feed(stream, " the magnif")
    assert stream.flush(complete=False) == ""
    assert stream.text == " the "


def test_whole_words_keep_apostrophes_and_hyphens_inside_a_word() -> None:
    stream = TextStream(ByteDecoder(), (), whole_words=True)
    deltas = feed(stream, " the ship's well-lit deck,")
    assert "".join(deltas) + stream.flush(complete=False) == " the ship's well-lit deck,"


def test_without_whole_words_a_cut_off_word_is_released() -> None:
    stream = TextStream(ByteDecoder(), ())
    deltas = feed(stream, " the magnif")
    assert "".join(deltas) + stream.flush(complete=False) == " the magnif"

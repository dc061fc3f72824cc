import pytest

from asr.text import BLANK_ID, CharTokenizer, TokenizerError, normalize_text


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Hello, World!", "hello world"),
        ("  DON\u2019T   stop  ", "don't stop"),
        ("'quoted' words", "quoted words"),
        ("rock-n-roll; yes.", "rock n roll yes"),
        ("<s> YES </s>", "s yes s"),
        ("", ""),
    ],
)
def test_normalize_text(raw, norm):
    assert normalize_text(raw) == norm


def test_round_trip_and_blank():
    tok = CharTokenizer.english()
    ids = tok.encode("It's a Test")
    assert BLANK_ID not in ids
    assert tok.decode(ids) == "it's a test"
    assert tok.symbols[BLANK_ID] == "<blank>"
    assert tok.vocab_size == 29


def test_unknown_characters_are_named_with_position():
    tok = CharTokenizer.english()
    with pytest.raises(TokenizerError, match=r"'é' at 3, '3' at 5 in 'café 3'"):
        tok.encode("café 3")
    assert tok.unknown("café 3") == [(3, "é"), (5, "3")]


def test_from_texts_and_serialisation():
    tok = CharTokenizer.from_texts(["Zoë 42", "abc"])
    assert set(tok.symbols[2:]) == set("zoë42abc")
    again = CharTokenizer.from_dict(tok.to_dict())
    assert again.symbols == tok.symbols
    assert again.decode(again.encode("zoë 42")) == "zoë 42"


def test_decode_collapses_spaces():
    tok = CharTokenizer.english()
    assert tok.decode([1, 1] + tok.encode("ab") + [1, 1, 1] + tok.encode("c") + [1]) == "ab c"

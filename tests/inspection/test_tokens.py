"""Token labels: real characters for byte pieces, visible whitespace, specials as they are."""

import re

import pytest
import torch

from attnviz.inspection.tokens import bytes_to_unicode, clean_text_for_display, describe_tokens, token_labels

TEXTS = ["The cat sat on the mat.", "naïve café", "注意力机制很重要", "🙂👍🏽", "Attention 注意 🙂!"]
PIECE = re.compile(r"(.)\((\d+)/(\d+)\)")
MARKERS = {"␣": " ", "↵": "\n", "⇥": "\t", "…": ""}


def chars_of(labels: list[str]) -> str:
    """The labels' characters minus markers: a split character counted once (at its first piece)."""
    text = PIECE.sub(lambda m: m[1] if m[2] == "1" else "", "".join(labels))
    for mark, char in MARKERS.items():
        text = text.replace(mark, char)
    return text


def assert_clean(labels: list[str], text: str) -> None:
    joined = "".join(labels)
    assert "\ufffd" not in joined
    foreign = {c for c in joined if 0x80 <= ord(c) <= 0xFF} - set(text)  # mojibake lives in Latin-1 supplement
    assert not foreign, f"mojibake {foreign} in {labels}"


class FakeTokenizer:
    """Just what token_labels uses: id -> token string, special ids, and a marker of the scheme."""

    def __init__(self, tokens: list[str], specials: tuple[int, ...] = (), **scheme):
        self.tokens = tokens
        self.all_special_ids = list(specials)
        for name, value in scheme.items():
            setattr(self, name, value)

    def convert_ids_to_tokens(self, ids):
        return [self.tokens[i] for i in ids]


def byte_tokens(*pieces: bytes) -> list[str]:
    table = bytes_to_unicode()
    return ["".join(table[b] for b in piece) for piece in pieces]


def test_bytes_to_unicode_is_gpt2_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


def test_split_character_pieces_hand_built():
    # 中 is E4 B8 AD; "a" in the middle token between the tail of one 中 and the head of the next.
    tok = FakeTokenizer(byte_tokens(b"\xe4\xb8", b"\xada\xe4", b"\xb8\xad", b" \xe4"), byte_decoder={})
    assert token_labels(tok, [0, 1, 2]) == ["中(1/2)", "中(2/2)a中(1/2)", "中(2/2)"]
    infos = describe_tokens(tok, [0, 1, 2])
    assert [i.text for i in infos] == ["中", "a中", ""]
    assert [i.partial for i in infos] == [True, True, True]
    # A text cut inside a character: the stray byte is shown as hex, never as U+FFFD.
    assert token_labels(tok, [3]) == ["␣<0xE4>"]


def test_marks_and_variation_selectors():
    # ❤ = E2 9D A4, VS16 = EF B8 8F; the Devanagari vowel sign ि (E0 A4 BF) renders on क (E0 A4 95).
    tok = FakeTokenizer(byte_tokens(b"\xe2\x9d\xa4", b"\xef\xb8\x8f", b"\xe2\x9d\xa4\xef\xb8\x8f",
                                    b"\xe0\xa4\x95", b"\xe0\xa4\xbf", b"\xef\xb8", b"\x8f"), byte_decoder={})
    assert token_labels(tok, [0, 1]) == ["❤", "<U+FE0F>"]
    assert token_labels(tok, [2]) == ["❤\ufe0f"]
    assert token_labels(tok, [3, 4]) == ["क", "◌ि"]
    assert token_labels(tok, [0, 5, 6]) == ["❤", "<U+FE0F>(1/2)", "<U+FE0F>(2/2)"]


def test_special_token_breaks_the_byte_stream():
    tok = FakeTokenizer(byte_tokens(b"\xe4\xb8", b"\xad") + ["<s>"], specials=(2,), byte_decoder={})
    assert token_labels(tok, [0, 2, 1]) == ["<0xE4><0xB8>", "<s>", "<0xAD>"]
    assert token_labels(tok, [2, 0, 1]) == ["<s>", "中(1/2)", "中(2/2)"]


def test_sentencepiece_byte_fallback_and_metaspace():
    tok = FakeTokenizer(["▁hello", "<0xE4>", "<0xB8>", "<0xAD>", "▁▁x"], sp_model=None)
    assert token_labels(tok, [0, 1, 2, 3, 4]) == ["␣hello", "中(1/3)", "中(2/3)", "中(3/3)", "␣␣x"]


def test_wordpiece_continuation():
    tok = FakeTokenizer(["[CLS]", "token", "##ization", "##", "[SEP]"], specials=(0, 4), wordpiece_tokenizer=None)
    assert token_labels(tok, [0, 1, 2, 3, 4]) == ["[CLS]", "token", "…ization", "##", "[SEP]"]


def test_clean_text_for_display():
    assert clean_text_for_display("a b\nc\td\x00\u200d") == "a b↵c⇥d␀<U+200D>"
    assert clean_text_for_display("a b", show_spaces=True) == "a␣b"
    assert clean_text_for_display("\u0301x") == "◌\u0301x"


@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_labels_are_readable(smollm2, text):
    ids = smollm2.tokenizer(text)["input_ids"]
    labels = token_labels(smollm2.tokenizer, ids)
    assert len(labels) == len(ids)
    assert_clean(labels, text)
    assert chars_of(labels) == text
    assert "".join(i.text for i in describe_tokens(smollm2.tokenizer, ids)) == text


def test_smollm2_hand_checked(smollm2):
    tok = smollm2.tokenizer
    # 注 = E6 B3 A8 is split as "␣"+E6 | B3 | A8; 🙂 (F0 9F 99 82) with its space is one token.
    assert token_labels(tok, tok("Attention 注意 🙂!")["input_ids"]) == [
        "Attention", "␣注(1/3)", "注(2/3)", "注(3/3)", "意(1/3)", "意(2/3)", "意(3/3)", "␣🙂", "!"]
    assert token_labels(tok, tok("naïve café")["input_ids"]) == ["na", "ïve", "␣café"]
    assert token_labels(tok, tok("a\n\tb  c")["input_ids"]) == ["a", "↵", "⇥", "b", "␣", "␣c"]
    ids = tok("<|im_start|>user\nhi<|im_end|>")["input_ids"]
    assert token_labels(tok, torch.tensor(ids)) == ["<|im_start|>", "user", "↵", "hi", "<|im_end|>"]


@pytest.mark.parametrize("text", TEXTS)
def test_minilm_labels_follow_its_normalised_text(minilm, text):
    tok = minilm.tokenizer
    ids = tok(text)["input_ids"]
    labels = token_labels(tok, ids)
    assert labels[0] == "[CLS]" and labels[-1] == "[SEP]"
    assert_clean(labels, text)
    # BERT lowercases, strips accents and drops spaces; [UNK] stands for a whole word.
    normalised = "".join(tok.backend_tokenizer.normalizer.normalize_str(text).split())
    pattern = "".join(r"\S+?" if lab == "[UNK]" else re.escape(chars_of([lab])) for lab in labels[1:-1])
    assert re.fullmatch(pattern, normalised), (labels, normalised)


def test_minilm_hand_checked(minilm):
    tok = minilm.tokenizer
    assert token_labels(tok, tok("naïve café")["input_ids"]) == ["[CLS]", "naive", "cafe", "[SEP]"]
    assert token_labels(tok, tok("tokenization")["input_ids"]) == ["[CLS]", "token", "…ization", "[SEP]"]

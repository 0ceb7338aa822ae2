"""Readable labels for tokens, for any Unicode text and any common tokenizer.

Byte-level BPE tokenizers (GPT-2, SmolLM2, Llama 3...) work on UTF-8 bytes: a
Chinese character (3 bytes) or an emoji (4 bytes) is often split over two or
three tokens, and the tokenizer's own token strings are then mojibake such as
``'æ³'`` or ``'ðŁ'``; decoding a single token gives U+FFFD.  Here each token's
raw bytes are recovered (byte-level: the GPT-2 ``bytes_to_unicode`` table,
inverted; WordPiece: the token minus ``##``; SentencePiece: ``▁`` is a space,
``<0xNN>`` a byte) and the byte stream of the whole text is walked, so that:

* a token whose bytes complete characters shows them (``'café'``);
* a token holding only a piece of a multi-byte character shows that character
  and which piece it is: ``'注(1/3)'``, ``'注(2/3)'``, ``'注(3/3)'`` (the
  character's bytes are spread over three tokens);
* whitespace and invisible characters get visible markers: a space is ``␣``,
  a newline ``↵``, a tab ``⇥``, a carriage return ``␍``, other control
  characters their Control Pictures symbol, other invisible characters
  (and a variation selector not attached to its character) ``<U+200D>``;
  a combining mark that starts a label is shown on a dotted circle ``◌``;
* WordPiece continuations (``##ing``) are shown as ``…ing``;
* special tokens (``<|im_start|>``, ``[CLS]``, ``[UNK]``) are shown as they
  are, and bytes that are not valid UTF-8 (a text cut in the middle of a
  character) as ``<0xF0>``.

Labels are for display: they need not be unique.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "SPACE_MARK", "NEWLINE_MARK", "TAB_MARK", "CONTINUATION_MARK", "TOKEN_LEGEND", "TokenInfo",
    "bytes_to_unicode", "clean_text_for_display", "describe_tokens", "token_labels",
]

SPACE_MARK = "␣"
NEWLINE_MARK = "↵"
TAB_MARK = "⇥"
CR_MARK = "␍"
CONTINUATION_MARK = "…"
DOTTED_CIRCLE = "◌"
TOKEN_LEGEND = (f"How tokens are written: {SPACE_MARK} = a space before the word · {NEWLINE_MARK} = a line break · "
                "a word may be split into several tokens · 注(1/2) = part of a character split over tokens")
"""One line that explains the notation of :func:`token_labels`, for wherever tokens are shown."""
_MARKS = {" ": SPACE_MARK, "\n": NEWLINE_MARK, "\t": TAB_MARK, "\r": CR_MARK, "\x7f": "␡"}
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class TokenInfo:
    """One token, described for display.

    ``label``: what to show.  ``text``: the characters of the text that *start*
    in this token (so joining ``text`` over all non-special tokens gives the
    text the tokenizer saw, each character once).  ``special``: a special
    token (shown as it is, holds no text).  ``partial``: the token holds only
    part of at least one multi-byte character.
    """

    label: str
    text: str
    special: bool = False
    partial: bool = False


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from byte value (0..255) to the printable character that stands for it in token strings."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _visible_char(ch: str) -> str:
    """A visible stand-in for whitespace, control and invisible characters; other characters unchanged."""
    if ch in _MARKS:
        return _MARKS[ch]
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␀ ␁ ...
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") or (category == "Zs" and ch != " "):
        return f"<U+{code:04X}>"
    return ch


def _is_variation_selector(ch: str) -> bool:
    return 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF


def _is_mark(ch: str) -> bool:
    """A combining mark (accent, vowel sign...), which renders on the character before it."""
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") and not _is_variation_selector(ch)


def clean_text_for_display(text: str, show_spaces: bool = False) -> str:
    """``text`` with newlines, tabs, control and invisible characters replaced by visible markers.

    Spaces stay spaces unless ``show_spaces`` (then ``␣``).  A leading
    combining mark gets a dotted circle to sit on.
    """
    out = "".join(ch if ch == " " and not show_spaces else _visible_char(ch) for ch in text)
    if out and _is_mark(out[0]):
        out = DOTTED_CIRCLE + out
    return out


def _decoder_types(tokenizer) -> dict[str, dict]:
    """The fast tokenizer's decoder components, by type name (``{}`` if unknown)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return {}
    try:
        state = json.loads(decoder.__getstate__())
    except (AttributeError, TypeError, ValueError):
        return {}
    found: dict[str, dict] = {}
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("type"), str):
                found.setdefault(node["type"], node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _scheme(tokenizer) -> tuple[str, str]:
    """How token strings encode text: ``("bytelevel"|"wordpiece"|"metaspace"|"plain", wordpiece_prefix)``."""
    types = _decoder_types(tokenizer)
    if "ByteLevel" in types or hasattr(tokenizer, "byte_decoder"):
        return "bytelevel", ""
    if "WordPiece" in types:
        return "wordpiece", types["WordPiece"].get("prefix", "##")
    if hasattr(tokenizer, "wordpiece_tokenizer"):
        return "wordpiece", "##"
    if "Metaspace" in types or "ByteFallback" in types or hasattr(tokenizer, "sp_model"):
        return "metaspace", ""
    return "plain", ""


def _special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", ()) or ())
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(i for i, tok in added.items() if getattr(tok, "special", False))
    return ids


def _token_bytes(token: str, scheme: str, prefix: str) -> tuple[bytes, bool]:
    """The raw UTF-8 bytes a (non-special) token string stands for, and whether it continues a word (WordPiece)."""
    if scheme == "bytelevel":
        table = _unicode_to_bytes()
        if all(c in table for c in token):
            return bytes(table[c] for c in token), False
    elif scheme == "wordpiece" and prefix and token.startswith(prefix) and len(token) > len(prefix):
        return token[len(prefix):].encode("utf-8"), True
    elif scheme == "metaspace":
        match = _SP_BYTE.fullmatch(token)
        if match:
            return bytes([int(match[1], 16)]), False
        return token.replace("▁", " ").encode("utf-8"), False
    return token.encode("utf-8"), False


def _utf8_units(data: bytes) -> list[tuple[int, int, str | None]]:
    """Split ``data`` into characters: ``(start, end, char)``; a byte that starts no valid character is ``None``."""
    units, i = [], 0
    while i < len(data):
        lead = data[i]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else \
            4 if 0xF0 <= lead <= 0xF4 else 0
        if size and i + size <= len(data):
            try:
                units.append((i, i + size, data[i:i + size].decode("utf-8")))
                i += size
                continue
            except UnicodeDecodeError:
                pass
        units.append((i, i + 1, None))
        i += 1
    return units


def _describe_run(pieces: list[tuple[bytes, bool]]) -> list[TokenInfo]:
    """Labels for consecutive ordinary tokens ``(bytes, continuation)``, whose bytes form one stream."""
    data = b"".join(b for b, _ in pieces)
    owner = [t for t, (b, _) in enumerate(pieces) for _ in b]  # token index of every byte
    parts: list[list[str]] = [[] for _ in pieces]
    texts: list[list[str]] = [[] for _ in pieces]
    partial = [False] * len(pieces)
    for start, end, char in _utf8_units(data):
        if char is None:
            parts[owner[start]].append(f"<0x{data[start]:02X}>")
            continue
        first, last = owner[start], owner[end - 1]
        texts[first].append(char)
        shown = _visible_char(char)
        if _is_variation_selector(char) and (first != last or not parts[first]):
            shown = f"<U+{ord(char):04X}>"  # invisible unless it follows its character in the same label
        for t in range(first, last + 1):
            if first == last:
                parts[t].append(shown)
            else:
                parts[t].append(f"{shown}({t - first + 1}/{last - first + 1})")
                partial[t] = True
    infos = []
    for t, (_, continuation) in enumerate(pieces):
        label = "".join(parts[t])
        if label and _is_mark(label[0]):
            label = DOTTED_CIRCLE + label
        if continuation:
            label = CONTINUATION_MARK + label
        infos.append(TokenInfo(label=label, text="".join(texts[t]), partial=partial[t]))
    return infos


def describe_tokens(tokenizer, ids: Sequence[int]) -> list[TokenInfo]:
    """One :class:`TokenInfo` per id of ``ids`` (a sequence of ints, or a 1-D tensor), in order."""
    ids = [int(i) for i in ids]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    scheme, prefix = _scheme(tokenizer)
    specials = _special_ids(tokenizer)
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    infos: list[TokenInfo] = []
    run: list[tuple[bytes, bool]] = []
    for i, token in zip(ids, tokens, strict=True):
        token = "" if token is None else str(token)
        if i in specials:
            infos.extend(_describe_run(run))
            run = []
            infos.append(TokenInfo(label=token, text="", special=True))
        elif i in added:  # added (non-special) tokens hold their text as it is
            run.append((token.encode("utf-8"), False))
        else:
            run.append(_token_bytes(token, scheme, prefix))
    infos.extend(_describe_run(run))
    return infos


def token_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """A readable label per token of ``ids`` (see the module docstring); never mojibake nor U+FFFD."""
    return [info.label for info in describe_tokens(tokenizer, ids)]

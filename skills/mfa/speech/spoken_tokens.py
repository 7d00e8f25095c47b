"""An utterance cut into words, digit runs and pauses, before any reading.

Anything that could hide a digit or change a number's meaning is refused here (``None``):
a symbol, a letter outside ASCII once accents and look-alike digits are folded, a sign
("-481229"), a token mixing letters and digits ("4th"). Punctuation becomes one pause.
"""

from __future__ import annotations

import re
import string
import unicodedata

from skills.mfa.speech import number_words
from skills.mfa.speech.spoken_lexicon import PAUSE

_APOSTROPHES = frozenset("'\u2019\u02bc")  # "it's" -> "its"
_ASCII_PUNCTUATION = frozenset(string.punctuation) - frozenset("$+<=>^`|~")  # those are symbols
_TOKEN = re.compile(r"[a-z0-9']+|\S")
_NEGATIVE = re.compile(r"(?:^|\s)-\d")  # "-481229": a sign, not a separator
_SPELLED_OK = re.compile(r"\bo\.?\s*k\b")  # "O.K.", "o k": a word, not a zero


def tokenize(text: str) -> list[str] | None:
    """Lower-case words, ASCII digit runs and pauses; None on a symbol or foreign letter."""
    if not text.isascii():
        text = _to_ascii(text)
        if text is None:
            return None
    text = text.lower()
    if _NEGATIVE.search(text):
        return None
    if "k" in text:
        text = _SPELLED_OK.sub("ok", text)
    tokens: list[str] = []
    for token in _TOKEN.findall(text):
        if token.isalpha() or token.isdigit():
            tokens.append(token)
        elif token.isalnum() or (len(token) > 1 and "'" in token):
            token = token.replace("'", "")
            # A token is all digits or all letters: "abc123" and "4th" are refused.
            if token and not (token.isalpha() or token.isdigit()):
                return None
            if token:
                tokens.append(token)
        elif token in ("-", "'"):
            continue  # "forty-two", "4-8-1": joins, not a pause
        elif token in _ASCII_PUNCTUATION:
            tokens.append(PAUSE)
        else:
            return None
    return tokens


def _to_ascii(text: str) -> str | None:
    """Map each non-ASCII character to one ASCII one (offsets kept); None if not allowed."""
    text = number_words.fold_spanish_letters(text)
    chars: list[str] = []
    for ch in text:
        if ch.isascii():
            chars.append(ch)
        elif ch.isdecimal():
            chars.append(str(unicodedata.decimal(ch)))
        elif ch in _APOSTROPHES:
            chars.append("'")
        elif ch.isspace():
            chars.append(" ")
        else:
            category = unicodedata.category(ch)
            if category == "Pd":
                chars.append("-")
            elif category.startswith("P"):
                chars.append(".")
            else:
                return None  # symbols, emoji, non-ASCII letters and look-alikes
    return "".join(chars)


def spanish_articles(tokens: list[str]) -> list[str]:
    """ "un"/"una" are the number one only inside a number ("ochenta y un mil", "un mil");
    elsewhere they are articles ("tengo una clave") and stay conversation."""
    tens_y = number_words.SPANISH_WORDS.tens
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token not in number_words.SPANISH_ARTICLES:
            continue
        before_thousand = i + 1 < len(tokens) and tokens[i + 1] == "mil"
        after_tens = i >= 2 and tokens[i - 1] == "y" and tokens[i - 2] in tens_y
        if before_thousand or after_tens:
            out[i] = "uno"
    return out

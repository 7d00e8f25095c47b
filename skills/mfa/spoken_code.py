"""Turn the code a caller read back (speech or keypad) into plain digits.

The model hands over whatever speech recognition heard, e.g. "um, my code is
four eight one, double two, nine". Every code we send upstream costs the caller
one of a few attempts, so this module is strict: it returns exactly ``length``
ASCII digits or ``None``. ``None`` means "ask again", which costs nothing; a
guess costs an attempt. Anything unclear is therefore refused rather than
repaired.

Accepted, case-insensitive, in any mix:

* digits with any spacing or punctuation: "481 229", "4-8-1.2,2 9", "*481229#";
  Unicode decimal digits (full-width, Arabic-Indic) count as their ASCII digit;
* digit words, and "oh" / "o" / "nought" for zero;
* teens and tens, as a caller reads pairs: "forty two seventeen ninety" -> 421790;
* "double X" / "triple X", where X is one digit (word or character);
* filler words anywhere ("my code is", "um", "and", "thank you", ...). A filler
  is a pause: "forty um two" is 40 then 2, never 42.

Refused on purpose: scale words ("hundred", "thousand": "two hundred two
hundred" would read as 202 100), homophones ("for", "to"), ordinals, signs,
symbols, any other word, and text longer than ``MAX_SPOKEN_INPUT``.

The function is pure and never logs: its input usually contains the code.
"""

from __future__ import annotations

import re
import unicodedata

from text_to_num import alpha2digit

MAX_SPOKEN_INPUT = 200  # characters; longer input is refused without parsing

# Words text2num leaves alone when they stand on their own ("one", "two", "zero").
_DIGIT_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# Zero as people say it; text2num does not know these, so they are ours.
_ZERO_WORDS = frozenset({"oh", "o", "nought", "naught"})
# Words handed to text2num, which merges "forty two" into 42.
_PAIR_WORDS = frozenset(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen "  # noqa: SIM905
    "twenty thirty forty fifty sixty seventy eighty ninety".split()
)
_NUMBER_WORDS = _PAIR_WORDS | _DIGIT_WORDS.keys()
_REPEATS = {"double": 2, "triple": 3}
_FILLERS = frozenset(
    "my the code number is it its that thats i think um umm uh uhh er erm ah hmm "  # noqa: SIM905
    "okay ok yeah so please and thanks thank you".split()
)
_APOSTROPHES = frozenset("'\u2019\u02bc")  # "it's" -> "its"
_NEGATIVE = re.compile(r"(?:^|\s)-\d")  # "-481229": a sign, not a separator


def normalize_spoken_code(text: object, length: int) -> str | None:
    """Turn what a caller said or typed into exactly `length` digits, or None.

    ``text`` is the model's ``token`` argument and may be any object: a string
    is parsed, a non-negative ``int`` counts as its decimal digits (so 12345
    for a 6-digit code, whose leading zero is lost, is refused), anything else
    is refused. Raises ``ValueError`` only for a ``length`` below 1.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        digits = str(int(text)) if 0 <= text < 10**length else None
    elif isinstance(text, str) and len(text) <= MAX_SPOKEN_INPUT:
        digits = _digits_from_text(text)
    else:
        return None
    return digits if digits is not None and len(digits) == length else None


def _digits_from_text(text: str) -> str | None:
    """All digits the caller gave, in order, or None on anything not understood."""
    if _NEGATIVE.search(text):
        return None
    tokens = _tokenize(text)
    if tokens is None:
        return None
    out: list[str] = []
    run: list[str] = []  # consecutive number words, converted together
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in _NUMBER_WORDS:
            run.append(token)
            continue
        if run:
            words = _number_words_to_digits(run)
            if words is None:
                return None
            out.append(words)
            run = []
        if token.isdigit():
            out.append(token)
        elif token in _ZERO_WORDS:
            out.append("0")
        elif token in _REPEATS:
            digit = _single_digit(tokens[i]) if i < len(tokens) else None
            if digit is None:
                return None
            out.append(digit * _REPEATS[token])
            i += 1
        elif token not in _FILLERS:
            return None
    if run:
        words = _number_words_to_digits(run)
        if words is None:
            return None
        out.append(words)
    return "".join(out)


def _tokenize(text: str) -> list[str] | None:
    """Lower-case words and ASCII digit runs; None if a symbol or foreign letter shows up."""
    chars: list[str] = []
    for ch in text:
        if ch.isdecimal():
            chars.append(str(unicodedata.decimal(ch)))
        elif ch.isascii() and ch.isalpha():
            chars.append(ch.lower())
        elif ch in _APOSTROPHES:
            continue
        elif ch.isspace() or unicodedata.category(ch).startswith("P"):
            chars.append(" ")  # punctuation, including keypad "#" and "*"
        else:
            return None
    tokens = "".join(chars).split()
    # A token is all digits or all letters: "abc123" and "4th" are refused.
    if any(not (t.isdigit() or t.isalpha()) for t in tokens):
        return None
    return tokens


def _number_words_to_digits(words: list[str]) -> str | None:
    """Digits for a run of number words: "forty two seven" -> "427"."""
    out: list[str] = []
    for piece in alpha2digit(" ".join(words), "en").split():
        if piece.isascii() and piece.isdigit():
            out.append(piece)
        elif piece in _DIGIT_WORDS:  # text2num keeps a lone "one" or "zero" as a word
            out.append(_DIGIT_WORDS[piece])
        else:
            return None
    return "".join(out)


def _single_digit(token: str) -> str | None:
    """The one digit a token stands for ("4", "four", "oh"), for "double"/"triple"."""
    if len(token) == 1 and token.isdigit():
        return token
    if token in _ZERO_WORDS:
        return "0"
    return _DIGIT_WORDS.get(token)

"""Spoken numbers masked in free text: a summary or a provider's error must not carry a code.

Counted generously, in every language whose number words we ship (German included, which
the agent does not speak): here a miss leaks a code and an extra mask costs nothing.
"""

from __future__ import annotations

import re

from skills.mfa.speech import number_words
from skills.mfa.speech.spoken_lexicon import PAUSES, REPEATS, TEENS, TENS, UNITS, ZERO_WORDS

_SPAN_TOKEN = re.compile(r"[^\W\d_]+|\d+|\S")
_CAMEL_PARTS = re.compile(r"[A-Z]?[^\W\d_A-Z]+|[A-Z]+(?![^\W\d_A-Z])")
# German fillers and joiners inside a run, beside the English and Spanish ones.
_GERMAN_PAUSES = frozenset({"und", "ah", "ahm", "ahem", "also"})
_REDACTION_PAUSES = PAUSES | number_words.SPANISH_PAUSES | _GERMAN_PAUSES
_JOINERS = frozenset({"and", "y", "und"})  # may join the words of one run-together token


def _digit_count(value: int) -> int:
    """How many digits a number word may stand for: a scale word counts its zeros."""
    if value in (100, 1000):
        return len(str(value)) - 1
    return len(str(value))


_MASKED_WORDS: dict[str, int] = {
    **{w: 1 for w in (*UNITS, *ZERO_WORDS)},
    **{w: 2 for w in (*TEENS, *TENS)},
    **{w: REPEATS[w] - 1 for w in REPEATS},  # the digit that follows counts once
    "hundred": 2,
    "thousand": 3,
    **{number_words.fold_any(w): _digit_count(v) for w, v in number_words.SPANISH.items()},
    **{w: 1 for w in number_words.SPANISH_ARTICLES},
    **{number_words.fold_any(w): _digit_count(v) for w, v in number_words.GERMAN.items()},
    "eine": 1,
}
_LONGEST_WORD = max(map(len, _MASKED_WORDS))


def redact_spoken_numbers(text: str, min_digits: int, mask: str = "[redacted]") -> str:
    """``text`` with every run that could read as ``min_digits`` or more digits masked.

    For free text the model wrote (a post-prompt summary) or a provider's error text,
    which must not carry a code or a phone number, however it was written: "739155",
    "7, 3, 9, 1, 5, 5", "seven three nine one five five", "seven thirty nine, one
    fifty five", "cuatro ocho uno dos dos nueve", "vier acht eins zwei zwei neun",
    "fourEightOne", "four-eight-one". A run is what ``normalize_spoken_code`` would
    read as one (digits, number words, "double"/"triple", scale words, with pauses and
    punctuation between), in every language whose number words we ship (German
    included, which the agent does not speak: speech recognition may transcribe it),
    and a word made of number words run together counts as those words. Digits are
    counted generously (a tens word counts two), because here a miss leaks a code and
    an extra mask costs nothing.
    """
    pieces: list[str] = []
    kept_until = 0
    run_start = run_end = -1
    digits = 0
    for match in _SPAN_TOKEN.finditer(text):
        token = match.group()
        counted = _loose_digit_count(token)
        if counted:
            if run_start < 0:
                run_start, digits = match.start(), 0
            digits += counted
            run_end = match.end()
            continue
        folded = number_words.fold_any(token)
        if run_start >= 0 and (folded in _REDACTION_PAUSES or not token.isalnum()):
            continue  # a pause or punctuation inside a run
        if run_start >= 0 and digits >= min_digits:
            pieces += [text[kept_until:run_start], mask]
            kept_until = run_end
        run_start = -1
    if run_start >= 0 and digits >= min_digits:
        pieces += [text[kept_until:run_start], mask]
        kept_until = run_end
    pieces.append(text[kept_until:])
    return "".join(pieces)


def _loose_digit_count(token: str) -> int:
    """How many digits a token may stand for in a spoken number; 0 for other words."""
    if token.isdigit():
        return len(token)
    word = number_words.fold_any(token)
    counted = _MASKED_WORDS.get(word)
    if counted is not None:
        return counted
    if not token.isalpha():
        return 0
    parts = _CAMEL_PARTS.findall(token)  # "fourEightOne"
    if len(parts) > 1:
        counts = [_MASKED_WORDS.get(number_words.fold_any(p), 0) for p in parts]
        if all(counts):
            return sum(counts)
    return _run_together(word)


def _run_together(word: str) -> int:
    """Digits of a word that is number words run together ("foureightone",
    "vierhundertachtzig", "einundzwanzig"), or 0 when it is not made of them whole."""
    if len(word) < 6:
        return 0
    # best[i]: the digits of word[:i] split into number words (joiners between), or -1.
    best = [-1] * (len(word) + 1)
    best[0] = 0
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - _LONGEST_WORD), end):
            if best[start] < 0:
                continue
            piece = word[start:end]
            if piece in _JOINERS and start > 0 and end < len(word):
                best[end] = max(best[end], best[start])
            elif piece in _MASKED_WORDS:
                best[end] = max(best[end], best[start] + _MASKED_WORDS[piece])
    return max(best[-1], 0)

"""Turn the code a caller read back (speech or keypad) into plain digits.

The model hands over whatever speech recognition heard, e.g. "um, my code is
four eight one, double two, nine", or "alright, here goes: 5 2 9 0 3 1 - got
it?". Every code we send upstream costs the caller one of a few attempts, so
this module is strict: it returns exactly ``length`` ASCII digits or ``None``.
``None`` means "ask again", which costs nothing; a guess costs an attempt.
Anything unclear is therefore refused rather than repaired.

The rule: the utterance is cut into words; number words and digits, with the
pauses between them (punctuation, "um", "and", "so", "then"), form a *run*;
any other word is conversation and ends a run. The code is accepted only when
the utterance holds exactly one run, that run reads unambiguously as digits,
and those are exactly ``length`` digits. Digits anywhere else ("I have 2
phones, code 529031"), two readings ("is it 529031 or 529032", "5 2 9... no
wait, 5 2 8 0 3 1") or a correction word once the digits have started
("529031, sorry") are refused: we cannot know which digits are the code.

Accepted inside a run, case-insensitive, in any mix:

* digits with any spacing or punctuation: "481 229", "4-8-1.2,2 9", "*481229#";
  Unicode decimal digits (full-width, Arabic-Indic) count as their ASCII digit;
* digit words, and "oh" / "o" / "nought" for zero;
* teens and tens, as a caller reads pairs: "forty two seventeen ninety" -> 421790;
  "forty two" is always 42: a pause splits it ("forty um two" -> 402);
* "double X" / "triple X", where X is one digit (word or character);
* groups with "hundred": "six hundred and four, two ninety" -> 604290;
  "X hundred Y" is always one group (Y from 1 to 99);
* one whole number with "thousand": "five hundred twenty nine thousand thirty
  one" -> 529031. A whole number has no leading zero, so "twenty nine thousand
  thirty one" is 29031 (too short for six digits, refused), and it must be the
  only thing in its run (so a pause after "thousand" cannot split it).

Outside the run, any conversation ("my code is", "thanks", "got it?"). A lone
"oh" there ("oh, it's 529031") is an interjection, not a zero.

With Spanish configured (``languages``), its words count too, mixed with English
as callers mix them: digits ("cuatro ocho uno"), single words for 10 to 29
("once", "veintiséis"), tens joined with "y" ("sesenta y dos"; "sesenta dos"
without it is refused), hundreds words ("seiscientos cuatro", "ciento veinte",
"cien"), one whole number with "mil" ("cuatrocientos ochenta y un mil quinientos
dieciséis"; "mil quinientos" needs no count), accents dropped or not, and
Spanish fillers and corrections ("eh", "este", "perdón", "digo"). Read by
context: "o" is "or" in Spanish, so a run with Spanish words and "o" is refused;
"un"/"una" are the number one only inside a number ("ochenta y un mil"),
elsewhere an article ("tengo una clave"); a lone "once" is the English word.

Refused on purpose: more or fewer digits than ``length``; digits outside the
run; correction words ("no", "wait", "sorry", "I mean", "actually", "scratch
that", "or", ...) after the first digit; words that sound like or modify a
number ("to", "for", "won", "minus", "point", "million", ...) right next to
the run; "hundred" or "thousand" that do not read as one number ("two hundred
two hundred", "six hundred oh four"); symbols ("+", "$"), ordinals and
letters-with-digits ("4th"); non-ASCII letters; and any text longer than
``MAX_SPOKEN_INPUT`` (checked before any other work: this runs on every verify).

The functions are pure, never log (their input usually holds the code) and
never raise on any ``text``.
"""

from __future__ import annotations

from collections.abc import Iterable

from skills.mfa.speech import number_words
from skills.mfa.speech.spoken_lexicon import ENGLISH_ONLY, REPEATS, UNITS, Lexicon, lexicon_for
from skills.mfa.speech.spoken_tokens import spanish_articles, tokenize

__all__ = ["ENGLISH_ONLY", "MAX_SPOKEN_INPUT", "normalize_spoken_code", "read_digits"]

MAX_SPOKEN_INPUT = 500  # characters; longer input is refused without parsing


class _Refused(Exception):
    """Internal: the utterance cannot be read safely."""


def normalize_spoken_code(
    text: object, length: int, languages: Iterable[str] = ENGLISH_ONLY
) -> str | None:
    """Turn what a caller said or typed into exactly `length` digits, or None.

    ``text`` is the model's ``token`` argument and may be any object: a string
    is read by the rule in the module docstring, a non-negative ``int`` counts
    as its decimal digits (so 12345 for a 6-digit code, whose leading zero is
    lost, is refused), anything else is refused. ``languages`` are the
    configured languages whose number words count (English always does). Never
    raises for any ``text``; raises ``ValueError`` only for a ``length`` below 1
    or a language without number words (programming errors, not caller input).
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    lexicon = lexicon_for(languages)
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        digits = str(int(text)) if 0 <= text < 10**length else None
    else:
        digits = _read(text, lexicon)
    return digits if digits is not None and len(digits) == length else None


def read_digits(text: object, languages: Iterable[str] = ENGLISH_ONLY) -> str | None:
    """The one number a caller read out, as ASCII digits of any length, or None.

    The same rule as ``normalize_spoken_code`` without the length check, for
    spoken numbers whose length varies (an account number): "it's four oh
    seven, double two" -> "40722"; "I have 2 phones, code 529031" -> None.
    None for anything but a ``str`` of at most ``MAX_SPOKEN_INPUT``
    characters. Never raises for any ``text``.
    """
    return _read(text, lexicon_for(languages))


def _read(text: object, lexicon: Lexicon) -> str | None:
    if not isinstance(text, str) or len(text) > MAX_SPOKEN_INPUT:
        return None
    try:
        tokens = tokenize(text)
        if tokens is None:
            return None
        if lexicon.spanish:
            tokens = spanish_articles(tokens)
        run = _the_one_run(tokens, lexicon)
        return None if run is None else _read_run(run, lexicon)
    except _Refused:
        return None
    except Exception:  # pragma: no cover - a bug must cost a repeat, never the call
        return None


def _the_one_run(tokens: list[str], lex: Lexicon) -> list[str] | None:
    """The single run of number words, digits and pauses in the utterance, or None."""
    runs: list[list[str]] = []
    run: list[str] | None = None
    previous_word = ""  # the last word outside a run
    digits_started = False
    for token in tokens:
        if token.isdigit() or token in lex.number_words:
            if run is None:
                if previous_word in lex.near_digits:
                    return None
                run = []
                runs.append(run)
            # A lone "oh" may be an interjection; a second number word makes it digits.
            starts_digits = token not in lex.interjections or any(t not in lex.pauses for t in run)
            run.append(token)
            digits_started = digits_started or starts_digits
        elif token in lex.pauses:
            if run is not None:
                run.append(token)
        else:
            if run is not None and token in lex.near_digits:
                return None
            if digits_started and token in lex.corrections:
                return None
            run = None
            previous_word = token
    runs = [r for r in runs if not _lone_interjection(r, lex)]
    return runs[0] if len(runs) == 1 else None


def _lone_interjection(run: list[str], lex: Lexicon) -> bool:
    """ "oh, it's 529031": one "oh" and pauses is an interjection; "oh oh" is two zeros."""
    words = [t for t in run if t not in lex.pauses]
    return len(words) == 1 and words[0] in lex.interjections


def _read_run(run: list[str], lex: Lexicon) -> str | None:
    """Digits for one run: "six hundred and four , two ninety" -> "604290"."""
    if lex.spanish and "o" in run and any(t in number_words.SPANISH for t in run):
        return None  # in Spanish "o" is "or": two readings, not a zero
    out: list[str] = []
    n = len(run)
    i = 0
    while i < n:
        token = run[i]
        if token in lex.pauses:
            i += 1
        elif token.isdigit():
            out.append(token)
            i += 1
        elif token in lex.zero_words:
            out.append("0")
            i += 1
        elif token in REPEATS:
            digit = _single_digit(run[i + 1], lex) if i + 1 < n else None
            if digit is None:
                return None
            out.append(digit * REPEATS[token])
            i += 2
        else:
            if token == number_words.SPANISH_WORDS.thousand:
                value = 1  # "mil quinientos": a thousand needs no count in Spanish
            else:
                value, i = _below_thousand(run, i, lex)
            if i < n and run[i] in lex.thousands:
                # One whole number, alone in its run: "twenty nine thousand thirty one".
                if out or not 1 <= value <= 999:
                    return None
                rest = 0
                i += 1
                while i < n and run[i] in lex.pauses:  # nothing else may follow
                    i += 1
                if i < n and _small_starts(run[i], lex):
                    rest, i = _below_thousand(run, i, lex)
                if any(t not in lex.pauses for t in run[i:]):
                    return None
                return str(value * 1000 + rest)
            out.append(str(value))
    return "".join(out)


def _below_thousand(run: list[str], i: int, lex: Lexicon) -> tuple[int, int]:
    """1..9999 from run[i]: "forty two", "six hundred and four", "seiscientos cuatro"."""
    if run[i] in lex.hundreds:
        return _spanish_hundreds(run, i, lex)
    value, i = _small(run, i, lex)
    if i < len(run) and run[i] == "hundred":
        value *= 100
        i = _skip_and(run, i + 1, lex)
        if i < len(run):
            following = run[i]
            if _small_starts(following, lex):
                rest, i = _small(run, i, lex)
                value += rest
            elif following.isdigit() or following in lex.zero_words or following in REPEATS:
                raise _Refused  # "six hundred oh four": 604 or 6004?
    return value, i


def _spanish_hundreds(run: list[str], i: int, lex: Lexicon) -> tuple[int, int]:
    """ "seiscientos cuatro" -> 604, "ciento veinte" -> 120, "cien" -> 100.

    "cien" stands alone and "ciento" never does; a digit, a zero or "y" right after a
    hundreds word ("seiscientos cero cuatro", "seiscientos y cuatro") has two readings.
    """
    word = run[i]
    value = lex.hundreds[word]
    i += 1
    following = run[i] if i < len(run) else ""
    if following == "y" and i + 1 < len(run) and run[i + 1] in lex.number_words:
        raise _Refused
    if _small_starts(following, lex) and following not in lex.hundreds:
        if word == "cien":
            raise _Refused  # "cien cuatro": 104 ("ciento cuatro") or 100 then 4?
        rest, i = _small(run, i, lex)
        return value + rest, i
    if word == "ciento" or following.isdigit() or following in lex.zero_words:
        raise _Refused
    return value, i


def _skip_and(run: list[str], i: int, lex: Lexicon) -> int:
    """After a scale word, "and" belongs to the number when a number word follows it."""
    if i + 1 < len(run) and run[i] == "and" and _small_starts(run[i + 1], lex):
        return i + 1
    return i


def _small_starts(token: str, lex: Lexicon) -> bool:
    return (
        token in lex.units
        or token in lex.pairs
        or token in lex.tens
        or token in lex.tens_y
        or token in lex.hundreds
    )


def _small(run: list[str], i: int, lex: Lexicon) -> tuple[int, int]:
    """1..99 from run[i] ("seven", "twelve", "forty two", "sesenta y dos"), else refused."""
    token = run[i]
    following = run[i + 1] if i + 1 < len(run) else ""
    if token in lex.units:
        return lex.units[token], i + 1
    if token in lex.pairs:
        return lex.pairs[token], i + 1
    if token in lex.tens:
        value = lex.tens[token]
        if following in UNITS:
            return value + UNITS[following], i + 2
        if following in lex.units:
            raise _Refused  # "forty dos": 42 or 40 then 2?
        return value, i + 1
    if token in lex.tens_y:
        value = lex.tens_y[token]
        if following in lex.units:
            raise _Refused  # "sesenta dos" (no "y"): 62 or 60 then 2?
        if following == "y" and i + 2 < len(run):
            unit = run[i + 2]
            if unit in number_words.SPANISH_WORDS.units:
                return value + lex.units[unit], i + 3
            if unit.isdigit() or unit in lex.number_words:
                raise _Refused  # "sesenta y once", "sesenta y 2"
        return value, i + 1
    raise _Refused  # a dangling "hundred" / "thousand"


def _single_digit(token: str, lex: Lexicon) -> str | None:
    """The one digit a token stands for ("4", "four", "oh"), for "double"/"triple"."""
    if len(token) == 1 and token.isdigit():
        return token
    if token in lex.zero_words:
        return "0"
    unit = lex.units.get(token)
    return None if unit is None else str(unit)

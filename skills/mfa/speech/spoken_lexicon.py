"""The words a spoken code may be made of, by language and by what each does in a code.

English's tables are here; Spanish's (and German's, which only redaction masks) come from
``number_words``. ``lexicon_for`` gives the ``Lexicon`` of the configured languages, built
once per choice at import: ``spoken_code`` reads runs with it, ``spoken_redaction`` counts
digits with the same tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skills.mfa.speech import number_words

UNITS = {
    w: i
    for i, w in enumerate("one two three four five six seven eight nine".split(), 1)  # noqa: SIM905
}
TEENS = {
    w: i
    for i, w in enumerate(
        "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split(),  # noqa: SIM905
        10,
    )
}
TENS = {
    w: i * 10
    for i, w in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(),  # noqa: SIM905
        2,
    )
}
ZERO_WORDS = frozenset({"oh", "o", "nought", "naught", "zero"})
INTERJECTIONS = frozenset({"oh", "o"})  # alone between other words: "oh, it's ..."
REPEATS = {"double": 2, "triple": 3}
SCALES = frozenset({"hundred", "thousand"})
PAUSE = ","  # what any punctuation becomes
# Words that may sit between digit groups without ending the run.
PAUSES = frozenset({PAUSE, "um", "umm", "uh", "uhh", "er", "erm", "ah", "hmm", "mm"})
PAUSES |= {"and", "so", "then"}
# After the first digit, these words mean the caller is taking something back.
CORRECTIONS = frozenset(
    "no nope nah wait sorry mean actually scratch correction oops rather instead or not wrong "  # noqa: SIM905
    "hang hold".split()
)
# Next to the run, these could be a digit misheard or change the number's meaning.
NEAR_DIGITS = frozenset(
    "to too for fore won ate minus negative plus point dot million billion trillion "  # noqa: SIM905
    "dozen hundreds thousands".split()
)

ENGLISH_ONLY = ("en",)


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The words of the languages a reading may use, by what each does in a code.

    English tens take a unit directly ("forty two"); Spanish tens take it after "y"
    ("cuarenta y dos"); Spanish hundreds are one word ("seiscientos"); "mil" may open a
    whole number on its own ("mil quinientos"). A word belongs to one language only, so
    the two grammars never meet inside one pair.
    """

    spanish: bool
    units: Mapping[str, int]
    pairs: Mapping[str, int]  # one word for two digits: teens, "veintiseis"
    tens: Mapping[str, int]  # English tens: "forty two"
    tens_y: Mapping[str, int]  # Spanish tens: "cuarenta y dos"
    hundreds: Mapping[str, int]  # Spanish hundreds words
    thousands: frozenset[str]
    zero_words: frozenset[str]
    interjections: frozenset[str]
    number_words: frozenset[str]
    pauses: frozenset[str]
    corrections: frozenset[str]
    near_digits: frozenset[str]


def _lexicon(languages: frozenset[str]) -> Lexicon:
    spanish = "es" in languages
    es = number_words.SPANISH_WORDS
    units = {**UNITS, **(es.units if spanish else {})}
    pairs = {**TEENS, **(es.pairs if spanish else {})}
    tens_y = dict(es.tens) if spanish else {}
    hundreds = dict(es.hundreds) if spanish else {}
    thousands = frozenset({"thousand", es.thousand} if spanish else {"thousand"})
    zero_words = ZERO_WORDS | (es.zero if spanish else frozenset())
    return Lexicon(
        spanish=spanish,
        units=units,
        pairs=pairs,
        tens=TENS,
        tens_y=tens_y,
        hundreds=hundreds,
        thousands=thousands,
        zero_words=zero_words,
        # "once" alone is the English word; next to other digits it is eleven.
        interjections=INTERJECTIONS | ({"once"} if spanish else frozenset()),
        number_words=frozenset(
            units.keys() | pairs.keys() | TENS.keys() | tens_y.keys() | hundreds.keys()
        )
        | zero_words
        | REPEATS.keys()
        | SCALES
        | thousands,
        pauses=PAUSES | (number_words.SPANISH_PAUSES if spanish else frozenset()),
        corrections=CORRECTIONS | (number_words.SPANISH_CORRECTIONS if spanish else frozenset()),
        near_digits=NEAR_DIGITS | (number_words.SPANISH_NEAR_DIGITS if spanish else frozenset()),
    )


_LEXICONS = {frozenset(chosen): _lexicon(frozenset(chosen)) for chosen in (("en",), ("en", "es"))}


def lexicon_for(languages: Iterable[str]) -> Lexicon:
    """The words for ``languages`` (codes or primary subtags); English is always read."""
    chosen = {number_words.primary_subtag(code) for code in languages} | {"en"}
    unknown = chosen - set(number_words.READ_LANGUAGES)
    if unknown:
        raise ValueError(f"no number words for {sorted(unknown)}")
    return _LEXICONS[frozenset(chosen)]

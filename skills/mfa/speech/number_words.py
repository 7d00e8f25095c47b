"""The number words of each language the agent reads, and of the ones it only masks.

``spoken_code`` reads a code in the languages an operator configured (``NUMBER_WORDS``
names the ones we ship words for: start-up refuses a language without them), and
redaction masks runs of number words of every language listed here, German
included: a caller's words reach the model through speech recognition that transcribes
any of several languages, so a summary may hold a code in a language the agent does not
speak, and masking it costs nothing.

The values of the Spanish and German words come from ``text2num`` (a dependency that
knows those grammars), asked once at import; only the spellings are listed here, with
their accents (``fold`` drops them the way a recogniser may). What a word may do in a
code (pair, tens joined with "y", hundreds word, "mil") follows from its value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from text_to_num import text2num

#: Languages whose codes ``spoken_code`` reads (their primary subtag: ``es`` for ``es-MX``).
READ_LANGUAGES = ("en", "es")
#: Languages whose number words redaction masks, whether or not the agent speaks them.
MASKED_LANGUAGES = ("en", "es", "de")

# Letters a recogniser writes in Spanish words; folded to ASCII before any lookup. Other
# non-ASCII letters stay refused by the normaliser (a look-alike "föur" is not "four").
_SPANISH_FOLD = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")


def fold_spanish_letters(text: str) -> str:
    """``text`` with Spanish accents dropped and case kept (one character for one)."""
    return text.translate(_SPANISH_FOLD)


def fold(word: str) -> str:
    """``word`` lower-cased with Spanish accents dropped: "Veintiséis" -> "veintiseis"."""
    return word.translate(_SPANISH_FOLD).lower()


def fold_any(word: str) -> str:
    """Every accent dropped ("fünf" -> "funf"): for redaction, which reads any language."""
    decomposed = unicodedata.normalize("NFKD", word.lower().replace("ß", "ss"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_SPANISH_SPELLINGS = (
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
    "dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintiuna veintidós veintitrés "
    "veinticuatro veinticinco veintiséis veintisiete veintiocho veintinueve treinta cuarenta "
    "cincuenta sesenta setenta ochenta noventa cien ciento doscientos doscientas trescientos "
    "trescientas cuatrocientos cuatrocientas quinientos quinientas seiscientos seiscientas "
    "setecientos setecientas ochocientos ochocientas novecientos novecientas mil"
)

_GERMAN_SPELLINGS = (
    "null eins ein zwei zwo drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn "
    "vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig dreißig vierzig fünfzig "
    "sechzig siebzig achtzig neunzig hundert tausend"
)


def _values(spellings: str, language: str) -> dict[str, int]:
    return {word: text2num(word, language) for word in spellings.split()}


def _folded(values: Mapping[str, int], folder: Callable[[str], str]) -> dict[str, int]:
    """Each spelling as written and as a recogniser may write it without accents."""
    return {**values, **{folder(word): value for word, value in values.items()}}


SPANISH = MappingProxyType(
    # "veintiún" (21 before "mil") is the one spelling text2num does not take.
    {**_folded(_values(_SPANISH_SPELLINGS, "es"), fold), "veintiun": 21, "veintiún": 21}
)
GERMAN = MappingProxyType(_folded(_values(_GERMAN_SPELLINGS, "de"), fold_any))

# Short-form articles that are the number one only inside a number ("ochenta y un mil").
SPANISH_ARTICLES = frozenset({"un", "una"})


@dataclass(frozen=True, slots=True)
class SpanishWords:
    """The Spanish vocabulary sorted by what each word may do in a spoken code."""

    zero: frozenset[str]
    units: Mapping[str, int]  # 1..9
    pairs: Mapping[str, int]  # single words 10..29: "once", "veintiseis"
    tens: Mapping[str, int]  # 30..90, joined to a unit with "y": "sesenta y dos"
    hundreds: Mapping[str, int]  # single words: "cien", "ciento", "seiscientos"
    thousand: str = "mil"


def _spanish_words() -> SpanishWords:
    ascii_words = {w: v for w, v in SPANISH.items() if w.isascii()}
    return SpanishWords(
        zero=frozenset(w for w, v in ascii_words.items() if v == 0),
        units={w: v for w, v in ascii_words.items() if 1 <= v <= 9},
        pairs={w: v for w, v in ascii_words.items() if 10 <= v <= 29},
        tens={w: v for w, v in ascii_words.items() if 30 <= v <= 90},
        hundreds={w: v for w, v in ascii_words.items() if 100 <= v <= 900},
    )


SPANISH_WORDS = _spanish_words()

# Between digit groups, these do not end a run (Spanish fillers: "eh", "este", "pues").
SPANISH_PAUSES = frozenset({"y", "eh", "em", "mmm", "este", "pues", "entonces", "luego"})
# After the first digit, these mean the caller is taking something back.
SPANISH_CORRECTIONS = frozenset(
    {"perdon", "espera", "espere", "digo", "sea", "mejor", "corrijo", "correccion", "error"}
    | {"equivoque", "rectifico", "decir", "mentira", "cambio"}
)
# Next to the run, these could change the number's meaning.
SPANISH_NEAR_DIGITS = frozenset(
    {"menos", "mas", "punto", "coma", "millon", "millones", "miles", "cientos", "docena"}
)


def primary_subtag(code: str) -> str:
    """ "es-MX" -> "es": the language whose number words a configured code reads."""
    return code.split("-", 1)[0].lower()

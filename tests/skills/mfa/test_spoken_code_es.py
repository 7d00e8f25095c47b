"""A code read back in Spanish (or in English and Spanish mixed) becomes its digits, or None.

The expected digits are computed here from the integers the readings were made from
(``_say_*`` below spell them out with this file's own word lists), never by the
product's reader. The English tables of ``test_spoken_code.py`` are read again with
Spanish switched on: an English caller of a bilingual agent sees no change.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skills.mfa.speech.spoken_code import normalize_spoken_code, read_digits
from tests.skills.mfa.test_spoken_code import ACCEPTED, READ_DIGITS, REFUSED, spoken_codes

BOTH = ("en", "es")

ACCEPTED_ES = [
    # digits, one word each
    ("cuatro ocho uno dos dos nueve", "481229"),
    ("Cuatro Ocho Uno Dos Dos Nueve", "481229"),
    ("cero cero uno dos tres cuatro", "001234"),
    ("cinco dos nueve cero tres uno", "529031"),
    ("siete siete siete seis seis seis", "777666"),
    ("cuatro 8 uno 2 dos nueve", "481229"),
    # pairs and tens, as a caller reads pairs
    ("veintiséis once sesenta y dos", "261162"),
    ("veintiseis once sesenta y dos", "261162"),  # the accent dropped by the recogniser
    ("cuarenta y ocho, doce, veintinueve", "481229"),
    ("once, veintidós, treinta y tres", "112233"),
    ("once veintidos treinta y tres", "112233"),
    ("diez, diez, diez", "101010"),
    ("dieciséis cero cuatro noventa", "160490"),
    ("veinte veinte diecinueve", "202019"),
    ("sesenta y dos, sesenta y dos, sesenta y dos", "626262"),
    ("cuatro ochenta y uno, veintinueve, cero", "481290"),
    # hundreds
    ("seiscientos cuatro, doscientos noventa", "604290"),
    ("cuatrocientos ochenta y uno, doscientos veintinueve", "481229"),
    ("ciento cuatro, dos nueve uno", "104291"),
    ("quinientos veintinueve cero treinta y uno", "529031"),
    ("cien, cien", "100100"),
    ("novecientos noventa y nueve, cien", "999100"),
    # one whole number
    ("cuatrocientos ochenta y un mil quinientos dieciséis", "481516"),
    ("cuatrocientos ochenta y un mil quinientos dieciseis", "481516"),
    ("quinientos veintinueve mil treinta y uno", "529031"),
    ("novecientos mil", "900000"),
    ("cien mil uno", "100001"),
    ("ciento un mil doscientos", "101200"),
    ("setecientos veintiún mil quinientos", "721500"),
    # filler and conversation around the code
    ("mi código es cuatro ocho uno dos dos nueve", "481229"),
    ("eh, a ver, mi código es cuatro ocho uno, dos dos nueve, creo", "481229"),
    ("cuatro, eh, ocho, este, uno dos dos nueve", "481229"),
    ("cuatro ocho uno y dos dos nueve", "481229"),
    ("es el cuatro ocho uno dos dos nueve, gracias", "481229"),
    ("tengo una clave: cuatro ocho uno dos dos nueve", "481229"),  # "una" is an article here
    ("¿el código? cuatro ocho uno dos dos nueve", "481229"),
    ("perdón, el código es cuatro ocho uno dos dos nueve", "481229"),  # before any digit
    ("bueno, pues, cuatro ocho uno dos dos nueve", "481229"),
    ("once again, it is 481229", "481229"),  # English "once" alone is not eleven
    # English and Spanish mixed
    ("four eight one dos dos nueve", "481229"),
    ("my code is cuatro ocho uno, two two nine", "481229"),
    ("double cuatro ocho uno dos tres", "448123"),
]

REFUSED_ES: list[str | tuple[str, int]] = [
    # wrong length (for a 6-digit code)
    ("cuatro ocho uno dos dos", 6),
    ("cuatro ocho uno dos dos nueve uno", 6),
    ("seiscientos cuatro veintinueve", 6),  # 60429
    ("dos mil veinticuatro", 6),  # 2024
    ("veintiún mil quinientos", 6),  # 21500: a whole number has no leading zero
    # two readings
    "cuatro ocho uno dos dos nueve o cuatro ocho uno dos dos ocho",
    "cuatro ocho uno o dos dos nueve",  # "o" is "or" in Spanish, not a zero
    "es cuatro ocho uno dos dos nueve, o sea, cuatro ocho uno dos dos ocho",
    ("cuatro ocho uno dos dos nueve y cuatro ocho uno dos dos ocho", 6),
    # a correction once the digits started
    "cuatro ocho uno, no, perdón, cuatro ocho dos dos dos nueve",
    "cuatro ocho uno dos dos nueve, espera",
    "cuatro ocho uno dos dos nueve, perdón",
    "cuatro ocho uno, digo, dos dos nueve",
    "cuatro ocho uno dos dos nueve, me equivoqué",
    # readings with two meanings
    "sesenta dos cuatro ocho uno dos",  # "sesenta dos": 62 or 60 then 2?
    "cien cuatro dos nueve uno",  # "cien cuatro": 104 or 100 then 4?
    "seiscientos y cuatro dos nueve",  # 604 or 600 then 4?
    "seiscientos cero cuatro dos",
    "ciento, dos tres cuatro",  # "ciento" never stands alone
    "sesenta y once dos tres",
    "forty dos cuatro ocho uno",  # English tens, Spanish unit
    # words that change the number, next to it
    "cuatro ocho uno dos dos nueve menos",
    "punto cuatro ocho uno dos dos nueve",
    "cuatro ocho uno dos dos nueve millones",
    "cuatro coma ocho uno dos dos nueve",
    # digits outside the one run
    "tengo 2 teléfonos, el código es cuatro ocho uno dos dos nueve",
    # not a code
    "no sé",
    "mi código es plátano",
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED_ES)
def test_spanish_readings(text: str, expected: str) -> None:
    assert normalize_spoken_code(text, len(expected), BOTH) == expected


def test_spanish_words_count_only_where_spanish_is_configured() -> None:
    assert normalize_spoken_code("cuatro ocho uno dos dos nueve", 6) is None
    assert normalize_spoken_code("veintiséis once sesenta y dos", 6) is None


@pytest.mark.parametrize("case", REFUSED_ES)
def test_spanish_refusals(case: str | tuple[str, int]) -> None:
    """A row with a length is refused for that length; any other for every length."""
    text, lengths = (case[0], [case[1]]) if isinstance(case, tuple) else (case, range(4, 13))
    for length in lengths:
        assert normalize_spoken_code(text, length, BOTH) is None


def test_the_spanish_table_is_large_enough() -> None:
    assert len(ACCEPTED_ES) + len(REFUSED_ES) >= 40


# -- English callers of a bilingual agent see no change -------------------------------------


@pytest.mark.parametrize(("text", "length", "expected"), ACCEPTED)
def test_english_readings_unchanged_with_spanish_on(
    text: object, length: int, expected: str
) -> None:
    assert normalize_spoken_code(text, length, BOTH) == expected


@pytest.mark.parametrize(("text", "length"), REFUSED)
def test_english_refusals_unchanged_with_spanish_on(text: object, length: int) -> None:
    assert normalize_spoken_code(text, length, BOTH) is None


@settings(max_examples=300, deadline=None)
@given(spoken_codes())
def test_english_spoken_codes_unchanged_with_spanish_on(case: tuple[str, str]) -> None:
    code, spoken = case
    assert normalize_spoken_code(spoken, len(code), BOTH) == code


def test_a_language_without_number_words_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="fr"):
        normalize_spoken_code("481229", 6, ("en", "fr"))


def test_region_subtags_read_their_language() -> None:
    assert normalize_spoken_code("cuatro ocho uno dos dos nueve", 6, ("en-US", "es-MX")) == (
        "481229"
    )


# -- account numbers spoken in Spanish ------------------------------------------------------

READ_DIGITS_ES = [
    ("cuatro cero siete, veintidós", "40722"),
    ("mi número de cuenta es doce treinta y cuatro cincuenta y seis", "123456"),
    ("cuenta mil doscientos, gracias", "1200"),
    ("cuatro cero siete, no, cuatro cero ocho", None),
    ("¿es cuatro cero siete dos o cuatro cero siete tres?", None),
]


@pytest.mark.parametrize(("text", "expected"), READ_DIGITS + READ_DIGITS_ES)
def test_read_digits_in_both_languages(text: object, expected: str | None) -> None:
    assert read_digits(text, BOTH) == expected


# -- properties -----------------------------------------------------------------------------

UNITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]
PAIRS = {
    10: "diez",
    11: "once",
    12: "doce",
    13: "trece",
    14: "catorce",
    15: "quince",
    16: "dieciséis",
    17: "diecisiete",
    18: "dieciocho",
    19: "diecinueve",
    20: "veinte",
    21: "veintiuno",
    22: "veintidós",
    23: "veintitrés",
    24: "veinticuatro",
    25: "veinticinco",
    26: "veintiséis",
    27: "veintisiete",
    28: "veintiocho",
    29: "veintinueve",
}
TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta"}
TENS |= {8: "ochenta", 9: "noventa"}
HUNDREDS = ["", "ciento", "doscientos", "trescientos", "cuatrocientos", "quinientos"]
HUNDREDS += ["seiscientos", "setecientos", "ochocientos", "novecientos"]
PREFIXES_ES = ["", "mi código es ", "eh, ", "a ver, es el ", "creo que es ", "el código: "]
SUFFIXES_ES = ["", ", creo", " gracias", ".", "#", ", ¿vale?"]
# Not " y ": after a tens word it joins ("treinta y uno"); the table holds it as a pause.
SEPARATORS_ES = [", ", "... ", ", eh, ", " este ", ". "]


def _without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _say_two(n: int) -> str:
    """10..99 as one Spanish number: "once", "veintiséis", "sesenta y dos", "cuarenta"."""
    if n < 30:
        return PAIRS[n]
    tens, unit = divmod(n, 10)
    return TENS[tens] + (f" y {UNITS[unit]}" if unit else "")


def _say_below_thousand(n: int, *, before_thousand: bool = False) -> str:
    """1..999 in Spanish; "uno" becomes "un" before "mil" ("ochenta y un mil")."""
    hundreds, rest = divmod(n, 100)
    if hundreds and not rest:
        return "cien" if hundreds == 1 else HUNDREDS[hundreds]
    words = [HUNDREDS[hundreds]] if hundreds else []
    said = _say_two(rest) if rest >= 10 else UNITS[rest]
    if before_thousand and rest % 10 == 1 and rest != 11:
        said = said[: -len("uno")] + "un" if said.endswith("uno") else said
    words.append(said)
    return " ".join(words)


@st.composite
def spanish_codes(draw: st.DrawFn) -> tuple[str, str]:
    """A code of 4 to 10 digits read in Spanish, digit by digit, in pairs or in hundreds."""
    code = draw(st.text(alphabet="0123456789", min_size=4, max_size=10))
    parts: list[str] = []
    i = 0
    while i < len(code):
        rest = code[i:]
        choices = ["digit"]
        if len(rest) >= 2 and rest[0] != "0":
            choices.append("pair")
        if len(rest) >= 3 and rest[0] != "0" and rest[1:3] != "00":
            choices.append("hundreds")
        kind = draw(st.sampled_from(choices))
        if kind == "pair":
            parts.append(_say_two(int(rest[:2])))
            i += 2
        elif kind == "hundreds":
            parts.append(_say_below_thousand(int(rest[:3])))
            i += 3
        else:
            parts.append(draw(st.sampled_from([UNITS[int(rest[0])], rest[0]])))
            i += 1
    # A pause after each group: a pair or a hundreds word may not run into the next one.
    spoken = parts[0]
    for part in parts[1:]:
        spoken += draw(st.sampled_from(SEPARATORS_ES)) + part
    spoken = draw(st.sampled_from(PREFIXES_ES)) + spoken + draw(st.sampled_from(SUFFIXES_ES))
    if draw(st.booleans()):
        spoken = _without_accents(spoken)
    if draw(st.booleans()):
        spoken = spoken.upper()
    return code, spoken


@settings(max_examples=400, deadline=None)
@given(spanish_codes())
def test_a_spanish_code_reads_back_as_its_digits(case: tuple[str, str]) -> None:
    code, spoken = case
    assert normalize_spoken_code(spoken, len(code), BOTH) == code
    assert normalize_spoken_code(spoken, len(code) + 1, BOTH) is None
    assert normalize_spoken_code(spoken, len(code) - 1, BOTH) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=100_000, max_value=999_999), st.booleans())
def test_a_spanish_code_said_as_one_number(n: int, accents: bool) -> None:
    thousands, rest = divmod(n, 1000)
    said = "" if thousands == 1 else _say_below_thousand(thousands, before_thousand=True) + " "
    said += "mil" + (" " + _say_below_thousand(rest) if rest else "")
    if not accents:
        said = _without_accents(said)
    assert normalize_spoken_code(said, 6, BOTH) == str(n)
    assert normalize_spoken_code(said, 5, BOTH) is None


BETWEEN_READINGS_ES = [" o ", ", perdón, ", "... no, espera, ", " digo ", ", o sea, ", ", "]


@settings(max_examples=300, deadline=None)
@given(spanish_codes(), spanish_codes(), st.sampled_from(BETWEEN_READINGS_ES))
def test_two_spanish_readings_never_normalise(
    first: tuple[str, str], second: tuple[str, str], between: str
) -> None:
    said = first[1] + between + second[1]
    assert normalize_spoken_code(said, len(first[0]), BOTH) is None
    assert normalize_spoken_code(said, len(second[0]), BOTH) is None

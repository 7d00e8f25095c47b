"""normalize_spoken_code: what a caller says back becomes exactly `length` digits, or None."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skills.mfa.speech.spoken_code import MAX_SPOKEN_INPUT, normalize_spoken_code, read_digits

ACCEPTED = [
    # plain digits, any spacing or punctuation
    ("481229", 6, "481229"),
    ("123 456", 6, "123456"),
    ("12 34 56", 6, "123456"),
    ("1-2-3 4.5,6", 6, "123456"),
    ("123.456", 6, "123456"),
    ("  4 8 1\t2 2\n9  ", 6, "481229"),
    # keypad input
    ("481229#", 6, "481229"),
    ("*481229", 6, "481229"),
    ("*4*8*1*2*2*9#", 6, "481229"),
    # digit words, any case, zero spoken as oh / o / nought / zero
    ("four eight one two two nine", 6, "481229"),
    ("Four Eight ONE two TWO nine", 6, "481229"),
    ("four oh one two two oh", 6, "401220"),
    ("o o seven", 3, "007"),
    ("nought one two three", 4, "0123"),
    ("zero zero one two three four", 6, "001234"),
    ("one", 1, "1"),
    ("zero", 1, "0"),
    # double / triple, before a word or a digit
    ("double four one two three five", 6, "441235"),
    ("triple 7 one 2 3", 6, "777123"),
    ("four double 8 one", 4, "4881"),
    ("double oh seven", 3, "007"),
    ("triple zero double one", 5, "00011"),
    # teens and tens, as pairs
    ("forty two seventeen ninety", 6, "421790"),
    ("twelve thirty four fifty six", 6, "123456"),
    ("forty-two seventeen ninety", 6, "421790"),
    ("nineteen eighty four", 4, "1984"),
    ("twenty twenty", 4, "2020"),
    ("four eighty one two twenty nine", 6, "481229"),
    ("ten ten ten", 6, "101010"),
    ("forty oh two", 4, "4002"),
    ("twenty double four", 4, "2044"),
    # a filler is a pause: "forty um two" is 40 then 2
    ("forty um two", 3, "402"),
    ("forty and two", 3, "402"),
    # mixed digits and words
    ("4 8 one two 2 9", 6, "481229"),
    ("48 twelve 29", 6, "481229"),
    # fillers around and between the groups
    ("my code is 481229", 6, "481229"),
    ("It's 481 229.", 6, "481229"),
    ("it\u2019s four eight one", 3, "481"),
    ("the code is four eight one and two two nine", 6, "481229"),
    ("um, uh, four eight one, er, two two nine", 6, "481229"),
    ("okay so I think it's 4 8 1 2 2 9 thanks", 6, "481229"),
    ("yeah, that's four eight one two two nine, thank you", 6, "481229"),
    ("please: 481-229!", 6, "481229"),
    ("It is 12 34 56, thank you!", 6, "123456"),
    # other lengths
    ("4812", 4, "4812"),
    ("one two three four five six seven eight nine zero", 10, "1234567890"),
    # Unicode decimal digits are read as their ASCII digit (deliberate choice)
    ("１２３４５６", 6, "123456"),
    ("٤٨١٢٢٩", 6, "481229"),
    # an int is its decimal string
    (481229, 6, "481229"),
    (1000, 4, "1000"),
    (0, 1, "0"),
    # conversation before or after the one run of digits
    ("alright, here goes: 5 2 9 0 3 1 - got it?", 6, "529031"),
    ("hang on... it says five two nine oh three one", 6, "529031"),
    ("my code is 529031 thanks", 6, "529031"),
    ("sorry, the code is 529031", 6, "529031"),  # a correction word before any digit
    ("no wait, it's 529031", 6, "529031"),
    ("Let me see. The text says 529031. Is that right?", 6, "529031"),
    ("oh, it's 529031", 6, "529031"),  # a lone "oh" between words is an interjection
    ("529031 was the code, I'm reading it off my phone", 6, "529031"),
    ("ok o k the code is: five two nine oh three one", 6, "529031"),
    ("The code is 529031, O.K.?", 6, "529031"),
    ("529031 o k", 6, "529031"),
    ("five two nine, and then oh three one", 6, "529031"),
    ("here it is \u2013 five two nine \u2026 oh three one", 6, "529031"),
    # one whole number
    ("five hundred twenty nine thousand thirty one", 6, "529031"),
    ("five hundred and twenty nine thousand and thirty one", 6, "529031"),
    ("five hundred twenty-nine thousand, thirty-one", 6, "529031"),
    ("my code is nine hundred thousand", 6, "900000"),
    ("one hundred thousand one", 6, "100001"),
    ("six thousand four hundred two", 4, "6402"),
    ("twenty nine thousand thirty one", 5, "29031"),
    # groups read with "hundred", and pairs
    ("six hundred and four, two ninety", 6, "604290"),
    ("six hundred four two hundred ninety", 6, "604290"),
    ("four hundred eighty one two hundred twenty nine", 6, "481229"),
    ("five twenty nine, oh three one", 6, "529031"),
    ("fifty two, ninety, thirty one", 6, "529031"),
    ("five hundred, twenty nine, oh three one", 8, "50029031"),  # a pause ends the group
    ("nineteen hundred eighty four", 4, "1984"),
    ("twelve hundred", 4, "1200"),
]

REFUSED = [
    # Two readings, the first all zeros said as "oh" (found by the two-codes property).
    ("oh oh oh oh or 1000", 4),
    ("oh oh oh oh or 1000 zero", 5),
    # wrong number of digits
    ("48122", 6),
    ("4812290", 6),
    ("one two three four five six seven", 6),
    ("four eight one two two", 6),
    ("forty two seventeen ninety", 4),
    # not a code
    ("", 6),
    ("   \t\n", 6),
    ("abc123", 6),
    ("48l229", 6),
    ("4th 8 1 2 2 9", 6),
    ("my code is banana", 6),
    ("I don't know", 6),
    ("one two three four five six seven eight", 6),
    # homophones are refused, not guessed
    ("four for one two two nine", 6),
    ("to two one two two nine", 6),
    # double / triple need one digit after them
    ("double", 6),
    ("four eight one two two double", 6),
    ("double double four one two three", 6),
    ("double forty one two three", 5),
    ("double 44 one two", 6),
    ("double um four one two three", 6),
    # signs, symbols, scale words, ordinals
    ("-481229", 6),
    ("my code is -481229", 6),
    ("minus four eight one two two nine", 6),
    ("+481229", 6),
    ("$481229", 6),
    ("481229 \u2713", 6),
    ("two hundred two hundred", 6),
    ("a thousand two hundred", 6),
    ("two hundred two hundred", 6),  # 202 then a dangling hundred, or 200 200?
    ("six hundred oh four", 5),  # 604 or 6004?
    ("six hundred 4 two nine oh", 6),
    ("five hundred double four", 5),
    ("hundred", 3),
    ("thousand thirty one", 5),
    ("one thousand thousand", 7),
    ("nineteen hundred thousand", 7),  # a whole number needs 1 to 999 thousands
    # a whole number is the only thing in its run; no leading zero
    ("twenty nine thousand thirty one", 6),
    ("oh twenty nine thousand thirty one", 6),
    ("five two nine thousand thirty one", 6),
    ("twenty nine thousand thirty one two", 6),
    ("first second third fourth fifth sixth", 6),
    ("three point five one two three", 6),
    # non-decimal Unicode digits (superscripts) are refused
    ("\u00b9\u00b2\u00b3\u2074\u2075\u2076", 6),
    # only ASCII letters make words: full-width or accented look-alikes are refused
    ("\uff46\uff4f\uff55\uff52 eight one two two nine", 6),
    ("f\u00f6ur eight one two two nine", 6),
    # too long: refused without parsing, even if it would otherwise read
    pytest.param("1" * 100_000, 6, id="100kB-of-digits"),
    ("481229" + " " * MAX_SPOKEN_INPUT, 6),
    # digits outside the one run
    ("I have 2 phones, code 529031", 6),
    ("the one you sent is 529031", 6),
    ("529031, thanks, it came at 9", 6),
    ("my code is 52903 and my pin is 1", 6),
    # two readings, or a correction once the digits started
    ("is it 529031 or 529032", 6),
    ("529031 or 529032", 6),
    ("five two nine... no wait, five two eight oh three one", 6),
    ("5 2 9 0 3 1, sorry, 5 2 9 0 3 2", 6),
    ("529 I mean 528031", 6),
    ("five two nine oh three one, actually", 6),
    ("5 2 9 0 3 1 scratch that", 6),
    ("529031, no", 6),
    ("529031 wait", 6),
    ("529031... hang on", 6),
    ("529031 is it 529031", 6),
    # words that could be a digit or change the number, next to it
    ("to two one two two nine", 5),
    ("it's 529031 to be exact", 6),
    ("five two nine oh three one million", 6),
    ("point five two nine oh three one", 6),
    ("negative 529031", 6),
    # more or fewer digits than the code, with conversation
    ("alright, here goes: 5 2 9 0 3 - got it?", 6),
    ("my code is 5290311 thanks", 6),
    ("529031, 529032", 6),
    # not text
    (None, 6),
    ({"token": "481229"}, 6),
    (["4", "8", "1", "2", "2", "9"], 6),
    (True, 1),
    (False, 1),
    (481229.0, 6),
    (b"481229", 6),
    (12345, 6),  # "012345" with its leading zero lost
    (-481229, 6),
    (4812290, 6),
    pytest.param(10**5000, 6, id="int-too-big-for-str"),
]


@pytest.mark.parametrize(("text", "length", "expected"), ACCEPTED)
def test_accepted_forms(text: object, length: int, expected: str) -> None:
    assert normalize_spoken_code(text, length) == expected


@pytest.mark.parametrize(("text", "length"), REFUSED)
def test_refused_forms(text: object, length: int) -> None:
    assert normalize_spoken_code(text, length) is None


def test_length_limit_is_inclusive() -> None:
    padded = "481229".ljust(MAX_SPOKEN_INPUT)
    assert len(padded) == MAX_SPOKEN_INPUT
    assert normalize_spoken_code(padded, 6) == "481229"
    assert normalize_spoken_code(padded + " ", 6) is None


@pytest.mark.parametrize("length", [0, -1, True, 6.0, "6", None])
def test_bad_length_is_a_programming_error(length: object) -> None:
    with pytest.raises(ValueError, match="length"):
        normalize_spoken_code("481229", length)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
PREFIXES = ["", "my code is ", "it's ", "um, the code is ", "okay so I think it is ", "uh "]
SUFFIXES = ["", " thanks", ", thank you", ".", "#", " please"]
SEPARATORS = [" ", ", ", "-", ". ", "... ", " and ", " um ", ", uh, ", "\n", " so "]
FILLER_SEPARATORS = [" um ", " and ", ", er, "]  # a pause: the next word starts a new number
ZERO_FORMS = ["zero", "oh", "o", "nought", "0"]


@st.composite
def spoken_codes(draw: st.DrawFn) -> tuple[str, str]:
    """A code of 4 to 10 digits and one way a caller might say it."""
    code = draw(st.text(alphabet="0123456789", min_size=4, max_size=10))
    parts: list[str] = []
    i = 0
    while i < len(code):
        digit = code[i]
        rest = code[i + 1 :]
        choices = ["digit"]
        if len(rest) >= 1 and digit != "0":
            choices.append("pair")
        if rest[:1] == digit:
            choices.append("double")
        if rest[:2] == digit * 2:
            choices.append("triple")
        if rest:
            choices.append("digits")
        kind = draw(st.sampled_from(choices))
        if kind == "pair":
            tens, unit = int(digit), int(code[i + 1])
            if tens == 1:
                parts.append(TEENS[unit])
            elif unit:
                parts.append(TENS[tens] + draw(st.sampled_from([" ", "-"])) + DIGIT_WORDS[unit])
            else:
                # "forty" then "two" would merge into 42: a bare tens word ends with a pause
                parts.append(TENS[tens] + draw(st.sampled_from(FILLER_SEPARATORS)))
            i += 2
        elif kind in ("double", "triple"):
            count = 2 if kind == "double" else 3
            parts.append(f"{kind} {draw(_one_digit(digit))}")
            i += count
        elif kind == "digits":
            run = draw(st.integers(min_value=2, max_value=min(4, len(code) - i)))
            parts.append(code[i : i + run])
            i += run
        else:
            parts.append(draw(_one_digit(digit)))
            i += 1
    spoken = parts[0]
    for part in parts[1:]:
        separator = "" if spoken.endswith(" ") else draw(st.sampled_from(SEPARATORS))
        spoken += separator + part
    spoken = draw(st.sampled_from(PREFIXES)) + spoken.strip() + draw(st.sampled_from(SUFFIXES))
    if draw(st.booleans()):
        spoken = spoken.upper()
    return code, spoken


def _one_digit(digit: str) -> st.SearchStrategy[str]:
    if digit == "0":
        return st.sampled_from(ZERO_FORMS)
    return st.sampled_from([DIGIT_WORDS[int(digit)], digit])


@settings(max_examples=500)
@given(spoken_codes())
def test_spoken_code_reads_back_as_its_digits(case: tuple[str, str]) -> None:
    code, spoken = case
    assert len(spoken) <= MAX_SPOKEN_INPUT
    assert normalize_spoken_code(spoken, len(code)) == code
    # one digit more or less than asked for is refused
    assert normalize_spoken_code(spoken, len(code) + 1) is None
    assert normalize_spoken_code(spoken, len(code) - 1) is None


VOCABULARY = [
    *DIGIT_WORDS,
    *TEENS,
    *(t for t in TENS if t),
    *ZERO_FORMS,
    "double",
    "triple",
    "um",
    "and",
    "hundred",
    "banana",
    "-",
    "#",
    "*",
    ",",
    "7",
    "42",
    "１",
]


@settings(max_examples=500)
@given(
    text=st.one_of(
        st.text(),
        st.lists(st.sampled_from(VOCABULARY), max_size=30).map(" ".join),
    ),
    length=st.integers(min_value=1, max_value=12),
)
def test_result_is_none_or_exactly_length_ascii_digits(text: str, length: int) -> None:
    result = normalize_spoken_code(text, length)
    if result is not None:
        assert len(result) == length
        assert result.isascii()
        assert result.isdigit()
        # the digits read back as themselves
        assert normalize_spoken_code(result, length) == result


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(),
        st.integers(),
        st.none(),
        st.lists(st.text()),
        st.booleans(),
        st.floats(),
        st.binary(),
        st.dictionaries(st.text(), st.text()),
    )
)
def test_never_raises_on_any_input(value: object) -> None:
    result = normalize_spoken_code(value, 6)
    assert result is None or (len(result) == 6 and result.isascii() and result.isdigit())


# --- conversation around the code, whole numbers, two readings ------------------

CHATTER_BEFORE = [
    "alright, here goes: ",
    "hang on... it says ",
    "sorry, the code is ",
    "Oh, okay. It's ",
    "let me look. Right, ",
    "I got the text, it reads ",
]
CHATTER_AFTER = [" - got it?", " thanks", ". Is that right?", ", that's what I see", "!"]
# Between two readings: whatever the caller says, two codes are never one.
BETWEEN_READINGS = [
    " or ",
    ", sorry, ",
    "... no wait, ",
    " I mean ",
    ", actually ",
    " scratch that ",
    ", ",
    " and ",
    " um ",
    ". ",
    " then ",
    " is it ",
]


@settings(max_examples=300, deadline=None)
@given(spoken_codes(), st.sampled_from(CHATTER_BEFORE), st.sampled_from(CHATTER_AFTER))
def test_conversation_around_the_code_is_ignored(
    case: tuple[str, str], before: str, after: str
) -> None:
    code, spoken = case
    said = before + spoken + after
    assert normalize_spoken_code(said, len(code)) == code


@settings(max_examples=300, deadline=None)
@given(spoken_codes(), spoken_codes(), st.sampled_from(BETWEEN_READINGS))
def test_two_codes_in_one_utterance_never_normalise(
    first: tuple[str, str], second: tuple[str, str], between: str
) -> None:
    code, spoken = first
    other_code, other_spoken = second
    said = spoken + between + other_spoken
    assert normalize_spoken_code(said, len(code)) is None
    assert normalize_spoken_code(said, len(other_code)) is None


def _say_below_thousand(n: int, draw: st.DrawFn) -> str:
    """1..999 in words, the way a caller may say it: "six hundred and four"."""
    hundreds, rest = divmod(n, 100)
    words = []
    if hundreds:
        words.append(DIGIT_WORDS[hundreds] + " hundred")
        if rest and draw(st.booleans()):
            words.append("and")
    if rest:
        tens, unit = divmod(rest, 10)
        if tens == 1:
            words.append(TEENS[unit])
        elif tens and unit:
            words.append(TENS[tens] + draw(st.sampled_from([" ", "-"])) + DIGIT_WORDS[unit])
        else:
            words.append(TENS[tens] or DIGIT_WORDS[unit])
    return " ".join(words)


@st.composite
def whole_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A 6-digit code with no leading zero, said as one number."""
    n = draw(st.integers(min_value=100_000, max_value=999_999))
    thousands, rest = divmod(n, 1000)
    said = _say_below_thousand(thousands, draw) + " thousand"
    if rest:
        said += draw(st.sampled_from([" ", " and ", ", "])) + _say_below_thousand(rest, draw)
    return str(n), draw(st.sampled_from(PREFIXES)) + said + draw(st.sampled_from(SUFFIXES))


@settings(max_examples=300, deadline=None)
@given(whole_numbers())
def test_a_code_said_as_one_number(case: tuple[str, str]) -> None:
    code, spoken = case
    assert normalize_spoken_code(spoken, 6) == code
    assert normalize_spoken_code(spoken, 5) is None


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=100, max_value=999),
    st.integers(min_value=100, max_value=999),
    st.sampled_from([", ", " ", "... ", " um "]),
    st.data(),
)
def test_a_code_said_as_two_hundreds(
    first: int, second: int, pause: str, data: st.DataObject
) -> None:
    said = _say_below_thousand(first, data.draw) + pause + _say_below_thousand(second, data.draw)
    expected = f"{first}{second}"
    merges = first % 100 == 0 or (first % 10 == 0 and first % 100 >= 20)
    if pause == " " and merges:
        # "one hundred thirty one hundred": 130 100, or 131 and a stray "hundred"? Refused.
        assert normalize_spoken_code(said, 6) is None
    else:
        assert normalize_spoken_code(said, 6) == expected


# --- read_digits: the same rule, any length (spoken account numbers) ---------------

READ_DIGITS = [
    ("four oh seven, double two", "40722"),
    ("my account number is 12 34 56 78 90", "1234567890"),
    ("account twelve hundred, thanks", "1200"),
    ("it's one", "1"),
    ("I have 2 phones, account 529031", None),
    ("is it 4072 or 4073", None),
    ("four oh seven... no wait, four oh eight", None),
    ("no number here", None),
    ("", None),
    ("1" * (MAX_SPOKEN_INPUT + 1), None),
    (None, None),
    (40722, None),  # only text: normalize_spoken_code handles an int for a known length
]


@pytest.mark.parametrize(("text", "expected"), READ_DIGITS)
def test_read_digits(text: object, expected: str | None) -> None:
    assert read_digits(text) == expected

"""Numbers in transcripts: spelled digits, grouping, and what kind of number each is."""

import pytest

from voiceagent.memory import FoundNumber, digits_from_words, find_numbers, normalize_numbers


@pytest.mark.parametrize(
    ("words", "digits"),
    [
        ("four four one seven", "4417"),
        ("forty four seventeen", "4417"),
        ("twenty five", "25"),
        ("five oh two", "502"),
        ("double five oh two", "5502"),
        ("one hundred twenty", "120"),
        ("two thousand three hundred", "2300"),
        ("seven", "7"),
    ],
)
def test_spelled_numbers_become_digits(words: str, digits: str) -> None:
    assert digits_from_words(words.split()) == digits


def test_words_that_are_not_numbers_are_refused() -> None:
    assert digits_from_words(["four", "score"]) is None
    assert digits_from_words([]) is None


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("my order number is four four one seven.", "my order number is 4417."),
        ("It's one hundred and twenty dollars", "It's 120 dollars"),
        ("oh I see, the blue one", "oh I see, the blue one"),
        ("Four four one seven, and that's it", "4417, and that's it"),
    ],
)
def test_normalize_replaces_runs_of_number_words(text: str, normalized: str) -> None:
    assert normalize_numbers(text) == normalized


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("My order number is four four one seven.", [FoundNumber("order", "4417")]),
        ("order #4417 please", [FoundNumber("order", "4417")]),
        ("the confirmation code is 88231", [FoundNumber("order", "88231")]),
        ("call me back at 555-201-7788", [FoundNumber("phone", "5552017788")]),
        ("his account, his number is 555 010 2299", [FoundNumber("phone", "5550102299")]),
        ("my cell is five five five one two three four", [FoundNumber("phone", "5551234")]),
        ("it cost twenty five dollars", [FoundNumber("amount", "25")]),
        ("I paid $25.50 for it", [FoundNumber("amount", "25.50")]),
        ("the gift card is 998123", [FoundNumber("number", "998123")]),
        ("I need two items in 3 days", []),
    ],
)
def test_numbers_are_found_and_classified(text: str, found: list[FoundNumber]) -> None:
    assert find_numbers(text) == found


def test_the_nearer_keyword_decides_the_kind() -> None:
    assert find_numbers("about my order, you can call me at 4417") == [FoundNumber("phone", "4417")]
    assert find_numbers("my phone died, the order is 4417") == [FoundNumber("order", "4417")]

"""Numbers in transcripts: spelled-out digits turned into digits, then found and classified.

Callers read order numbers digit by digit ("four four one seven"), in pairs ("forty four
seventeen") or as a value ("twenty five dollars"), and Whisper writes any of these either as words
or as digits, sometimes split by spaces or dashes ("555-123-4567"). Everything here is table work
and regular expressions, so the same transcript always gives the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["FoundNumber", "NumberKind", "digits_from_words", "find_numbers", "normalize_numbers"]

NumberKind = Literal["order", "phone", "amount", "number"]

_DIGITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
_REPEATS = {"double": 2, "triple": 3}
_NUMBER_WORDS = frozenset(_DIGITS) | frozenset(_TEENS) | frozenset(_TENS) | frozenset(_SCALES)

_TOKEN = re.compile(r"[A-Za-z]+|\S")
# Digit groups separated by single spaces, dashes or dots read as one number ("555-123-4567").
_NUMBER = re.compile(r"(?<![\w.])(\$?)(\d+(?:[ \-.]\d+)*)(?!\w)")
_AMOUNT_AFTER = re.compile(r"^\s*(dollars?|bucks|cents?|euros?|pounds?|usd)\b", re.IGNORECASE)
_ORDER_BEFORE = re.compile(
    r"\b(order|confirmation|tracking|invoice|reference|ticket|case|account|booking)\b[^.?!]{0,24}$",
    re.IGNORECASE,
)
_PHONE_BEFORE = re.compile(
    r"\b(phone|cell|mobile|call me|callback|call back|reach me|text me)\b[^.?!]{0,24}$", re.IGNORECASE
)
# Grouped like a North American phone number (555-010-2299, +1 555 010 2299): order numbers are
# not read out in these groups, so the grouping outweighs an "account" a few words before.
_PHONE_GROUPS = re.compile(r"(?:1[ \-.])?\d{3}[ \-.]\d{3}[ \-.]\d{4}")


@dataclass(frozen=True)
class FoundNumber:
    """A number found in a transcript, as digits, with what it most likely is."""

    kind: NumberKind
    value: str


def digits_from_words(words: list[str]) -> str | None:
    """The number that a run of number words stands for, as digits; None if it is not one.

    With "hundred" or "thousand" the words are a value ("one hundred twenty" → 120); without,
    they are read as said, chunk by chunk ("four four one seven" → 4417, "forty four seventeen"
    → 4417, "twenty five" → 25), which is how people read out order and phone numbers.
    """
    lowered = [w.lower() for w in words]
    if not lowered or any(w not in _NUMBER_WORDS and w not in _REPEATS for w in lowered):
        return None
    if any(w in _SCALES for w in lowered):
        return _cardinal(lowered)
    out: list[str] = []
    i = 0
    while i < len(lowered):
        word = lowered[i]
        if word in _REPEATS and i + 1 < len(lowered) and lowered[i + 1] in _DIGITS:
            out.append(str(_DIGITS[lowered[i + 1]]) * _REPEATS[word])
            i += 2
        elif word in _TENS and i + 1 < len(lowered) and lowered[i + 1] in _DIGITS:
            out.append(str(_TENS[word] + _DIGITS[lowered[i + 1]]))
            i += 2
        elif word in _TENS:
            out.append(str(_TENS[word]))
            i += 1
        elif word in _TEENS:
            out.append(str(_TEENS[word]))
            i += 1
        elif word in _DIGITS:
            out.append(str(_DIGITS[word]))
            i += 1
        else:
            return None
    return "".join(out)


def _cardinal(words: list[str]) -> str | None:
    total, current = 0, 0
    for word in words:
        if word in _DIGITS:
            current += _DIGITS[word]
        elif word in _TEENS:
            current += _TEENS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
    return str(total + current)


def normalize_numbers(text: str) -> str:
    """``text`` with every run of spelled-out number words replaced by its digits.

    A lone "oh", "o" or "one" stays a word ("oh I see", "the blue one"): only runs of two or more
    number words, or a single unambiguous one ("seven"), are numbers.
    """
    tokens = _TOKEN.findall(text)
    spans = [m.span() for m in _TOKEN.finditer(text)]
    out: list[str] = []
    last_end = 0
    i = 0
    while i < len(tokens):
        j = i
        # "and" inside a value ("one hundred and twenty") belongs to the number.
        while j < len(tokens) and (
            tokens[j].lower() in _NUMBER_WORDS
            or tokens[j].lower() in _REPEATS
            or (tokens[j].lower() == "and" and j > i and _has_scale(tokens[i:j]))
        ):
            j += 1
        while j > i and tokens[j - 1].lower() in ("and", *_REPEATS):
            j -= 1
        run = [t for t in tokens[i:j] if t.lower() != "and"]
        value = digits_from_words(run) if run else None
        if value is not None and not (len(run) == 1 and run[0].lower() in ("oh", "o", "one")):
            start, end = spans[i][0], spans[j - 1][1]
            out.append(text[last_end:start] + value)
            last_end = end
            i = j
        else:
            i += 1
    out.append(text[last_end:])
    return "".join(out)


def _has_scale(tokens: list[str]) -> bool:
    return any(t.lower() in _SCALES for t in tokens)


def find_numbers(text: str) -> list[FoundNumber]:
    """Numbers in ``text`` (spelled or written), classified by the words around them.

    Bare numbers shorter than three digits ("two items", "in 3 days") are left out: they are
    rarely worth remembering, while order, phone and money numbers are kept at any length.
    """
    normalized = normalize_numbers(text)
    found: list[FoundNumber] = []
    for match in _NUMBER.finditer(normalized):
        dollar, raw = match.group(1), match.group(2)
        before, after = normalized[: match.start()], normalized[match.end() :]
        kind = _classify(dollar, raw, before, after)
        value = _value(kind, raw)
        if kind == "number" and len(value) < 3:
            continue
        found.append(FoundNumber(kind, value))
    return found


def _classify(dollar: str, raw: str, before: str, after: str) -> NumberKind:
    if dollar or _AMOUNT_AFTER.match(after):
        return "amount"
    if _PHONE_GROUPS.fullmatch(raw):
        return "phone"
    order, phone = _ORDER_BEFORE.search(before), _PHONE_BEFORE.search(before)
    # Both named before the number ("my phone, the one on order 12, is ..."): the nearer one wins.
    if order and (phone is None or order.start() > phone.start()):
        return "order"
    if phone:
        return "phone"
    return "number"


def _value(kind: NumberKind, raw: str) -> str:
    if kind == "amount" and re.fullmatch(r"\d+\.\d{1,2}", raw):
        return raw
    return re.sub(r"\D", "", raw)

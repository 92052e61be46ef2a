"""Text normalisation for intent matching: ASR output in, comparable word stems out.

Whisper transcripts differ from the examples in an agent file in casing, punctuation,
contractions, inflection and the odd synonym. Everything here is deterministic table work,
so the same utterance always produces the same tokens.
"""

from __future__ import annotations

import re

__all__ = ["content_terms", "phrase_terms", "stem", "words"]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_NON_WORD = re.compile(r"[^a-z0-9' ]+")

# Contractions the generic suffix rules below would get wrong ("won't" is not "wo not").
_WHOLE_CONTRACTIONS = {
    "won't": "will not",
    "can't": "can not",
    "cannot": "can not",
    "shan't": "shall not",
    "ain't": "is not",
    "let's": "let us",
    "y'all": "you all",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
    "gimme": "give me",
}
_SUFFIX_CONTRACTIONS = (
    ("n't", " not"),
    ("'re", " are"),
    ("'m", " am"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'d", " would"),
    # Also possessives ("company's"); both expansions end in a stop word, so it does no harm.
    ("'s", " is"),
)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NUMBER_WORDS = _word_set(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand"
)

# Words that carry no topic. Question words that do ("when", "where", "long") stay content.
_STOP_WORDS = _word_set(
    """
    a about actually again all also am an and any anyone anything are as at be been being but by
    can could did do does doing for from get got give going had has have having hello hey hi how
    i if in is it its just know let like look looking me might mine my need needed of oh ok okay
    on or our ours please possible right really say see should so some something sorry than thank
    thanks that the their them then there these they thing things this those to too trying uh um
    us very wanted want was we well were what which who will with wonder wondering would yeah yes
    you your yours guys folks hmm
    """
)

# Irregular forms the suffix stripper cannot reach.
_IRREGULAR = {
    "bought": "buy",
    "paid": "pay",
    "sent": "send",
    "spoke": "speak",
    "spoken": "speak",
    "came": "come",
    "gone": "go",
    "went": "go",
    "left": "leave",
}

# Words that mean the same thing to a caller, folded into the first one. Stemmed at import so
# the table can be written in plain words.
_SYNONYM_GROUPS = (
    ("package", "parcel", "shipment", "box"),
    ("speak", "talk", "chat"),
    ("person", "human", "someone", "somebody", "people", "agent", "representative", "rep", "operator"),
    ("person", "staff", "employee"),
    ("open", "close", "closed", "closing"),
    ("cost", "price", "fee", "charge", "much"),
    ("store", "shop", "showroom"),
    ("located", "location", "situated"),
    ("arrive", "receive", "come"),
    ("pay", "payment"),
    ("order", "purchase", "stuff"),
    ("not", "never"),
    ("fast", "soon", "quick", "quickly"),
    ("international", "internationally", "overseas", "abroad", "worldwide"),
    ("deliver", "delivery"),
    ("wrong", "mistake", "incorrect"),
    ("dayname", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    ("dayname", "weekend", "holiday", "today", "tomorrow", "tonight"),
)

# Multi-word idioms whose meaning is not in their words, folded before stop words are dropped.
_IDIOMS = (
    (("in", "person"), "visit"),
    (("money", "back"), "refund"),
    (("send", "back"), "return"),
    (("send", "it", "back"), "return"),
    (("send", "them", "back"), "return"),
    (("sent", "back"), "return"),
    (("sent", "it", "back"), "return"),
    (("take", "back"), "return"),
)

_ARTICLES_AND_FILLERS = frozenset({"a", "an", "the", "some", "um", "uh", "please", "like", "just"})


def _synonym_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, *variants in _SYNONYM_GROUPS:
        for variant in variants:
            table[stem(variant)] = stem(canonical)
    return table


def words(text: str) -> list[str]:
    """Lowercase words of ``text`` with punctuation removed and contractions expanded."""
    lowered = text.lower().translate(_APOSTROPHES)
    # Hyphens and slashes join words in transcripts ("e-mail", "and/or"); treat them as spaces.
    cleaned = _NON_WORD.sub(" ", lowered.replace("-", " ").replace("/", " "))
    out: list[str] = []
    for raw in cleaned.split():
        token = raw.strip("'")
        if not token:
            continue
        out.extend(_expand(token).split())
    return out


def _expand(token: str) -> str:
    if token in _WHOLE_CONTRACTIONS:
        return _WHOLE_CONTRACTIONS[token]
    for suffix, replacement in _SUFFIX_CONTRACTIONS:
        if token.endswith(suffix) and len(token) > len(suffix):
            return token[: -len(suffix)] + replacement
    return token.replace("'", "")


def stem(word: str) -> str:
    """A tiny suffix stripper: consistent rather than linguistically right ("closing" -> "clos")."""
    if word in _IRREGULAR:
        word = _IRREGULAR[word]
    if len(word) <= 3 or word.isdigit():
        return word
    word = _strip_inflection(word)
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 4 and word.endswith("y") and word[-2] not in "aeiou":
        word = word[:-1] + "i"
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _strip_inflection(word: str) -> str:
    if word.endswith(("ies", "ied")) and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and any(v in base for v in "aeiouy"):
            return base
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_SYNONYMS = _synonym_table()


def _is_number(word: str) -> bool:
    return word.isdigit() or word in _NUMBER_WORDS


def content_terms(text: str) -> list[str]:
    """Topic-bearing stems of ``text`` in order: stop words and numbers dropped, synonyms folded."""
    terms: list[str] = []
    for word in _fold_idioms(words(text)):
        if word in _STOP_WORDS or _is_number(word):
            continue
        stemmed = stem(word)
        terms.append(_SYNONYMS.get(stemmed, stemmed))
    return terms


def _fold_idioms(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for idiom, meaning in _IDIOMS:
            if tuple(tokens[i : i + len(idiom)]) == idiom:
                out.append(meaning)
                i += len(idiom)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def phrase_terms(text: str) -> list[str]:
    """Stems of ``text`` for phrase matching: only articles and fillers dropped, no synonyms."""
    return [stem(word) for word in words(text) if word not in _ARTICLES_AND_FILLERS]

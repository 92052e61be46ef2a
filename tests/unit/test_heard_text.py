from voiceagent.engines.items import SpokenClause as _Spoken
from voiceagent.engines.items import heard_text

SPOKEN = [_Spoken("We are open today.", 0.0, 1000.0), _Spoken("Until eight pm.", 1000.0, 800.0)]


def test_everything_heard() -> None:
    assert heard_text(SPOKEN, 5000) == "We are open today. Until eight pm."


def test_nothing_heard() -> None:
    assert heard_text(SPOKEN, 0) == ""


def test_cut_inside_second_clause_keeps_first_and_half_words() -> None:
    assert heard_text(SPOKEN, 1000) == "We are open today."
    assert heard_text(SPOKEN, 1400) == "We are open today. Until"


def test_word_counts_once_its_midpoint_played() -> None:
    # "We are open today." is 19 characters with spaces; "We" ends at 3/19 of 1000 ms.
    assert heard_text(SPOKEN, 60) == ""
    assert heard_text(SPOKEN, 100) == "We"

from voiceagent.engines.cascade.clauses import ClauseSplitter


def test_sentences_are_cut_and_rest_flushed() -> None:
    s = ClauseSplitter()
    assert s.push("We're open Monday to Friday. Saturday") == ["We're open Monday to Friday."]
    assert s.push(" from nine") == []
    assert s.flush() == ["Saturday from nine"]
    assert s.flush() == []


def test_long_first_clause_is_cut_at_comma_but_short_one_is_not() -> None:
    s = ClauseSplitter(min_chars=16)
    assert s.push("Yes, of course. ") == ["Yes, of course."]
    s2 = ClauseSplitter(min_chars=16)
    assert s2.push("Thanks for calling Northwind, how can I help") == ["Thanks for calling Northwind,"]


def test_numbers_with_points_and_colons_stay_whole_in_streamed_deltas() -> None:
    s = ClauseSplitter()
    out = []
    for piece in ["It costs 9", ".99 and ships at 4", ":30 today", ". Anything else?"]:
        out += s.push(piece)
    out += s.flush()
    assert out == ["It costs 9.99 and ships at 4:30 today.", "Anything else?"]

"""Bearer tokens: from the header, the browser subprotocol or the query string; compared safely."""

from voiceagent.worker.auth import presented_tokens, token_ok


def test_tokens_are_found_in_all_three_places() -> None:
    headers = {"Authorization": "Bearer abc"}
    protocols = ["realtime", "openai-insecure-api-key.def"]
    assert presented_tokens("/v1/realtime?model=x&api_key=ghi", headers, protocols) == ["abc", "def", "ghi"]


def test_non_bearer_authorization_is_ignored() -> None:
    assert presented_tokens("/v1/realtime", {"Authorization": "Basic abc"}, []) == []


def test_token_ok() -> None:
    assert token_ok(None, [])
    assert token_ok("s3cret", ["wrong", "s3cret"])
    assert not token_ok("s3cret", [])
    assert not token_ok("s3cret", ["s3cre", "s3cret2"])

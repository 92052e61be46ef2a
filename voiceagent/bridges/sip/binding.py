"""Private copies of the pjsua2 extension: several SIP endpoints in one media process.

pjsua is a singleton (one ``pjsua_var`` per loaded library), and the PyPI wheel is compiled with
``PJSUA_MAX_CALLS = 4`` (docs/sip.md, "maxCalls root cause"), so one loaded library holds at most
4 calls. A process that loads the extension's shared object again, from a different file, gets a
second, independent pjsua: Python loads extensions with ``RTLD_LOCAL``, so each copy binds its
own symbols and keeps its own globals, threads, SIP port and conference bridge. Copy 0 is the
ordinary ``pjsua2`` import; copy *n* is the same ``.so`` written to a memfd (an anonymous file:
the dynamic loader recognises a library by device and inode, and nothing is left on disk) and
loaded as ``_voiceagent_pjsua2_<n>._pjsua2`` under its own SWIG wrapper module.

What the copies must not share, and how they do not:

- SWIG's type table: the first SWIG module of an interpreter publishes its table in
  ``sys.modules["swig_runtime_data5"]`` and later modules merge into it, which would make one
  copy's Python classes wrap another copy's objects (a call would then run in the wrong pjsua).
  The entry is hidden while a copy initialises, so each copy builds a table of its own; its
  generated code finds its types through that table from then on.
- Objects: SWIG matches types by name, so one copy's functions would take another copy's
  objects. Plain data (parameters, headers) would survive that; an object tied to a pjsua
  (a call, an account, a port, the endpoint) would run in the wrong library. So every pjsua2
  object is made from the module of the endpoint it is handed to: :class:`PjBinding` holds one
  copy's module and the classes built on it, and the service and its threads use nothing else.
- What stays shared: C++ ``inline`` statics that the compiler marks process-unique
  (``swig::traits_info<T>``, the element types of vectors). Elements read from a vector may come
  back as another copy's class; we only read data from them (``info.media``, codec lists), and
  fill vectors with ``append``, never by assigning a Python list (which fails across copies).

Each copy costs the extension's ~10 MB of code and its own pjsip, media-I/O and clock threads.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

from voiceagent.errors import SipError

__all__ = ["MAX_BINDINGS", "PjBinding", "binding"]

# More endpoints than this in one process would not add capacity: they share one GIL.
MAX_BINDINGS = 32
_SWIG_TABLE = "swig_runtime_data5"
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class PjBinding:
    """One loaded pjsua2: its module (``pj``) and our subclasses built on it."""

    index: int
    pj: Any  # a pjsua2 wrapper module (SWIG, no type information)
    Call: type[Any]
    ServiceAccount: type[Any]
    TrunkAccount: type[Any]
    AudioPort: type[Any]


@functools.cache
def binding(index: int = 0) -> PjBinding:
    """The ``index``-th pjsua2 of this process (0: the ordinary import), loaded on first use."""
    if not 0 <= index < MAX_BINDINGS:
        raise SipError(f"a media process holds 1..{MAX_BINDINGS} SIP endpoints, asked for #{index}")
    with _lock:
        module = importlib.import_module("pjsua2.pjsua2") if index == 0 else _load_copy(index)
    # Imported here: they import pjsua2 (copy 0) themselves, for constants only.
    from voiceagent.bridges.sip.pjcall import PjCall, ServiceAccount, TrunkAccount
    from voiceagent.bridges.sip.port import CallAudioPort

    def build(mixin: type[Any], base: type[Any]) -> type[Any]:
        return type(mixin.__name__, (mixin, base), {"pj": module, "binding_index": index})

    return PjBinding(
        index=index,
        pj=module,
        Call=build(PjCall, module.Call),
        ServiceAccount=build(ServiceAccount, module.Account),
        TrunkAccount=build(TrunkAccount, module.Account),
        AudioPort=build(CallAudioPort, module.AudioMediaPort),
    )


def _load_copy(index: int) -> types.ModuleType:
    original = importlib.import_module("pjsua2.pjsua2")
    package_dir = os.path.dirname(original.__file__ or "")
    shared_object = original._pjsua2.__file__
    package = f"_voiceagent_pjsua2_{index}"
    try:
        path = _anonymous_copy(shared_object, f"pjsua2-{index}")
    except (OSError, AttributeError) as exc:  # no memfd (not Linux), or out of memory
        raise SipError(f"cannot copy pjsua2 for endpoint #{index}: {exc}") from exc
    parent = types.ModuleType(package)
    parent.__path__ = []
    sys.modules[package] = parent
    table = sys.modules.pop(_SWIG_TABLE, None)
    try:
        name = f"{package}._pjsua2"
        extension = _exec_module(name, path, importlib.machinery.ExtensionFileLoader(name, path))
        name, path = f"{package}.pjsua2", os.path.join(package_dir, "pjsua2.py")
        wrapper = _exec_module(name, path, importlib.machinery.SourceFileLoader(name, path))
    except Exception as exc:
        raise SipError(f"cannot load pjsua2 copy #{index}: {exc}") from exc
    finally:
        if table is not None:
            sys.modules[_SWIG_TABLE] = table
    parent._pjsua2 = extension  # type: ignore[attr-defined]
    return wrapper


def _anonymous_copy(source_path: str, name: str) -> str:
    """A path to a copy of ``source_path`` in an anonymous file; the file stays open for good
    (the loader maps it)."""
    fd = os.memfd_create(name)
    with open(source_path, "rb") as source:
        data = source.read()
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    return f"/proc/self/fd/{fd}"


def _exec_module(name: str, path: str, loader: importlib.abc.Loader) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise ImportError(f"no module spec for {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

"""Private pjsua2 copies (binding.py): each a library of its own, its objects its own."""

from __future__ import annotations

import pytest

pytest.importorskip("pjsua2")

from voiceagent.bridges.sip.binding import MAX_BINDINGS, binding
from voiceagent.bridges.sip.pjcall import PjCall, reason_header
from voiceagent.bridges.sip.port import CallAudioPort
from voiceagent.errors import SipError


def test_each_copy_is_a_module_of_its_own_with_our_classes_on_it() -> None:
    first, second = binding(0), binding(1)
    assert binding(1) is second  # loaded once
    assert first.pj is not second.pj
    assert first.pj._pjsua2 is not second.pj._pjsua2  # two extension modules, two libraries
    assert first.pj.__name__ == "pjsua2.pjsua2"  # copy 0 is the ordinary import
    assert issubclass(second.Call, PjCall)
    assert issubclass(second.Call, second.pj.Call)
    assert not issubclass(second.Call, first.pj.Call)
    assert issubclass(second.AudioPort, CallAudioPort)
    assert second.Call.pj is second.pj
    assert second.Call.binding_index == 1


def test_each_copy_wraps_what_it_returns_in_its_own_classes() -> None:
    """Each copy kept a SWIG type table of its own. Sharing one (SWIG's default for a second
    module) makes the copy loaded last own every type: copy 0 then handed out copy-1 objects,
    and calling them ran the other pjsua (an abort in ``pj_mutex_lock`` when this was found)."""
    zero, one = binding(0).pj, binding(1).pj
    assert type(zero.CallOpParam().txOption) is zero.SipTxOption
    assert type(one.CallOpParam().txOption) is one.SipTxOption
    assert zero.SipTxOption is not one.SipTxOption
    op = one.CallOpParam()
    op.txOption.headers.append(reason_header(one, 486, "busy"))
    assert op.txOption.headers[0].hValue == 'SIP;cause=486;text="busy"'


def test_copies_past_the_limit_are_refused() -> None:
    with pytest.raises(SipError, match=f"1..{MAX_BINDINGS}"):
        binding(MAX_BINDINGS)

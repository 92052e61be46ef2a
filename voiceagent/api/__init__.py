"""The REST API: :func:`create_app` builds it from settings; every ``/v1`` route needs an API key.

Run it with ``voiceagent serve``; make keys with ``voiceagent apikey create --scope ...`` or
:func:`voiceagent.store.apikeys.create_api_key`.
"""

from voiceagent.api.app import create_app
from voiceagent.api.errors import ErrorResponse
from voiceagent.store.apikeys import Scope

__all__ = ["ErrorResponse", "Scope", "create_app"]

"""The admin web console at ``/console``: server-rendered pages over the call log and live calls.

``voiceagent.console.install.install_console`` adds its routes, static files and error pages to
the API app (``create_app`` does). Admins are made with ``voiceagent admin create``; see
:mod:`voiceagent.console.admins`.
"""

# The console's routes depend on the API's (voiceagent.api.deps) and the API's app installs the
# console: loading the API first gives one import order whichever of the two is imported first.
import voiceagent.api  # noqa: F401

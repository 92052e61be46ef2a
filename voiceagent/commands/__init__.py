"""The ``voiceagent`` subcommands that belong to one subsystem each; ``voiceagent.cli`` mounts them."""

"""The environment the `pulumi` CLI needs in this project, and a thin wrapper that runs it.

`pulumi` itself runs the program (`__main__.py`) through the project's language host. stackctl only adds
what the CLI cannot know: the pinned CLI and plugins in `.cache/bin`, the local file backend, offline
settings, and the local stack's passphrase. `engine.open_stack` also keeps the Automation API's inline
mode (the same `secure_postfix.stack.program.main`), which the figures compare against.
"""

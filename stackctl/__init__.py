"""Runs the project's Pulumi program on the pinned CLI, with state in a local file backend.

The Python language host (`pulumi-language-python`) cannot be built from the Go
module proxy, so the program runs through the Automation API's inline mode:
the very same `components.program.main`, with the CLI doing the engine's work.
"""

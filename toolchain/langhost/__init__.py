"""The Python language host that the `pulumi` CLI starts for this project (`pulumi-language-python`).

The CLI runs a `runtime: python` project through a plugin of that name: it starts the plugin, reads the
port it prints and calls the LanguageRuntime gRPC service on it. `server` serves that service with the
stubs the Python SDK ships; `runner` is what `Run` starts in the project's own interpreter to execute
`__main__.py`; `interpreter` finds that interpreter from `Pulumi.yaml`'s `runtime.options`.
"""

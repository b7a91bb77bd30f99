"""The pure core: parse, validate, render and diff configuration. No I/O here."""

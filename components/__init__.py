"""Where the resources lived before they became the `secure_postfix` package: kept so that state written then
still loads (each resource's state names its provider's class by this path). See docs/guide.md, "Upgrading".

Not part of the installed package; a stack's first `up` with this release stores the new path.
"""

"""The old path of DovecotAuthServiceProvider, for state written before the package was named secure_postfix."""

from secure_postfix.dovecot_auth import DovecotAuthServiceProvider

__all__ = ["DovecotAuthServiceProvider"]

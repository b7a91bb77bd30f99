"""The old path of PostfixConfigProvider, for state written before the package was named secure_postfix."""

from secure_postfix.postfix_config import PostfixConfigProvider

__all__ = ["PostfixConfigProvider"]

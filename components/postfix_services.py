"""The old path of PostfixServicesProvider, for state written before the package was named secure_postfix."""

from secure_postfix.postfix_services import PostfixServicesProvider

__all__ = ["PostfixServicesProvider"]

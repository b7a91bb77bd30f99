"""The provider fills in every default (SaslWiring/TlsSettings.from_props) before the core sees the settings:
the core's SASL and TLS functions, called as the provider calls them."""

from secure_postfix.args import SaslWiring, TlsSettings
from secure_postfix.core import postfix_features as features


def sasl_directives(raw):
    return features.sasl_directives(SaslWiring.from_props(raw).props())


def tls_directives(raw):
    return features.tls_directives(TlsSettings.from_props(raw).props())


def sasl_problems(raw, tls, is_unknown):
    return features.sasl_problems(SaslWiring.from_props(raw).props(), tls, is_unknown)


def tls_problems(raw):
    return features.tls_problems(TlsSettings.from_props(raw).props())

"""Defaults a user may leave out that more than one layer needs (SSH login), declared once.

Postfix's and Dovecot's own defaults stay with their rules: core/postfix_features.py (SASL_DEFAULTS,
TLS_DEFAULTS) and core/dovecot_conf.py (DEFAULT_MECHANISMS, DEFAULT_PORT).
"""

SSH_PORT = 22
SSH_USER = "root"
# How the controller logs in (`ssh_auth`): with the resource's private key, with the keys of an SSH agent.
SSH_AUTH_METHODS = ("private_key", "agent")

"""secure-postfix: the things a stack can declare (PostfixConfig, DovecotAuthService, MailSite)."""

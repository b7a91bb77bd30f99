"""The stack-config program: the library's first consumer (one MailSite per site of a stack config)."""

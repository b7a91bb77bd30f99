"""The Pulumi program: one MailSite per site in the stack config (see README)."""

from secure_postfix.stack.program import main

main()

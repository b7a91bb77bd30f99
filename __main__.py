"""The Pulumi program: one MailSite per site in the stack config (see README)."""

from components.program import main

main()

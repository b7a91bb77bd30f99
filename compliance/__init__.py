"""`python -m compliance`: the compliance report of a stack's last state, as Markdown and HTML."""

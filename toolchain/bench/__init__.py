"""Fleet figures: time per engine operation, SSH logins and mail served, beside a plain paramiko baseline."""

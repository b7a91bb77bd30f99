"""The thin SSH shell: runs commands and moves files on a host, nothing more."""

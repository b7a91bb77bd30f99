"""Figures for one host: time per engine operation and SSH connections opened, beside a naive baseline."""

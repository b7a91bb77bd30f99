"""Every stack file under stacks/ parses into sites with the rules the program applies."""

from pathlib import Path

import pytest
import yaml

from secure_postfix.stack.config import parse_hosts, parse_sites

STACKS = sorted((Path(__file__).resolve().parents[2] / "stacks").glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("path", STACKS, ids=[p.name for p in STACKS])
def test_stack_file_parses(path):
    config = yaml.safe_load(path.read_text())["config"]
    hosts_raw = config.get("secure-postfix:hosts") or {}
    if "secure-postfix:inventory_file" in config:
        # The local stack takes its hosts from the test bed's record; stand in for it.
        hosts_raw = {name: {"address": f"10.231.7.{11 + i}"} for i, name in enumerate(("mx", "edge", "auth"))}
    services = config.get("secure-postfix:auth_services")
    sites = parse_sites(config["secure-postfix:sites"], parse_hosts(hosts_raw), services)
    assert sites
    for site in sites.values():
        assert site.tls is not None and site.sasl is not None


def test_there_are_examples_for_both_topologies():
    names = {p.name for p in STACKS}
    assert {"Pulumi.local.yaml", "Pulumi.example-single.yaml", "Pulumi.example-split.yaml"} <= names

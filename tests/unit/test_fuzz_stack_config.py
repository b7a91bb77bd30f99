"""Fuzzed stack config: every bad input is refused before any host is contacted, every good one means what it says.

Hypothesis writes stack configs (hosts and one site with limits and directives) out of huge numbers, digits of other
scripts, control and format characters, shell metacharacters, `=` and `#` in names, empty strings and values of the
wrong type. Each goes the way `preview` takes it: the program's parsing of the stack config (`parse_stack`), then the
provider's `check` for each host, with every SSH entry point rigged to fail the test. Then:

- a value built to be bad (by construction, not by asking the code under test) must be refused, and every refusal
  names the host and the field;
- whatever is accepted is rendered into a copy of this machine's main.cf, and Postfix's own parser
  (`postconf -c DIR -n`) must read every managed directive back with exactly the value the stack gave; `postmap`, which
  reads Postfix's global parameters the way every daemon does, must not exit on it either.

The run is derandomized (the same examples on every machine) and bounded; the figures are printed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secure_postfix import connection as conn
from secure_postfix.core import maincf
from secure_postfix.core.postfix_plan import plan_edit
from secure_postfix.postfix_config import PostfixConfigProvider
from secure_postfix.remote import ssh
from secure_postfix.stack.config import NAMESPACE, ConfigError, parse_stack
from secure_postfix.stack.program import connection_of

EXAMPLES = 500
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
BASE = Path("/etc/postfix")

_KEY = ed25519.Ed25519PrivateKey.generate()
PRIVATE_KEY = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()
HOST_KEY = " ".join(
    _KEY.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode().split()
)

# Characters no config line may hold: controls, line and paragraph separators, bidi and zero-width format characters.
BAD_CHARS = ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u200b", "\x1c", "\ufeff"]
# Digits of other scripts: str.isdigit() says yes, no daemon does.
FOREIGN_DIGITS = ["\u0661\u0660", "\uff15", "\u0967\u0968", "\u09e7", "\U0001d7d9"]
SHELL = ["; reboot", "$(id)", "`id`", "| sh", "&& rm -rf /", "> /etc/passwd", "'\"", "\\", "*", "~root", "$HOME", "!"]

INT_LIMITS = ("header_size_limit", "default_process_limit", "smtpd_client_connection_rate_limit")
LONG_LIMITS = ("message_size_limit", "queue_minfree")
INT_MAX, LONG_MAX = 2**31 - 1, 2**63 - 1
# Directives of every kind Postfix reads: free text, lists, a boolean, numbers, a time.
TEXT_DIRECTIVES = ("smtpd_banner", "smtpd_reject_footer", "mydestination", "smtpd_helo_restrictions", "alias_maps")
TYPED_DIRECTIVES = {
    "smtpd_helo_required": "bool",
    "smtpd_recipient_limit": "int",
    "smtpd_timeout": "time",
    "maximal_queue_lifetime": "time",
}


@dataclass
class Case:
    """One generated stack config, and what is known to be wrong in it by construction."""

    hosts: dict[str, Any]
    sites: dict[str, Any]
    bad: set[str] = field(default_factory=set)  # fields (host keys, limit and directive names) built to be refused


# -- strategies ----------------------------------------------------------------------------------------------------
# A case is clean, or carries exactly one fault (so that no other fault can be what refused it). Host names are
# drawn from odd ones in every case: nothing of them reaches main.cf, so they are judged by the oracle alone.

names = st.sampled_from(["mx", "mx1", "edge-2", "a=b", "#mx", "m x", "мх", "", "$(id)", "mx;reboot"])
FAULTS = ("address", "port", "host_key", "limit", "directive", "directive_name", "overlap")

BAD_NUMBERS = [
    str(LONG_MAX + 1),
    LONG_MAX + 1,
    2**70,
    10**30,
    -1,
    "-5",
    "",
    " ",
    "1 ",
    " 1",
    "+5",
    "0x10",
    "1e3",
    "1_000",
    1.5,
    None,
    [1, 2],
    {"a": 1},
    "10M",
    *FOREIGN_DIGITS,
    *(f"1{s}" for s in SHELL),
    *(f"5{c}" for c in BAD_CHARS),
]
ZERO_TIMES_ALLOWED = ("maximal_queue_lifetime",)
BAD_TIMES = [
    "",
    "0s",
    "99999999999w",
    str(2**70),
    "60x",
    "s",
    "-1s",
    "60 s",
    "\u0666\u0660s",
    "60s\n",
    None,
    [60],
    "1;id",
    " 60s",
    "60s ",
]
BAD_BOOLS = ["true", "1", "on", "", "yes ", None, "YES"]
BAD_TEXTS = [None, {"a": "b"}, " leading", "trailing ", "  ", "x\u3000 "]
# Names no main.cf line can carry: `=` and `#` in them, spaces, other scripts, nothing at all; and an unknown one.
BAD_NAMES = [
    "a=b",
    "#smtpd_banner",
    "smtpd banner",
    "",
    "\uff53\uff4d\uff54\uff50\uff44_banner",
    "smtpd_banner\n",
    "x$y",
    "no_such_parameter",
]
BAD_PORTS = [0, 65536, 10**30, -22, "\uff12\uff12", "\u0662\u0662", "22; id", "", True, 22.5, [22]]


@st.composite
def good_number(draw, least: int, top: int) -> Any:
    value = draw(st.integers(min_value=least, max_value=top))
    return value if draw(st.booleans()) else str(value)


def good_time() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, unit: f"{n}{unit}", st.integers(min_value=1, max_value=99), st.sampled_from(["", "s", "m", "h"])
    )


def good_text() -> st.SearchStrategy[str]:
    """Free text: letters, digits, punctuation and symbols of any script, shell metacharacters, `=`, `#`, `$$`."""
    piece = st.one_of(
        st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), max_size=8),
        st.sampled_from([*SHELL, "=", "#", "a = b", "# not a comment", ",", " ", "{x}", "$$", "$myhostname"]),
    )
    return st.lists(piece, max_size=4).map("".join)


# Ranges that keep the guide's cross-field rules (header <= message size, queue_minfree 0 or >= 1.5 x message size)
# whatever else the case sets, so that clean cases reach Postfix; the ends are Postfix's own bounds.
RANGES = {
    "message_size_limit": (10**6, 10**12),
    "header_size_limit": (1, 10**6),
    "queue_minfree": (2 * 10**12, LONG_MAX),
}


def good_value(name: str) -> st.SearchStrategy[Any]:
    if name == "queue_minfree":
        return st.one_of(st.just(0), good_number(*RANGES[name]))
    if name in RANGES:
        return good_number(*RANGES[name])
    if name in INT_LIMITS or TYPED_DIRECTIVES.get(name) == "int":
        return good_number(1, INT_MAX)
    if name == "anvil_rate_time_unit" or TYPED_DIRECTIVES.get(name) == "time":
        return good_time()
    if TYPED_DIRECTIVES.get(name) == "bool":
        return st.sampled_from(["yes", "no", True, False])
    return good_text()


@st.composite
def bad_value(draw, name: str) -> Any:
    if name in INT_LIMITS or name in LONG_LIMITS or TYPED_DIRECTIVES.get(name) == "int":
        big = [INT_MAX + 1, str(INT_MAX + 1), 2**40] if name not in LONG_LIMITS else []
        return draw(st.sampled_from(BAD_NUMBERS + big))
    if name == "anvil_rate_time_unit" or TYPED_DIRECTIVES.get(name) == "time":
        # maximal_queue_lifetime may be 0 (Postfix tries each message once): zero is bad only for the others.
        return draw(st.sampled_from([t for t in BAD_TIMES if not (t == "0s" and name in ZERO_TIMES_ALLOWED)]))
    if TYPED_DIRECTIVES.get(name) == "bool":
        return draw(st.sampled_from(BAD_BOOLS))
    text = draw(good_text())
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        return text[:at] + draw(st.sampled_from(BAD_CHARS)) + text[at:]
    return draw(st.sampled_from(BAD_TEXTS))


LIMIT_NAMES = (*INT_LIMITS, *LONG_LIMITS, "anvil_rate_time_unit")
DIRECTIVE_NAMES = (*TEXT_DIRECTIVES, *TYPED_DIRECTIVES)


@st.composite
def mapping(draw, pool: tuple[str, ...], least: int) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(pool), min_size=least, max_size=3, unique=True))
    return {name: draw(good_value(name)) for name in chosen}


@st.composite
def stack_cases(draw) -> Case:
    fault = draw(st.one_of(st.none(), st.sampled_from(FAULTS)))
    host = draw(names)
    item: dict[str, Any] = {
        "address": draw(st.sampled_from(["192.0.2.25", "mx.example.net", "2001:db8::25"])),
        "host_key": HOST_KEY,
    }
    if draw(st.booleans()):
        item["port"] = draw(st.sampled_from([22, "22", 2222, 65535]))
    site_limits = draw(mapping(LIMIT_NAMES, 1 if fault == "limit" else 0))
    site_directives = draw(mapping(DIRECTIVE_NAMES, 1 if fault in ("directive", "overlap") else 0))
    bad: set[str] = set()
    if fault == "address":
        item["address"] = draw(st.sampled_from(["", 25, None, ["a"], {"ip": "192.0.2.25"}]))
        bad.add("hosts.address")
    elif fault == "port":
        item["port"] = draw(st.sampled_from(BAD_PORTS))
        bad.add("hosts.port")
    elif fault == "host_key":
        item["host_key"] = draw(st.sampled_from(["ssh-ed25519 AAAAplaceholder", "", 7, f"mx.example.net {HOST_KEY}"]))
        bad.add("hosts.host_key")
    elif fault == "limit":
        name = draw(st.sampled_from(sorted(site_limits)))
        site_limits[name] = draw(bad_value(name))
        bad.add(name)
    elif fault == "directive":
        name = draw(st.sampled_from(sorted(site_directives)))
        site_directives[name] = draw(bad_value(name))
        bad.add(name)
    elif fault == "directive_name":
        name = draw(st.sampled_from(BAD_NAMES))
        site_directives[name] = draw(st.sampled_from(["1", "yes", "text"]))
        bad.add(name)
    elif fault == "overlap":
        # The same directive under limits and directives: which one wins would be a guess.
        name = draw(st.sampled_from(sorted(site_directives)))
        site_limits[name] = site_directives[name]
        bad.add(name)
    site = {"postfix_host": host, "limits": site_limits, "directives": site_directives}
    return Case(hosts={host: item}, sites={"solo": site}, bad=bad)


# -- the oracle ----------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    refused: list[str]  # the messages, each to name the host and the field
    main_cf: dict[str, str] | None = None  # the directives as the provider stores them, when accepted


def no_ssh(*_args, **_kwargs):
    raise AssertionError("an SSH connection was attempted while checking a stack config")


def judge(case: Case) -> Verdict:
    """What preview does with the config: the program's parsing, then the provider's check for each host."""
    try:
        spec = parse_stack(case.hosts, case.sites)
    except ConfigError as exc:
        return Verdict([f"config: {exc}"])
    provider = PostfixConfigProvider()
    messages: list[str] = []
    main_cf: dict[str, str] = {}
    for site in spec.sites.values():
        for name in site.postfix_hosts:
            props = {
                **conn.connection_props(connection_of(spec.hosts[name], None)),
                "private_key": PRIVATE_KEY,
                "limits": dict(site.limits),
                "directives": dict(site.directives),
            }
            result = provider.check({}, props)
            messages += [f"check {spec.hosts[name].address}: {f.reason}" for f in result.failures or []]
            main_cf.update(result.inputs.get("main_cf") or {})
    return Verdict(messages, None if messages else main_cf)


EMPTY_NAME = '""'  # how a message shows a field whose name is empty


def named(message: str, case: Case) -> bool:
    """A refusal names the host (its key or address) and one of the fields the case set."""
    (host, item), (site_name, site) = next(iter(case.hosts.items())), next(iter(case.sites.items()))
    if message.startswith("config: "):
        keys = [f"{NAMESPACE}:hosts.{host}.", f"{NAMESPACE}:sites.{site_name}."]
        return any(k in message for k in keys)
    address = message.removeprefix("check ").split(": ", 1)[0]
    fields = [*site["limits"], *site["directives"], "host_key", "port", "host"]
    rest = message.split(": ", 1)[1]
    # Messages name the host as the stack does, its address beside it.
    label = f"{host} ({address})" if host and host != address else address
    return (
        address == item["address"]
        and rest.startswith(f"{label}: ")
        and any(
            re.search(r"(^|[\s.])" + re.escape(f or EMPTY_NAME) + r"(?=[\s:.,]|$)", rest[len(label) + 2 :])
            for f in fields
        )
    )


def postconf_values(directory: Path) -> dict[str, str]:
    done = subprocess.run(
        [POSTCONF, "-c", str(directory), "-n"], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    values = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" =")
        values[name] = value.removeprefix(" ")
    return values


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    if not (BASE / "main.cf").is_file() or not Path(POSTCONF).exists():
        pytest.skip("needs Postfix on this machine (postconf and /etc/postfix/main.cf)")
    directory = tmp_path_factory.mktemp("fuzz-postfix")
    for name in ("main.cf", "master.cf"):
        shutil.copy(BASE / name, directory / name)
    return directory


def test_fuzzed_stack_configs_are_refused_by_name_or_read_back_by_postfix(scratch, monkeypatch, capsys):
    base_text = maincf.decode((scratch / "main.cf").read_bytes())
    # Every way out to a host: the project's session, paramiko's client, a raw transport.
    monkeypatch.setattr(ssh.Session, "__init__", no_ssh)
    monkeypatch.setattr(paramiko.SSHClient, "connect", no_ssh)
    monkeypatch.setattr(paramiko.Transport, "__init__", no_ssh)
    seen: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=stack_cases())
    def check_one(case: Case) -> None:
        seen["tried"] += 1
        verdict = judge(case)
        if verdict.refused:
            seen["refused"] += 1
            for message in verdict.refused:
                assert named(message, case), (message, case)
            return
        assert not case.bad, f"accepted although built to be bad in {sorted(case.bad)}: {case}"
        seen["accepted"] += 1
        desired = verdict.main_cf or {}
        (scratch / "main.cf").write_bytes(maincf.encode(plan_edit(base_text, desired).text))
        # Postfix waits while a main.cf is younger than about two seconds, in case it is still being written.
        aged = time.time() - 10
        os.utime(scratch / "main.cf", (aged, aged))
        read_back = postconf_values(scratch)
        for name, value in desired.items():
            assert read_back.get(name) == value, (name, value, read_back.get(name))
        # postmap reads the global parameters as every daemon does, and exits on a number it cannot read.
        loaded = subprocess.run(
            [POSTMAP, "-c", str(scratch), "-q", "probe", "static:found"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert loaded.returncode == 0 and loaded.stdout.strip() == "found", loaded.stderr
        assert "warning" not in loaded.stderr and "fatal" not in loaded.stderr, loaded.stderr

    check_one()
    with capsys.disabled():
        print(
            f"\nfuzzed stack configs: {seen['tried']} tried, {seen['refused']} refused naming host and field, "
            f"{seen['accepted']} accepted and read back by postconf"
        )
    assert seen["tried"] >= EXAMPLES * 0.9
    assert seen["refused"] >= EXAMPLES // 10 and seen["accepted"] >= EXAMPLES // 10, seen

"""The Dovecot side of the guide (section 8.8.3 step 1): an auth listener for Postfix.

We own one file under conf.d; it renders the guide's `service auth` block with
either the UNIX socket in Postfix's queue directory or a TCP listener, in the syntax
of the Dovecot series the host runs (2.3 or 2.4; see docs/platforms.md).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from secure_postfix.core import sasl_path as sasl_paths
from secure_postfix.core.postfix_rules import unprintable_character
from secure_postfix.core.problem import Problem

CONFIG_FILE = "/etc/dovecot/conf.d/99-secure-postfix-auth.conf"
DEFAULT_SOCKET = "/var/spool/postfix/private/auth"
DEFAULT_QUEUE_DIRECTORY = "/var/spool/postfix"
DEFAULT_MECHANISMS = "plain login"
DEFAULT_PORT = 12345
SUPPORTED_SERIES = ((2, 3), (2, 4))

# Dovecot 2.3's built-in mechanisms (src/auth/mech.c and the mech plugins it ships).
KNOWN_MECHANISMS = frozenset(
    {
        "plain",
        "login",
        "cram-md5",
        "digest-md5",
        "apop",
        "anonymous",
        "external",
        "gssapi",
        "gss-spnego",
        "ntlm",
        "otp",
        "rpa",
        "scram-sha-1",
        "scram-sha-256",
        "oauthbearer",
        "xoauth2",
        "winbind",
    }
)
# Dovecot 2.4's auth process has no NTLM, RPA or winbind mechanism: each name was set in turn on Debian 13's
# 2.4.1, and these three made the auth service exit ("Unknown authentication mechanism"); the others start
# (or ask for a passdb that can serve them). gssapi and gss-spnego come with the dovecot-gssapi package.
MECHANISMS_BY_SERIES: dict[tuple[int, int], frozenset[str]] = {
    (2, 3): KNOWN_MECHANISMS,
    (2, 4): KNOWN_MECHANISMS - {"ntlm", "rpa", "winbind"},
}
_MODE_RE = re.compile(r"0?[0-7]{3}")
# A socket path is a section name in Dovecot's syntax: whitespace, braces, quotes, # (comment),
# $ (expansion), < (read a file) or = would change the file's structure, so only these characters.
_SOCKET_PATH_RE = re.compile(r"/[A-Za-z0-9._+\-/]*")
# Characters Dovecot's config parser gives a meaning to, anywhere in a value.
DOVECOT_SPECIAL = frozenset("{}\"'#$<=\\")
_NAME_RE = re.compile(r"[a-z_][a-z0-9_.\-]*")


@dataclass(frozen=True)
class Listener:
    kind: str = "unix"  # or "inet"
    path: str = DEFAULT_SOCKET
    mode: str = "0660"
    user: str = "postfix"
    group: str = "postfix"
    address: str = ""
    port: int = DEFAULT_PORT


def mechanisms(text: str) -> list[str]:
    return [m.lower() for m in re.split(r"[\s,]+", text.strip()) if m]


def listener_problems(listener: Listener, allow_all_interfaces: object = False) -> list[Problem]:
    if allow_all_interfaces is not None and not isinstance(allow_all_interfaces, bool):
        # bool("false") is True: a string here must never open the listener to every interface.
        got = repr(allow_all_interfaces)
        return [Problem("allow_all_interfaces", f"must be true or false (a real boolean), got {got}")]
    if listener.kind == "unix":
        problems = socket_path_problems(listener.path)
        if not _MODE_RE.fullmatch(listener.mode):
            problems.append(Problem("socket_mode", f"{listener.mode!r} is not an octal mode such as 0660"))
        for field, name in (("socket_user", listener.user), ("socket_group", listener.group)):
            if not _NAME_RE.fullmatch(name):
                problems.append(Problem(field, f"{name!r} is not a user or group name"))
        return problems
    if listener.kind != "inet":
        return [Problem("listener", f"must be unix or inet, got {listener.kind!r}")]
    problems = []
    if not 0 < listener.port < 65536:
        problems.append(Problem("listen_port", f"{listener.port} is not a TCP port"))
    address = plain_ip_address(listener.address)
    if address is None:
        message = f"{listener.address!r} is not an IP address of the Dovecot host"
        if ipaddress_accepts(listener.address):
            message += " (only a plain one: no %zone, since the value is written into Dovecot's config)"
        return [*problems, Problem("bind_address", message)]
    if address.is_unspecified and allow_all_interfaces is not True:
        problems.append(
            Problem(
                "bind_address",
                "binding the auth listener to all interfaces exposes unencrypted credentials; bind it to the "
                "private address Postfix uses (or set allow_all_interfaces: true deliberately)",
            )
        )
    return problems


def plain_ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IPv4 or IPv6 address and nothing else.

    ipaddress accepts any text after % in an IPv6 address (a scope), newlines and braces included.
    """
    if not re.fullmatch(r"[0-9A-Fa-f:.]+", text):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ipaddress_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def socket_path_problems(path: str) -> list[Problem]:
    if not _SOCKET_PATH_RE.fullmatch(path) or ".." in path.split("/") or "//" in path or path.endswith("/"):
        return [
            Problem(
                "socket_path",
                f"{path!r} must be an absolute path of letters, digits and . _ + - / (no .. and no empty part): "
                "it is written into Dovecot's config as a section name",
            )
        ]
    return []


def value_problems(field: str, value: str) -> list[Problem]:
    """What no value written into a Dovecot file may hold: line breaks, control characters, syntax."""
    bad = unprintable_character(value)
    if bad:
        return [Problem(field, f"contains a line break or control character ({bad}); it must be one line of text")]
    special = sorted(set(value) & DOVECOT_SPECIAL)
    if special:
        return [Problem(field, f"contains {' '.join(special)}, which Dovecot's config syntax gives a meaning to")]
    return []


def mechanism_problems(text: str, version: tuple[int, ...] | None = None) -> list[Problem]:
    """The mechanisms judged against the host's Dovecot `version`; with None (no host read yet), against every
    supported series, so that only a name no supported Dovecot knows is refused before the host is."""
    syntax = value_problems("auth_mechanisms", text)
    if syntax:
        return syntax
    found = mechanisms(text)
    if not found:
        return [Problem("auth_mechanisms", "lists no mechanism; the guide uses: plain login")]
    if version is None or version[:2] not in MECHANISMS_BY_SERIES:
        known = frozenset().union(*MECHANISMS_BY_SERIES.values())
        named = " or ".join(series_text(s) for s in SUPPORTED_SERIES)
    else:
        known, named = MECHANISMS_BY_SERIES[version[:2]], version_text(version)
    unknown = [m for m in found if m not in known]
    if unknown:
        return [
            Problem(
                "auth_mechanisms",
                f"{', '.join(unknown)} not known to Dovecot {named} (doveconf accepts it, but the auth service then "
                "dies and every new smtpd with it); known: " + ", ".join(sorted(known)),
            )
        ]
    return []


def sasl_path(listener: Listener, queue_directory: str = DEFAULT_QUEUE_DIRECTORY) -> str:
    """What Postfix's smtpd_sasl_path must say to reach this listener."""
    if listener.kind == "inet":
        return sasl_paths.inet(listener.address, listener.port)
    return sasl_paths.unix(listener.path, queue_directory)


def sasl_path_problems(listener: Listener, queue_directory: str) -> list[Problem]:
    if listener.kind == "unix" and sasl_path(listener, queue_directory).startswith(".."):
        return [
            Problem(
                "socket_path",
                f"{listener.path} is outside the Postfix queue directory {queue_directory}; a chrooted smtpd "
                "cannot reach it",
            )
        ]
    return []


def render(listener: Listener, mechanism_text: str, version: tuple[int, ...] = (2, 3)) -> str:
    """Our conf.d file, for the host's Dovecot `version`. Later files win, so this one's settings override
    10-auth.conf's.

    2.3 and 2.4 read the same file but for one name: 2.4 has no `address` in an inet_listener (its doveconf
    stops at "Unknown setting: address"); the listener's own `listen` takes the address instead.
    """
    address_setting = "listen" if version[:2] >= (2, 4) else "address"
    lines = [
        "# Managed by secure-postfix (DovecotAuthService): Dovecot SASL for Postfix.",
        "# Changes here are undone by the next `pulumi up`; edit the stack config instead.",
        f"auth_mechanisms = {' '.join(mechanisms(mechanism_text))}",
        "service auth {",
    ]
    if listener.kind == "unix":
        lines += [
            f"  unix_listener {listener.path} {{",
            f"    mode = {listener.mode if listener.mode.startswith('0') else '0' + listener.mode}",
            f"    user = {listener.user}",
            f"    group = {listener.group}",
            "  }",
        ]
    else:
        lines += [
            "  inet_listener postfix_sasl {",
            f"    {address_setting} = {listener.address}",
            f"    port = {listener.port}",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_version(text: str) -> tuple[int, ...]:
    """`dovecot --version` prints e.g. "2.3.19.1 (9b53102964)"."""
    match = re.match(r"^\s*(\d+(?:\.\d+)+)", text)
    if match is None:
        raise ValueError(f"cannot read a Dovecot version from {text.strip()[:40]!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def version_supported(version: tuple[int, ...]) -> bool:
    return version[:2] in SUPPORTED_SERIES


def series_text(series: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in series)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def version_refusal(version: tuple[int, ...]) -> str | None:
    """Why a Dovecot of this version cannot be given our file; None when it can."""
    if version_supported(version):
        return None
    series = " and ".join(series_text(s) for s in SUPPORTED_SERIES)
    return f"Dovecot {version_text(version)} is not supported (only {series}: each reads the auth settings its own way)"

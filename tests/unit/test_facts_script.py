"""The Postfix facts script itself, run here with a stand-in postconf: what it asks Postfix, and what it reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

from secure_postfix.core.host_output import POSTFIX_FACTS_SCRIPT, parse_postfix_facts
from tests.unit.test_rhel_commands import logged, stand_ins


def stand_in_postconf(config: Path) -> str:
    """What Postfix 3.7 prints for each question the script asks; anything else is an unknown question."""
    return f"""case "$*" in
  "-xh config_directory mail_version maillog_file queue_directory inet_interfaces inet_protocols")
    printf '%s\\n' {config} 3.7.11 "" /var/spool/postfix loopback-only ipv4 ;;
  "-M") echo 'smtp       inet  n       -       y       -       -       smtpd' ;;
  "-d") printf 'message_size_limit = 10240000\\nmyhostname = mx\\n' ;;
  *) echo "unexpected question: $*" >&2; exit 2 ;;
esac"""


def test_the_facts_ask_postconf_three_times_and_read_back_every_value(tmp_path):
    config = tmp_path / "etc-postfix"
    config.mkdir()
    (config / "main.cf").write_text("message_size_limit = 20480000\n")
    env, calls = stand_ins(tmp_path, {"postconf": stand_in_postconf(config)})
    out = subprocess.run(["sh", "-c", POSTFIX_FACTS_SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "unexpected question" not in out.stderr, out.stderr
    facts = parse_postfix_facts(out.stdout)
    assert (facts.config_directory, facts.version, facts.queue_directory) == (
        str(config),
        "3.7.11",
        "/var/spool/postfix",
    )
    assert facts.listen_address == "127.0.0.1"
    assert facts.parameters == {"message_size_limit", "myhostname"}
    assert facts.main_cf == "message_size_limit = 20480000\n"
    # Each postconf run reads all of main.cf: one for the six values, -M and -d.
    assert [c for c in logged(calls) if c.startswith("postconf")] == [
        "postconf -xh config_directory mail_version maillog_file queue_directory inet_interfaces inet_protocols",
        "postconf -M",
        "postconf -d",
    ]


def test_a_refresh_asks_postconf_once_and_reads_no_names(tmp_path):
    config = tmp_path / "etc-postfix"
    config.mkdir()
    (config / "main.cf").write_text("message_size_limit = 20480000\n")
    (config / "main.cf.secure-postfix-prev").write_text("")
    env, calls = stand_ins(tmp_path, {"postconf": stand_in_postconf(config)})
    lock = tmp_path / "run" / "host.lock"
    argv = ["sh", "-c", POSTFIX_FACTS_SCRIPT, "sh", str(lock), "values"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "unexpected question" not in out.stderr, out.stderr
    facts = parse_postfix_facts(out.stdout)
    assert (facts.config_directory, facts.version) == (str(config), "3.7.11")
    assert facts.main_cf == "message_size_limit = 20480000\n"
    assert facts.backed_up == (str(config / "main.cf"),)
    assert facts.ledger_read and facts.ledger is None
    # Neither the names nor the listening services nor the digest: what only a change needs.
    assert facts.parameters is None and facts.main_cf_sha256 is None
    assert [c for c in logged(calls) if c.startswith("postconf")] == [
        "postconf -xh config_directory mail_version maillog_file queue_directory inet_interfaces inet_protocols",
    ]
    assert lock.exists()

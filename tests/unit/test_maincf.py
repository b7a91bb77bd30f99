import pytest

from secure_postfix.core.maincf import MainCf, MainCfSyntaxError

SAMPLE = """# See /usr/share/postfix/main.cf.dist for a commented, more complete version

smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
smtpd_tls_security_level=may
mydestination = $myhostname,
    localhost.localdomain,
# a comment inside a continued value
\tlocalhost
message_size_limit = 10240000
  # an indented comment ends nothing
relayhost =\x20
"""


def test_render_is_lossless():
    assert MainCf.parse(SAMPLE).render() == SAMPLE


def test_values_join_continuation_lines_and_skip_comments():
    cf = MainCf.parse(SAMPLE)
    assert cf.get("mydestination") == "$myhostname, localhost.localdomain, localhost"
    assert cf.get("smtpd_tls_security_level") == "may"
    assert cf.get("relayhost") == ""
    assert cf.get("absent") is None


def test_last_definition_wins():
    cf = MainCf.parse("a = 1\nb = 2\na = 3\n")
    assert cf.get("a") == "3"
    cf.set("a", "4")
    assert cf.render() == "a = 1\nb = 2\na = 4\n"


def test_set_replaces_in_place_and_keeps_everything_else():
    cf = MainCf.parse(SAMPLE)
    cf.set("mydestination", "$myhostname, localhost")
    out = cf.render()
    assert "mydestination = $myhostname, localhost\nmessage_size_limit" in out
    assert out.replace("mydestination = $myhostname, localhost\n", "") == SAMPLE.replace(
        "mydestination = $myhostname,\n    localhost.localdomain,\n# a comment inside a continued value\n\tlocalhost\n",
        "",
    )


def test_set_appends_new_directive_and_keeps_the_missing_final_newline():
    cf = MainCf.parse("a = 1")
    cf.set("b", "2")
    assert cf.render() == "a = 1\nb = 2"


def test_unset_removes_every_definition():
    cf = MainCf.parse("a = 1\nb = 2\na = 3\n  continued\n")
    cf.unset("a")
    assert cf.render() == "b = 2\n"


def test_hash_inside_value_is_part_of_value():
    assert MainCf.parse("a = x # y\n").get("a") == "x # y"


def test_syntax_errors_name_the_line():
    with pytest.raises(MainCfSyntaxError, match="line 2"):
        MainCf.parse("a = 1\nthis line is broken\n")
    with pytest.raises(MainCfSyntaxError, match="continuation"):
        MainCf.parse("  orphan\n")

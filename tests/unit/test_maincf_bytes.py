"""main.cf is read the way Postfix reads it, and every byte that is not managed survives any edit."""

import pytest

from secure_postfix.core import maincf
from secure_postfix.core.maincf import MainCf
from secure_postfix.core.postfix_plan import Change, plan_edit, plan_restore
from secure_postfix.postfix_config import originals_from_state, originals_to_state

LATIN1 = b"# caf\xe9 au lait\nsmtpd_banner = $myhostname ESMTP caf\xe9\nbiff = no\nmydestination = localhost"


def test_file_without_final_newline_is_restored_exactly():
    text = "biff = no\nmydestination = localhost"
    plan = plan_edit(text, {"message_size_limit": "1048576"})
    assert plan.text == "biff = no\nmydestination = localhost\nmessage_size_limit = 1048576"
    assert plan_restore(plan.text, plan.originals).text == text


def test_managed_last_definition_without_final_newline_is_restored_exactly():
    text = "biff = no\nmessage_size_limit = 10240000"
    plan = plan_edit(text, {"message_size_limit": "1048576", "queue_minfree": "0"})
    assert plan.text == "biff = no\nmessage_size_limit = 1048576\nqueue_minfree = 0"
    assert plan_restore(plan.text, plan.originals).text == text


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"])
def test_only_newline_ends_a_line(separator):
    text = f"smtpd_banner = a{separator}b\nbiff = no\n"
    cf = MainCf.parse(text)
    assert [e.name for e in cf.entries if e.name is not None] == ["smtpd_banner", "biff"]
    assert cf.get("smtpd_banner") == f"a{separator}b"
    assert (
        plan_restore(
            plan_edit(text, {"smtpd_banner": "x"}).text, {"smtpd_banner": f"smtpd_banner = a{separator}b\n"}
        ).text
        == text
    )


def test_bytes_that_are_not_utf8_survive_parse_edit_and_restore():
    text = maincf.decode(LATIN1)
    plan = plan_edit(text, {"smtpd_banner": "$myhostname ESMTP", "message_size_limit": "1048576"})
    assert maincf.encode(plan.text).startswith(b"# caf\xe9 au lait\nsmtpd_banner = $myhostname ESMTP\n")
    restored = plan_restore(plan.text, originals_from_state(originals_to_state(plan.originals)))
    assert maincf.encode(restored.text) == LATIN1


def test_values_that_are_not_utf8_are_shown_and_stored_as_utf8():
    plan = plan_edit(maincf.decode(LATIN1), {"smtpd_banner": "x"})
    assert str(plan.changes[0]) == "smtpd_banner: $myhostname ESMTP caf\\xe9 -> x"
    stored = originals_to_state(plan.originals)
    stored["smtpd_banner"].encode("utf-8")  # no lone surrogate reaches state
    assert stored["smtpd_banner"].startswith("=base64:")
    assert Change("a", None, "b").old is None


def test_utf8_originals_are_stored_as_text():
    assert originals_to_state({"a": "a = café\n", "b": None}) == {"a": "a = café\n", "b": ""}

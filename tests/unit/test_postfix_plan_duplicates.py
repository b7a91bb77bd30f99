"""A managed name defined more than once: the edit leaves one definition, the give-back puts every line back."""

from secure_postfix.core.postfix_plan import Change, plan_edit, plan_restore

DUPLICATED = """# top
a = 1
rate = 5
b = 2
# middle
rate = 6
c = 3
rate = 7
d = 4
"""


def test_edit_leaves_a_single_managed_definition_in_place_of_the_effective_one():
    plan = plan_edit(DUPLICATED, {"rate": "3"})
    assert plan.text == "# top\na = 1\nb = 2\n# middle\nc = 3\nrate = 3\nd = 4\n"
    assert plan.changes == [Change("rate", "7", "3", 2)]
    assert plan.originals == {"rate": "rate = 7\n"}
    assert plan.earlier == {"rate": [(2, "rate = 5\n"), (5, "rate = 6\n")]}


def test_same_value_still_resolves_the_duplicate():
    plan = plan_edit(DUPLICATED, {"rate": "7"})
    assert plan.text.count("rate =") == 1 and not plan.empty


def test_restore_puts_every_line_back_in_place():
    plan = plan_edit(DUPLICATED, {"rate": "3", "a": "9", "e": "5"})
    again = plan_edit(plan.text, {"rate": "3", "a": "9", "e": "5"}, plan.originals, plan.earlier)
    assert again.empty and again.earlier == plan.earlier
    assert plan_restore(plan.text, plan.originals, plan.earlier).text == DUPLICATED


def test_names_recorded_at_different_times_come_back_in_place():
    text = "x = 1\nrate = 5\ny = 1\nx = 2\nrate = 7\nz = 1\nx = 3\n"
    first = plan_edit(text, {"rate": "3"})
    second = plan_edit(first.text, {"rate": "3", "x": "0"}, first.originals, first.earlier)
    assert second.text == "y = 1\nrate = 3\nz = 1\nx = 0\n"
    # Dropping one name gives back its lines while the other stays resolved.
    third = plan_edit(second.text, {"x": "0"}, second.originals, second.earlier)
    assert third.text == "rate = 5\ny = 1\nrate = 7\nz = 1\nx = 0\n"
    assert plan_restore(third.text, third.originals, third.earlier).text == text
    assert plan_restore(second.text, second.originals, second.earlier).text == text


def test_only_warnings_the_change_introduces_count():
    from secure_postfix.core.maincf import new_warnings

    live = ["postconf: warning: /etc/postfix/main.cf, line 58: overriding earlier entry: biff=no"]
    staged = [
        "/usr/sbin/postconf: warning: /etc/postfix/main.cf, line 57: overriding earlier entry: biff=no",
        "postconf: warning: /etc/postfix/main.cf: unused parameter: smtpd_bogus=1",
    ]
    assert new_warnings(staged, live) == [staged[1]]

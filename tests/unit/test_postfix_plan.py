from secure_postfix.core.postfix_plan import Change, live_values, plan_edit, plan_restore

ORIGINAL = """# comment stays
smtpd_tls_security_level=may
message_size_limit = 10240000
mynetworks = 127.0.0.0/8
    [::1]/128
"""


def test_plan_records_originals_and_changes_only_what_differs():
    plan = plan_edit(
        ORIGINAL, {"message_size_limit": "20480000", "smtpd_tls_security_level": "may", "queue_minfree": "0"}
    )
    assert plan.changes == [Change("message_size_limit", "10240000", "20480000"), Change("queue_minfree", None, "0")]
    assert plan.originals == {
        "message_size_limit": "message_size_limit = 10240000\n",
        "smtpd_tls_security_level": "smtpd_tls_security_level=may\n",
        "queue_minfree": None,
    }
    assert "# comment stays\nsmtpd_tls_security_level=may\nmessage_size_limit = 20480000\n" in plan.text
    assert plan.text.endswith("queue_minfree = 0\n")


def test_second_plan_is_empty():
    first = plan_edit(ORIGINAL, {"message_size_limit": "20480000"})
    again = plan_edit(first.text, {"message_size_limit": "20480000"}, first.originals)
    assert again.empty and again.text == first.text
    assert again.originals == first.originals


def test_restore_gives_back_exact_bytes():
    plan = plan_edit(ORIGINAL, {"message_size_limit": "1", "smtpd_tls_security_level": "encrypt", "mynetworks": "x"})
    plan2 = plan_edit(plan.text, {"queue_minfree": "0"}, plan.originals)
    # Directives dropped from the stack come back as they were, the new one is set.
    assert plan2.text == ORIGINAL + "queue_minfree = 0\n"
    restored = plan_restore(plan2.text, plan2.originals)
    assert restored.text == ORIGINAL


def test_restore_after_hand_edit_still_restores_original():
    plan = plan_edit(ORIGINAL, {"message_size_limit": "1"})
    edited = plan.text.replace("message_size_limit = 1\n", "message_size_limit = 999\n")
    assert plan_restore(edited, plan.originals).text == ORIGINAL


def test_originals_survive_drift():
    plan = plan_edit(ORIGINAL, {"message_size_limit": "1"})
    drifted = plan.text.replace("message_size_limit = 1\n", "message_size_limit = 999\n")
    again = plan_edit(drifted, {"message_size_limit": "1"}, plan.originals)
    assert again.changes == [Change("message_size_limit", "999", "1")]
    assert again.originals == plan.originals


def test_live_values():
    assert live_values(ORIGINAL, ["mynetworks", "relayhost"]) == {
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "relayhost": None,
    }

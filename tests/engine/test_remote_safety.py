"""The SSH shell's safety promises on a real sshd: nothing cut short is installed."""

from __future__ import annotations

import hashlib
import time

import pytest

from secure_postfix.remote.ssh import RemoteError, Session, SshTarget, atomic_write_argv
from tests.engine.harness import bed_target

pytestmark = pytest.mark.engine

HOST = "auth"
PATH = "/etc/postfix/sp-safety-test.cf"
OLD = b"old = kept\n"
NEW = b"".join(b"line %06d = some value to make the upload take several packets\n" % i for i in range(4000))


def target(testbed, **changes) -> SshTarget:
    return bed_target(testbed, HOST, **{"connect_timeout": 5.0, "command_timeout": 10.0, **changes})


def leftovers(testbed) -> list[str]:
    """Temporary files of the write, as the host sees them."""
    out = testbed.run(HOST, "ls -A /etc/postfix | grep -F .sp-safety-test.cf. || true").stdout
    return out.split()


@pytest.fixture
def old_file(testbed):
    testbed.run(HOST, f"printf 'old = kept\\n' > {PATH}")
    yield
    testbed.run(HOST, f"rm -f {PATH} /etc/postfix/.sp-safety-test.cf.*")


def test_short_upload_is_refused_and_old_file_kept(testbed, old_file):
    with Session(target(testbed)) as s:
        # The real write command, announcing the whole file, fed only its first part.
        argv = atomic_write_argv(PATH, len(NEW), hashlib.sha256(NEW).hexdigest())
        result = s.run(argv, stdin=NEW[:1000], check=False)
        assert result.rc != 0
        assert f"only 1000 of {len(NEW)} bytes arrived" in result.err
    assert testbed.read_file(HOST, PATH) == OLD
    assert leftovers(testbed) == []


def test_changed_bytes_are_refused(testbed, old_file):
    with Session(target(testbed)) as s:
        argv = atomic_write_argv(PATH, len(NEW), hashlib.sha256(NEW).hexdigest())
        assert s.run(argv, stdin=NEW.replace(b"value", b"VALUE"), check=False).rc != 0
    assert testbed.read_file(HOST, PATH) == OLD
    assert leftovers(testbed) == []


def test_controller_dying_mid_upload_leaves_old_file_and_no_temporary(testbed, old_file):
    s = Session(target(testbed)).__enter__()
    argv = atomic_write_argv(PATH, len(NEW), hashlib.sha256(NEW).hexdigest())
    chan = s.client.get_transport().open_session(timeout=5)
    chan.exec_command(s.command_line(argv))
    chan.sendall(NEW[: len(NEW) // 2])
    deadline = time.monotonic() + 5
    while not leftovers(testbed):  # the temporary file exists: the write is under way
        assert time.monotonic() < deadline, "the write never started"
        time.sleep(0.05)
    s.client.close()  # the connection drops without end of input, as when the controller dies
    deadline = time.monotonic() + 5
    while leftovers(testbed):
        assert time.monotonic() < deadline, f"temporary file left behind: {leftovers(testbed)}"
        time.sleep(0.05)
    assert testbed.read_file(HOST, PATH) == OLD


def test_whole_upload_is_installed(testbed, old_file):
    with Session(target(testbed)) as s:
        s.write_file_atomic(PATH, NEW)
    assert testbed.read_file(HOST, PATH) == NEW
    assert leftovers(testbed) == []


def test_cut_upload_error_names_host_and_file(testbed, old_file, monkeypatch):
    # The Session's own write, with the channel losing the end of the data on the way.
    with Session(target(testbed)) as s:
        real_run = s.run

        def lossy_run(argv, stdin=None, **kw):
            return real_run(argv, stdin=stdin[:-7] if stdin else stdin, **kw)

        monkeypatch.setattr(s, "run", lossy_run)
        with pytest.raises(RemoteError) as refused:
            s.write_file_atomic(PATH, NEW)
    message = str(refused.value)
    assert testbed.hosts[HOST].address in message and PATH in message and "cut short" in message
    assert testbed.read_file(HOST, PATH) == OLD


def test_pinned_ecdsa_key_is_asked_for_on_a_host_that_also_offers_ed25519(testbed):
    ecdsa = " ".join((testbed.hosts[HOST].root / "ssh/ssh_host_ecdsa_key.pub").read_text().split()[:2])
    assert ecdsa.startswith("ecdsa-sha2-nistp256 ")
    with Session(target(testbed, host_key=ecdsa)) as s:
        assert s.run(["true"]).rc == 0
        assert s.client.get_transport().get_remote_server_key().get_name() == "ecdsa-sha2-nistp256"
    # The preferred type still works, and either pin accepts only its own key.
    with Session(target(testbed)) as s:
        assert s.client.get_transport().get_remote_server_key().get_name() == "ssh-ed25519"

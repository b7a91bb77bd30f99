"""Per-host folders: private copies of everything the project writes.

Copies come from the root filesystem the host runs, as the packages left it:
the machine's own, or the tree of another Debian release (rootfs.py). The
caller must see the root filesystem itself, not a host's bind mounts.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from . import certs, rootfs
from .layout import CONTROLLER_ADDRESS, DOMAIN, HOST_SPECS, HostSpec
from .proc import mount_points, run

# (source on the root filesystem, folder inside the host dir); the same
# relative folders are bind-mounted by host-init.sh.
COPIED_DIRS = (
    ("/etc/postfix", "etc/postfix"),
    ("/etc/dovecot", "etc/dovecot"),
    ("/var/spool/postfix", "spool/postfix"),
    ("/var/lib/postfix", "lib/postfix"),
    ("/var/lib/dovecot", "lib/dovecot"),
    ("/var/mail", "mail"),
)


def sees_pristine_files() -> bool:
    """False inside a host, where the copied folders are mount points.

    (Comparing /proc/self/ns/mnt with /proc/1/ns/mnt would be more direct,
    but PID 1's namespace links are not readable on every machine.)
    """
    mounted = mount_points()
    return not any(source in mounted for source, _ in COPIED_DIRS)


def prepare_host(spec: HostSpec, host_dir: Path, client_public_key: str) -> str:
    """Build the host's folder; returns its public host key line.

    A host of another release needs its tree built first (rootfs.ensure_rootfs).
    """
    system = rootfs.root_of(spec.release)
    if host_dir.exists():
        shutil.rmtree(host_dir)
    (host_dir / "etc").mkdir(parents=True)
    (host_dir / "spool").mkdir()
    (host_dir / "lib").mkdir()
    for source, target in COPIED_DIRS:
        # cp -a keeps owners and modes (postfix/postdrop dirs, setgid bits)
        # that shutil.copytree would drop; a tree's numeric owners are its own users'.
        run(["cp", "-a", "--", str(system / source.lstrip("/")), str(host_dir / target)])
    _clear_pid_files(host_dir / "spool/postfix/pid")
    # The root's /var/log holds dpkg and apt history, not the host's business.
    (host_dir / "log").mkdir(mode=0o755)
    _write_name_files(host_dir)
    _make_root_home(host_dir, system)
    if spec.release is not None:
        _make_overlay_dirs(host_dir)
    _configure_postfix(spec, host_dir / "etc/postfix/main.cf")
    _configure_dovecot(spec, host_dir / "etc/dovecot", system)
    return _configure_sshd(spec, host_dir, client_public_key)


def _make_overlay_dirs(host_dir: Path) -> None:
    """Where host-init.sh lays the host's writable overlay over its release's tree and makes it the host's /.

    What the host writes outside the bind-mounted folders lands in `system/upper`, so the shared tree stays as
    built and goes with the host's folder.
    """
    for name in ("upper", "work", "root"):
        (host_dir / "system" / name).mkdir(parents=True, mode=0o755)


def _make_root_home(host_dir: Path, system: Path) -> None:
    """Root's home on the host (host-init.sh binds it over /root): Debian's fresh one, from /etc/skel.

    The machine's own /root may hold a shell setup (pyenv's rehash takes one lock for every shell) that every SSH
    command on every host would run, and a stale lock left by a killed login would stall them all for a minute.
    """
    home = host_dir / "home"
    home.mkdir(mode=0o700)
    for name in (".bashrc", ".profile"):
        skel = system / "etc/skel" / name
        if skel.is_file():
            shutil.copy(skel, home / name)


def _clear_pid_files(pid_dir: Path) -> None:
    for entry in pid_dir.glob("*"):
        entry.unlink()


def hosts_file() -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{CONTROLLER_ADDRESS}\tcontroller.{DOMAIN} controller",
    ]
    lines += [f"{spec.address}\t{spec.hostname} {spec.name}" for spec in HOST_SPECS]
    return "\n".join(lines) + "\n"


def _write_name_files(host_dir: Path) -> None:
    (host_dir / "etc/hosts").write_text(hosts_file())
    # DNS lookups hit the host's own loopback, where nothing listens, so they
    # fail at once instead of leaving the bed.
    (host_dir / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")
    for name in ("hosts", "resolv.conf"):
        (host_dir / "etc" / name).chmod(0o644)


def set_main_cf(text: str, key: str, value: str) -> str:
    """Set `key = value` in main.cf text, replacing every earlier definition.

    A parameter's value may continue on following lines that start with
    whitespace; those belong to the definition and go with it.
    """
    out: list[str] = []
    skipping = False
    placed = False
    pattern = re.compile(rf"^{re.escape(key)}\s*=")
    for line in text.splitlines():
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        if pattern.match(line):
            skipping = True
            if not placed:
                out.append(f"{key} = {value}")
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def _configure_postfix(spec: HostSpec, main_cf: Path) -> None:
    text = main_cf.read_text()
    text = set_main_cf(text, "myhostname", spec.hostname)
    text = set_main_cf(text, "mydestination", "$myhostname, localhost")
    # No syslog daemon here: Debian's master.cf has the postlog service.
    text = set_main_cf(text, "maillog_file", "/var/log/mail.log")
    main_cf.write_text(text)


def _edit_exact(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    pattern = re.compile(rf"^{re.escape(old)}$", re.MULTILINE)
    text, count = pattern.subn(new, text)
    if count != 1:
        raise RuntimeError(f"{path}: expected one line {old!r}, found {count}")
    path.write_text(text)


def _configure_dovecot(spec: HostSpec, etc: Path, system: Path) -> None:
    conf_d = etc / "conf.d"
    _edit_exact(conf_d / "10-logging.conf", "#log_path = syslog", "log_path = /var/log/dovecot.log")
    # Only passwd-file users exist: no PAM, no system accounts.
    _edit_exact(conf_d / "10-auth.conf", "!include auth-system.conf.ext", "#!include auth-system.conf.ext")
    _edit_exact(conf_d / "10-auth.conf", "#!include auth-passwdfile.conf.ext", "!include auth-passwdfile.conf.ext")
    if is_dovecot_24(etc):
        (conf_d / "auth-passwdfile.conf.ext").write_text(PASSWDFILE_24)
    users = etc / "users"
    users.write_text("")
    # The group as the host's own /etc/group numbers it, which a tree of another release may do differently.
    os.chown(users, 0, group_id("dovecot", system))
    users.chmod(0o640)
    _make_dovecot_cert(spec, etc / "private")


# Dovecot 2.4's package ships this file all commented out, in 2.4's syntax (named passdb/userdb blocks,
# passwd_file_path); 2.3's ships the same two databases active. The same file, the same scheme.
PASSWDFILE_24 = """\
# Authentication for passwd-file users. Included from 10-auth.conf.
passdb passwd-file {
  default_password_scheme = crypt
  passwd_file_path = /etc/dovecot/users
}

userdb passwd-file {
  passwd_file_path = /etc/dovecot/users
}
"""


def is_dovecot_24(etc: Path) -> bool:
    """Dovecot 2.4 refuses a dovecot.conf that does not start with dovecot_config_version; 2.3 knows no such setting."""
    text = (etc / "dovecot.conf").read_text()
    return re.search(r"^dovecot_config_version\s*=", text, re.MULTILINE) is not None


def group_id(name: str, system: Path) -> int:
    """The id of group `name` in the /etc/group of the root file system `system` (not the machine's, via grp)."""
    for line in (system / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    raise KeyError(f"no group {name!r} in {system / 'etc/group'}")


def _make_dovecot_cert(spec: HostSpec, private: Path) -> None:
    # The package only symlinks these to the shared snakeoil pair; each host
    # gets its own real files so one host's TLS changes stay its own.
    pem, key = private / "dovecot.pem", private / "dovecot.key"
    for path in (pem, key):
        if path.is_symlink() or path.exists():
            path.unlink()
    _self_signed(spec, pem, key, days=3650)
    pem.chmod(0o644)


def make_site_cert(spec: HostSpec, tls_dir: Path, authority: certs.Authority | None = None) -> None:
    """A certificate and key for the host's Postfix, kept on the controller side: NAME.crt and NAME.key.

    The local stack deploys these with PostfixConfig (tls.cert_file/key_file). They are signed by the bed's CA
    (`tls/ca.crt`, made by `make_authority`) and name the host as a client may reach it: its host name, its short
    name and its address, so that a client checking chain and name accepts them.
    """
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    authority = authority or certs.Authority.read(tls_dir)
    cert_pem, key_pem = certs.issue(authority, (spec.hostname, spec.name, spec.address))
    certs.write_pair(tls_dir, spec.name, cert_pem, key_pem)


def make_authority(tls_dir: Path) -> certs.Authority:
    """The bed's own CA, new with each bed (`tls/ca.crt`, its key `tls/ca.key`), which the tests trust."""
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    authority = certs.make_authority()
    authority.write(tls_dir)
    return authority


def _self_signed(spec: HostSpec, pem: Path, key: Path, days: int) -> None:
    run([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", str(days), "-subj", f"/CN={spec.hostname}",
        "-addext", f"subjectAltName=DNS:{spec.hostname},IP:{spec.address}",
        "-keyout", str(key), "-out", str(pem),
    ])  # fmt: skip
    key.chmod(0o600)


def sshd_config(spec: HostSpec, host_dir: Path) -> str:
    ssh = host_dir / "ssh"
    return f"""\
# sshd of test-bed host {spec.name}; root's home is shared by all hosts, so
# authorized keys come from this host's folder (copied to its private /run).
Port 22
ListenAddress {spec.address}
ListenAddress 127.0.0.1
HostKey {ssh}/ssh_host_ed25519_key
HostKey {ssh}/ssh_host_ecdsa_key
PidFile /run/sshd.pid
AuthorizedKeysFile /run/authorized_keys
# The checkout may live under a world-writable folder such as /tmp; the keys are the bed's own.
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
# Deployment tools open many channels and connections at once.
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp /usr/lib/openssh/sftp-server
""" + _release_sshd_lines(spec)


def _release_sshd_lines(spec: HostSpec) -> str:
    """Lines for the sshd of a host of another release; none for the machine's own."""
    if spec.release is None:
        return ""
    version = openssh_version(rootfs.package_versions(spec.release).get("openssh-server", ""))
    if version < (9, 8):
        return ""
    # OpenSSH 9.8 and later shut out for a while a source whose logins fail; the tests refuse logins on purpose
    # and then log in from the same controller address.
    return "PerSourcePenalties no\n"


def openssh_version(package_version: str) -> tuple[int, int]:
    """(10, 0) from Debian's "1:10.0p1-7+deb13u4"; (0, 0) when there is none."""
    match = re.match(r"^(?:\d+:)?(\d+)\.(\d+)", package_version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _configure_sshd(spec: HostSpec, host_dir: Path, client_public_key: str) -> str:
    ssh = host_dir / "ssh"
    ssh.mkdir(mode=0o755)
    key = ssh / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.hostname, "-f", str(key)])
    # A second key type, as real hosts offer, to prove a pin of a type other than the preferred one.
    run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", spec.hostname, "-f", str(ssh / "ssh_host_ecdsa_key")])
    authorized = ssh / "authorized_keys"
    authorized.write_text(client_public_key.strip() + "\n")
    authorized.chmod(0o600)
    (ssh / "sshd_config").write_text(sshd_config(spec, host_dir))
    key_type, key_body = key.with_suffix(".pub").read_text().split()[:2]
    return f"{key_type} {key_body}"


def make_client_key(path: Path) -> str:
    """Create the bed's client key pair (OpenSSH format); returns the public line."""
    for item in (path, path.with_suffix(".pub")):
        item.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "testbed-client", "-f", str(path)])
    path.chmod(0o600)
    return path.with_suffix(".pub").read_text().strip()

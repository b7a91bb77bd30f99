"""The renewal hook: how a certificate an ACME client renews on the host reaches Postfix (pure: the script's text).

Postfix never reads the ACME client's files. It serves the project's pair file (key and chain in one file,
postfix_features.TLS_PAIR_FILE), which `up` and this hook build from the files on the host, so one rename puts
a new certificate live with its key. The hook runs the steps of an apply: it takes the host's lock, checks
the new files (a certificate that is not expired, the key that matches it, `postfix check`), builds the new
pair beside the old one, renames it in place, reloads Postfix, and probes STARTTLS until the new certificate
is served; on any failure the previous pair goes back and Postfix keeps serving it.

It runs as certbot's deploy hook (RENEWED_LINEAGE), lego's --renew-hook/--deploy-hook (LEGO_CERT_PATH), from
a systemd .path unit, or by hand. A call for another certificate (certbot runs every deploy hook for every
renewal) does nothing.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from secure_postfix.core.problem import Problem

DEFAULT_HOOK = "/etc/postfix/tls/secure-postfix-renew"
HOST_LOCK = "/run/secure-postfix/host.lock"

# The pair as `up` and the hook both build it: the key, then the chain, each ending in one newline. The provider
# runs the same function to know the digest of the pair it would build.
ASSEMBLE = r"""
assemble() { # KEY CERT: the pair file's content on stdout
  sed -e '$a\' -- "$1" && sed -e '$a\' -- "$2"
}
"""

_SCRIPT = r"""#!/bin/sh
# secure-postfix renewal hook. Written by `pulumi up` (PostfixConfig, tls.host_cert_file); `destroy` removes it.
# Do not edit: the next `up` writes it again. Run it after the certificate below is renewed:
#   certbot: put it in /etc/letsencrypt/renewal-hooks/deploy/ (or --deploy-hook PATH)
#   lego:    lego renew --renew-hook PATH   (newer lego: --deploy-hook PATH)
#   systemd: a .path unit watching the certificate, whose service runs PATH
set -u
CERT=@CERT@
KEY=@KEY@
PAIR=@PAIR@
ADDRESS=@ADDRESS@
PORT=@PORT@
LOCK=@LOCK@
say() { echo "secure-postfix renewal hook ($(hostname)): $*" >&2; }
@ASSEMBLE@
# Another certificate renewed: not ours to deploy.
same() { [ "$(readlink -f -- "$1")" = "$(readlink -f -- "$2")" ]; }
if [ -n "${RENEWED_LINEAGE:-}" ] && ! same "$RENEWED_LINEAGE" "${CERT%/*}"; then exit 0; fi
if [ -n "${LEGO_CERT_PATH:-}" ] && ! same "$LEGO_CERT_PATH" "$CERT"; then exit 0; fi
[ "$(id -u)" = 0 ] || { say "it must run as root"; exit 2; }
# One change at a time on this host: an apply from a controller holds the same lock.
mkdir -p -m 0700 -- "${LOCK%/*}" || exit 2
exec 9>>"$LOCK"
flock -w 120 9 || { say "the host's lock is held ($(cat -- "$LOCK")); nothing was changed"; exit 75; }
printf 'the secure-postfix renewal hook, host pid %s\n' "$$" > "$LOCK"
refuse() { say "$* Postfix keeps serving the certificate it had; nothing was changed."; exit 1; }
[ -r "$CERT" ] || refuse "cannot read the certificate $CERT."
[ -r "$KEY" ] || refuse "cannot read the key $KEY."
openssl x509 -in "$CERT" -noout 2>/dev/null || refuse "$CERT is not a PEM certificate."
openssl x509 -in "$CERT" -noout -checkend 0 >/dev/null || refuse "the certificate in $CERT has expired."
want=$(openssl x509 -in "$CERT" -noout -pubkey 2>/dev/null)
have=$(openssl pkey -in "$KEY" -pubout 2>/dev/null) || refuse "$KEY is not an unencrypted PEM private key."
[ "$want" = "$have" ] || refuse "the key $KEY does not match the certificate $CERT (different public key)."
out=$(postfix check 2>&1) || refuse "postfix check fails: $out"
fingerprint=$(openssl x509 -in "$CERT" -noout -fingerprint -sha256 | sed 's/^[^=]*=//')
umask 077
new=$(mktemp -- "$PAIR.secure-postfix-new.XXXXXX") || exit 2
prev=$(mktemp -- "$PAIR.secure-postfix-hookprev.XXXXXX") || { rm -f -- "$new"; exit 2; }
trap 'rm -f -- "$new" "$prev"' EXIT
trap 'exit 129' HUP INT TERM PIPE
assemble "$KEY" "$CERT" > "$new" || refuse "cannot write $new."
if cmp -s -- "$new" "$PAIR"; then say "$CERT is already served"; exit 0; fi
cp -p -- "$PAIR" "$prev" || refuse "cannot keep a copy of $PAIR."
served() {
  timeout 10 openssl s_client -starttls smtp -connect "$ADDRESS:$PORT" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/^[^=]*=//'
}
mv -f -- "$new" "$PAIR" || refuse "cannot put the new pair in place."
if out=$(postfix reload 2>&1); then
  tries=0 seen=
  while [ "$tries" -lt 15 ]; do
    seen=$(served)
    [ "$seen" = "$fingerprint" ] && { say "serving $fingerprint from $CERT"; exit 0; }
    tries=$((tries + 1)); sleep 1
  done
  why="STARTTLS on $ADDRESS:$PORT presents ${seen:-no certificate}, not the new $fingerprint"
else
  why="postfix reload failed: $out"
fi
mv -f -- "$prev" "$PAIR"
postfix reload >/dev/null 2>&1
say "$why. The previous certificate was put back and Postfix reloaded."
exit 1
"""


@dataclass(frozen=True)
class HookSpec:
    cert_file: str
    key_file: str
    pair_file: str
    address: str
    port: int

    def render(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        values = {
            "@CERT@": self.cert_file,
            "@KEY@": self.key_file,
            "@PAIR@": self.pair_file,
            "@ADDRESS@": address,
            "@PORT@": str(self.port),
            "@LOCK@": HOST_LOCK,
        }
        text = _SCRIPT.replace("@ASSEMBLE@", ASSEMBLE.strip())
        for mark, value in values.items():
            text = text.replace(mark, shlex.quote(value))
        return text


def path_problems(field: str, value: object) -> list[Problem]:
    """A path on the host: absolute, one line, no `..`."""
    if not isinstance(value, str) or not value:
        return [Problem(field, "must be an absolute path on the host")]
    if not value.startswith("/") or any(c in value for c in "\n\r\0") or ".." in value.split("/"):
        return [Problem(field, f"must be an absolute path on the host without '..', got {value!r}")]
    if value.endswith("/") or posixpath.normpath(value) != value:
        return [Problem(field, f"must name a file, written plainly, got {value!r}")]
    return []

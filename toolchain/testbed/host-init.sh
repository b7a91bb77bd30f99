#!/bin/bash
# First process of a test-bed host: runs inside the host's fresh network, mount,
# UTS and PID namespaces, gives the host its private view of the files the
# project writes, then becomes the host's sshd.
#
# Usage: host-init.sh HOST_DIR FQDN
set -euo pipefail

host_dir=$1
fqdn=$2

hostname "$fqdn"
ip link set lo up

# Each bind mount hides the shared root-filesystem directory from this host
# only: the mount namespace is private, nothing propagates back.
bind() {
    mount --bind "$host_dir/$1" "$2"
}
bind etc/postfix /etc/postfix
bind etc/dovecot /etc/dovecot
bind etc/hosts /etc/hosts
bind etc/resolv.conf /etc/resolv.conf
bind spool/postfix /var/spool/postfix
bind lib/postfix /var/lib/postfix
bind lib/dovecot /var/lib/dovecot
bind log /var/log
bind mail /var/mail
# Every host has a root home of its own, as a real host does: the machine's /root may hold a shell
# setup (pyenv's rehash takes one lock for every shell) that would serialise the hosts' SSH commands.
bind home /root

# A fresh /run gives each host its own pid files and sockets (/run/dovecot,
# /run/sshd) and hides the root namespace's /run/netns.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -m 0755 /run/sshd /run/lock
# sshd reads a non-root user's authorized keys as that user, who may not be
# able to reach the checkout (under /root, say); this host-private copy it can.
install -m 0644 "$host_dir/ssh/authorized_keys" /run/authorized_keys

exec /usr/sbin/sshd -D -f "$host_dir/ssh/sshd_config" -E /var/log/sshd.log

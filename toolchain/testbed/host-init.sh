#!/bin/bash
# First process of a test-bed host: runs inside the host's fresh network, mount,
# UTS and PID namespaces, gives the host its private view of the files the
# project writes, then becomes the host's sshd.
#
# Usage: host-init.sh HOST_DIR FQDN [ROOTFS]
#
# Without ROOTFS the host runs the machine's own root filesystem and binaries.
# With ROOTFS (the tree of another Debian release, toolchain/testbed/rootfs.py)
# the host's / is a writable overlay of its own over that tree, and the host
# runs that release's sshd, Postfix and Dovecot; the tree itself is never written.
set -euo pipefail

host_dir=$1
fqdn=$2
rootfs=${3:-}
# Where the host's / is being assembled; empty while it is the machine's own.
new=

hostname "$fqdn"
ip link set lo up

if [ -n "$rootfs" ]; then
    new=$host_dir/system/root
    # Everything mounted here lives in this host's private mount namespace
    # and goes when its last process does.
    mount -t overlay overlay \
        -o "lowerdir=$rootfs,upperdir=$host_dir/system/upper,workdir=$host_dir/system/work" "$new"
    mount -t proc -o nosuid,nodev,noexec proc "$new/proc"
    # A sysfs mounted in the host's network namespace shows its own interfaces.
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$new/sys"
    mount --rbind /dev "$new/dev"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$new/tmp"
    # sshd_config names the host keys by their place in the host's folder;
    # that folder (its ssh part only) appears at the same path inside.
    mkdir -p "$new$host_dir/ssh"
    mount --bind "$host_dir/ssh" "$new$host_dir/ssh"
fi

# Each bind mount hides the root filesystem's directory from this host
# only: the mount namespace is private, nothing propagates back.
bind() {
    # A release's tree may lack a mount point (no /etc/resolv.conf, say);
    # made in the host's overlay, never in the tree or the machine's root.
    if [ -n "$new" ] && [ ! -e "$new$2" ]; then
        if [ -d "$host_dir/$1" ]; then mkdir -p "$new$2"; else touch "$new$2"; fi
    fi
    mount --bind "$host_dir/$1" "$new$2"
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
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$new/run"
mkdir -m 0755 "$new/run/sshd" "$new/run/lock"
# sshd reads a non-root user's authorized keys as that user, who may not be
# able to reach the checkout (under /root, say); this host-private copy it can.
install -m 0644 "$host_dir/ssh/authorized_keys" "$new/run/authorized_keys"

if [ -n "$new" ]; then
    # The overlay becomes the host's /: the machine's root goes out of its
    # view, and `nsenter -r` from the controller lands in the release's tree.
    cd "$new"
    pivot_root . .
    umount -l .
fi
# The working directory every command entered with `nsenter -w` starts in.
cd /

exec /usr/sbin/sshd -D -f "$host_dir/ssh/sshd_config" -E /var/log/sshd.log

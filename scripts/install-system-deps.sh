#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks need, only where missing.
# Idempotent and quiet when everything is there; used by `make test` and `make bench`.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
have /usr/sbin/sshd || need+=(openssh-server)
have ssh || need+=(openssh-client)
have rsync || need+=(rsync)
have memcached || need+=(memcached)
have /usr/lib/postgresql/15/bin/initdb || need+=(postgresql-15)
have systemd-analyze || need+=(systemd)
have /usr/sbin/visudo || need+=(sudo)   # the Ansible test validates the sudoers drop-in
have promtool || need+=(prometheus)    # promtool check rules: the shipped alert rules
have bindfs || need+=(bindfs)          # a FUSE source: writes by "another client" raise no event
have rclone || need+=(rclone)          # the bench smoke test runs the S3 peer's arm
have mkfs.btrfs || need+=(btrfs-progs) # a btrfs snapshot made in a source (the fanotify watcher)
for extra in "$@"; do
  case "$extra" in
    bench) have lsyncd || need+=(lsyncd) ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

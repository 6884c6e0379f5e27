#!/usr/bin/env bash
# Install Cyrus IMAP 3.6 and Courier-IMAP 5.0 for mailshift's "other servers" tests
# (tests/other_servers.rs, tests/harness/src/{cyrus,courier}.rs), next to Dovecot.
#
# Debian's `cyrus-imapd` and `courier-imap` packages conflict with `dovecot-imapd`
# (all three "Provide: imap-server"), so installing either one would remove Dovecot's
# IMAP server. What works instead:
#   * the parts that do not conflict are installed with apt (cyrus-common has the
#     Cyrus master, tools and libraries; courier-base and courier-authlib* have
#     Courier's libraries, authdaemond and userdb tools);
#   * the two conflicting packages are fetched with `apt-get download` and unpacked with
#     `dpkg-deb -x` into a cache directory, never registered with dpkg:
#       $MAILSHIFT_TEST_SERVERS (default /var/cache/mailshift-test-servers)/cyrus-imapd/
#       $MAILSHIFT_TEST_SERVERS/courier-imap/
#     The harness finds the binaries there (usr/lib/cyrus/bin/imapd,
#     usr/sbin/imapd / usr/lib/courier/courier/imapd...).
#
# Idempotent: dpkg-query first, apt-get only when something is missing, the unpacked
# packages are kept (a stamp file names the version). System-wide daemons that package
# scripts started (cyrmaster, authdaemond, courierlogger...) are stopped and their init
# scripts disabled: the harness runs private instances on loopback only.
set -euo pipefail

CACHE=${MAILSHIFT_TEST_SERVERS:-/var/cache/mailshift-test-servers}

# Non-conflicting packages, and the libraries the unpacked imapd binaries link against
# (their Depends: minus the conflicting package's own relatives).
PACKAGES=(
    cyrus-common cyrus-admin sasl2-bin libsasl2-modules
    libwrap0 libcom-err2 zlib1g libssl3
    courier-base courier-authlib courier-authdaemon courier-authlib-userdb
    libcourier-unicode4 libgamin0 gamin libgdbm6 libidn12
)
# Unpacked, never installed (they conflict with dovecot-imapd).
UNPACKED=(cyrus-imapd courier-imap)

log() { printf 'install-imap-servers: %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        log "must run as root (sudo not available)" >&2
        exit 1
    fi
fi

dovecot_imapd_before=$(dpkg-query -W -f='${db:Status-Abbrev}' dovecot-imapd 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [ "${status:0:2}" != "ii" ]; then
        missing+=("$pkg")
    fi
done

updated=no
apt_update() {
    if [ "$updated" = no ]; then
        log "running apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        updated=yes
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    log "all packages already installed: ${PACKAGES[*]}"
else
    log "missing packages: ${missing[*]}"
    apt_update
    # Keep the package scripts from starting daemons (no systemd here; invoke-rc.d
    # honours policy-rc.d). Removed again right after.
    policy=/usr/sbin/policy-rc.d
    own_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        own_policy=yes
    fi
    # --no-remove: fail rather than remove anything (dovecot-imapd above all).
    log "running apt-get install -y --no-install-recommends --no-remove ${missing[*]}"
    status=0
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends --no-remove "${missing[@]}" || status=$?
    if [ "$own_policy" = yes ]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
    if [ "$status" -ne 0 ]; then
        log "apt-get install failed ($status)" >&2
        exit "$status"
    fi
fi

# The conflicting packages: download the candidate version and unpack it once.
for pkg in "${UNPACKED[@]}"; do
    version=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        apt_update
        version=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
    fi
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        log "no candidate version of $pkg in the apt sources" >&2
        exit 1
    fi
    dest="$CACHE/$pkg"
    if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
        log "$pkg $version already unpacked in $dest"
        continue
    fi
    log "downloading and unpacking $pkg $version into $dest"
    "${SUDO[@]}" mkdir -p "$CACHE"
    work=$(mktemp -d)
    # apt downloads as its sandbox user when that user may write here.
    if id _apt >/dev/null 2>&1; then chown _apt "$work" 2>/dev/null || true; fi
    if ! (cd "$work" && apt-get download "$pkg=$version"); then
        apt_update
        (cd "$work" && apt-get download "$pkg=$version")
    fi
    "${SUDO[@]}" rm -rf "$dest.new"
    "${SUDO[@]}" mkdir -p "$dest.new"
    "${SUDO[@]}" dpkg-deb -x "$work"/*.deb "$dest.new"
    echo "$version" | "${SUDO[@]}" tee "$dest.new/.version" >/dev/null
    "${SUDO[@]}" rm -rf "$dest"
    "${SUDO[@]}" mv "$dest.new" "$dest"
    rm -rf "$work"
done

# Stop system-wide daemons that the package scripts may have started, by their own
# pid files (never by a broad process-name kill that could hit the harness's instances).
stop_pidfile() {
    local what=$1 pidfile=$2 pid
    if [ -f "$pidfile" ]; then
        pid=$(tr -dc '0-9' <"$pidfile")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            log "stopping system-wide $what (pid $pid)"
            "${SUDO[@]}" kill "$pid" || true
        fi
    fi
}
stop_pidfile "Cyrus master" /run/cyrus-master.pid
stop_pidfile "Cyrus master" /var/run/cyrus-master.pid
for pidfile in /run/courier/authdaemon/pid /run/courier/authdaemon/pid.lock \
    /run/courier/imapd.pid /run/courier/imapd-ssl.pid \
    /run/courier/pop3d.pid /run/courier/pop3d-ssl.pid; do
    stop_pidfile "Courier ($(basename "$pidfile"))" "$pidfile"
done
for svc in cyrus-imapd courier-authdaemon courier-imap; do
    if [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null 2>&1; then
        "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
done

dovecot_imapd_after=$(dpkg-query -W -f='${db:Status-Abbrev}' dovecot-imapd 2>/dev/null || true)
if [ "${dovecot_imapd_before:0:2}" = "ii" ] && [ "${dovecot_imapd_after:0:2}" != "ii" ]; then
    log "dovecot-imapd was removed; reinstall it with scripts/install-deps.sh" >&2
    exit 1
fi

log "versions: cyrus-imapd $(cat "$CACHE/cyrus-imapd/.version"),"\
" courier-imap $(cat "$CACHE/courier-imap/.version") (unpacked in $CACHE)"
log "done"

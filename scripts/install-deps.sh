#!/usr/bin/env bash
# Install the Debian packages mailshift's real-server test suite needs.
#
# Idempotent: packages are checked with dpkg-query and apt-get only runs when
# something is missing. Postfix is installed non-interactively with
# "No configuration" so it does not ask questions nor write /etc/postfix/main.cf.
# System-wide dovecot/postfix/named/pdns/knot daemons started by package scripts are
# stopped afterwards: the test harness runs private instances on random
# loopback ports and must not share ports, pid files or sockets with them.
set -euo pipefail

PACKAGES=(
    dovecot-core dovecot-imapd dovecot-lmtpd dovecot-managesieved dovecot-sieve
    dovecot-pop3d   # the harness's POP3 server: a real source for source.pop3 (tests/pop3_source.rs)
    postfix
    bind9 bind9-dnsutils
    isync
    openssl ca-certificates procps
    time            # GNU time: peak RSS of each tool in scripts/bench.sh
    openssh-server openssh-client  # a real sshd for the Postfix adapter's ssh runner
    chromium        # tests/report.rs renders the HTML report headless, to PNG
    lua5.1          # the Argo CD health check (deploy/argocd/health.lua) under Lua 5.1, as gopher-lua runs it
    pdns-server pdns-backend-sqlite3 sqlite3  # PowerDNS 4.7 + SQLite backend: the harness's PowerDns (HTTP API provider tests)
    postgresql dovecot-pgsql  # PostgreSQL (the harness's Postgres, a private pg_ctl cluster) and Dovecot's SQL passdb: tests/accounts.rs
    mariadb-server mariadb-client dovecot-mysql  # MariaDB (the harness's MariaDb, a private mariadbd) and Dovecot's MySQL passdb: tests/accounts.rs
    knot knot-dnsutils  # Knot DNS 3.2: the harness's Knot, a second RFC 2136 server beside BIND (tests/dns_knot.rs); kdig/knsupdate
    pkg-config libssl-dev  # dns-update's HTTP client (reqwest with native-tls) builds against OpenSSL
    libpff1         # libyal's PST/OST reader, which mailshift loads for source.pst (tests/pst_source.rs)
    tinyproxy       # an egress HTTP proxy (CONNECT) for HTTPS_PROXY: the harness's Tinyproxy (tests/dav.rs)
)
# npm fetches the PST test files (below); a machine whose Node.js came from elsewhere has its
# own npm, and Debian's would conflict with it.
command -v npm >/dev/null || PACKAGES+=(npm)

# Python packages (the harness's Moto, a Route 53 emulation driven by boto3, and
# the CardDAV/CalDAV servers Radicale and Xandikos), installed with the python3
# found on PATH (pyenv's on the test machines), and the modules that prove each
# is there.
PIP_PACKAGES=('moto[server]' radicale xandikos)
PIP_MODULES=(moto boto3 flask flask_cors radicale xandikos)

log() { printf 'install-deps: %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        log "must run as root (sudo not available)" >&2
        exit 1
    fi
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [ "${status:0:2}" != "ii" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    log "all packages already installed: ${PACKAGES[*]}"
else
    log "missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    log "preseeding debconf: postfix/main_mailer_type = No configuration"
    echo "postfix postfix/main_mailer_type select No configuration" \
        | "${SUDO[@]}" debconf-set-selections
    log "running apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    log "running apt-get install -y --no-install-recommends ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends "${missing[@]}"
fi

# Stop system-wide daemons that package scripts may have started (there is no
# systemd here, so we do it by their own pid files / control commands, never by
# a broad process-name kill that could hit the harness's private instances).
stop_system_daemons() {
    if [ -f /run/dovecot/master.pid ] && kill -0 "$(cat /run/dovecot/master.pid)" 2>/dev/null; then
        log "stopping system-wide dovecot (pid $(cat /run/dovecot/master.pid))"
        "${SUDO[@]}" doveadm stop || true
    fi
    if [ -f /var/spool/postfix/pid/master.pid ] \
        && kill -0 "$(tr -d ' ' </var/spool/postfix/pid/master.pid)" 2>/dev/null; then
        log "stopping system-wide postfix"
        "${SUDO[@]}" postfix stop || true
    fi
    if [ -f /run/tinyproxy/tinyproxy.pid ] && kill -0 "$(cat /run/tinyproxy/tinyproxy.pid)" 2>/dev/null; then
        log "stopping system-wide tinyproxy"
        "${SUDO[@]}" kill "$(cat /run/tinyproxy/tinyproxy.pid)" || true
    fi
    for pidfile in /run/named/named.pid /var/run/named/named.pid; do
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "stopping system-wide named (pid $(cat "$pidfile"))"
            "${SUDO[@]}" rndc stop 2>/dev/null || "${SUDO[@]}" kill "$(cat "$pidfile")" || true
        fi
    done
    # Debian's pdns-server enables a pdns.service on port 53. Under systemd, stop and
    # disable it; elsewhere (containers) it is normally not started, but stop one
    # that runs by its pid file in /run/pdns.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        if systemctl is-active --quiet pdns 2>/dev/null || systemctl is-enabled --quiet pdns 2>/dev/null; then
            log "stopping and disabling system-wide pdns (systemd)"
            "${SUDO[@]}" systemctl disable --now pdns >/dev/null 2>&1 || true
        fi
    elif [ -x /etc/init.d/pdns ]; then
        "${SUDO[@]}" service pdns stop >/dev/null 2>&1 || true
    fi
    for pidfile in /run/pdns/pdns.pid /var/run/pdns/pdns.pid; do
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "stopping system-wide pdns_server (pid $(cat "$pidfile"))"
            "${SUDO[@]}" pdns_control --socket-dir="$(dirname "$pidfile")" quit 2>/dev/null \
                || "${SUDO[@]}" kill "$(cat "$pidfile")" || true
        fi
    done
    # Debian's knot enables a knot.service (port 53, /etc/knot/knot.conf): the same for it,
    # and stop a knotd running by its pid file in /run/knot through its control socket.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        if systemctl is-active --quiet knot 2>/dev/null || systemctl is-enabled --quiet knot 2>/dev/null; then
            log "stopping and disabling system-wide knot (systemd)"
            "${SUDO[@]}" systemctl disable --now knot >/dev/null 2>&1 || true
        fi
    elif [ -x /etc/init.d/knot ]; then
        "${SUDO[@]}" service knot stop >/dev/null 2>&1 || true
    fi
    for pidfile in /run/knot/knot.pid /var/run/knot/knot.pid; do
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "stopping system-wide knotd (pid $(cat "$pidfile"))"
            "${SUDO[@]}" knotc -s "$(dirname "$pidfile")/knot.sock" stop 2>/dev/null \
                || "${SUDO[@]}" kill "$(cat "$pidfile")" || true
        fi
    done
}
stop_system_daemons

# Keep them from being started again by a later package upgrade (sysvinit
# scripts honour update-rc.d disable; harmless if absent).
for svc in dovecot postfix named pdns knot; do
    if [ -x "/etc/init.d/$svc" ] && command -v update-rc.d >/dev/null 2>&1; then
        "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
done

# Python packages: checked by importing their modules, installed only if one is
# missing. Not with sudo: pyenv's python3 belongs to the invoking user.
if command -v python3 >/dev/null 2>&1; then
    if python3 -c "import $(IFS=,; echo "${PIP_MODULES[*]}")" 2>/dev/null; then
        log "python packages already installed: ${PIP_PACKAGES[*]} ($(python3 -c 'import moto, radicale, xandikos; print("moto", moto.__version__, "radicale", radicale.VERSION, "xandikos", ".".join(map(str, xandikos.__version__)))'))"
    else
        log "running python3 -m pip install ${PIP_PACKAGES[*]}"
        python3 -m pip install --quiet "${PIP_PACKAGES[@]}" \
            || python3 -m pip install --quiet --user --break-system-packages "${PIP_PACKAGES[@]}"
    fi
else
    log "python3 not found; skipping ${PIP_PACKAGES[*]} (the harness's Moto, Radicale and Xandikos will not start)" >&2
fi

if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup component list --installed 2>/dev/null || true)
    for comp in rustfmt clippy; do
        if ! grep -q "^$comp" <<<"$installed"; then
            log "rustup component add $comp"
            rustup component add "$comp"
        else
            log "rust component $comp already installed"
        fi
    done
else
    log "rustup not found; skipping rustfmt/clippy"
fi

# PST test files: the npm package pst-extractor ships an Enron PST, two Outlook.com OSTs,
# the files attached to their messages and its own listing of their folders and messages
# (example/testdata/). Unpacked into the test-server cache, never fetched by a test.
PST_EXTRACTOR=pst-extractor@1.12.0
PST_CACHE=${MAILSHIFT_TEST_SERVERS:-/var/cache/mailshift-test-servers}/pst-extractor
if [ "$(cat "$PST_CACHE/.version" 2>/dev/null || true)" = "$PST_EXTRACTOR" ]; then
    log "PST test files already unpacked: $PST_EXTRACTOR in $PST_CACHE"
else
    log "unpacking the PST test files of $PST_EXTRACTOR into $PST_CACHE"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$PST_EXTRACTOR" >/dev/null)
    "${SUDO[@]}" rm -rf "$PST_CACHE"
    "${SUDO[@]}" mkdir -p "$PST_CACHE"
    "${SUDO[@]}" tar -xzf "$tmp"/pst-extractor-*.tgz -C "$PST_CACHE" package/example/testdata
    echo "$PST_EXTRACTOR" | "${SUDO[@]}" tee "$PST_CACHE/.version" >/dev/null
    rm -rf "$tmp"
fi

log "versions: dovecot $(dovecot --version 2>/dev/null || echo '?'),"\
" postfix $(postconf -d -h mail_version 2>/dev/null || echo '?'),"\
" named $(named -v 2>/dev/null || echo '?'),"\
" pdns $(dpkg-query -W -f='${Version}' pdns-server 2>/dev/null || echo '?'),"\
" knot $(knotd -V 2>/dev/null | sed 's/.*version //' || echo '?')"
log "done"
bash "$(dirname "${BASH_SOURCE[0]}")/install-imap-servers.sh"  # Cyrus and Courier for tests/other_servers.rs

#!/usr/bin/env bash
# The command-line tools the test suite runs besides Python: `promtool` (Debian package `prometheus`), which
# tests/ops uses to check the alert rules and run their rule tests, and Debian's `chromium` (+ fonts-liberation),
# the headless browser tests/api/test_reference.py opens the /docs page in (driven by Playwright from the venv;
# Playwright's own browser download is not used), and `php` with its curl extension (Debian `php-cli`, `php-curl`)
# and `node` 20+ (Debian `nodejs`), which tests/clients uses to run clients/php and clients/js against the api.
# `make test` calls this; it is quiet when the tools are there. When promtool is missing it installs `prometheus` with apt-get (root only) WITHOUT starting or
# enabling the Prometheus server the package ships (only its promtool binary is used); otherwise it stops and
# says what to install.
#
# kubectl is optional: tests/ops runs `kubectl kustomize deploy/k8s` when it is on PATH and skips that one
# check otherwise. It is not installed here: Debian's `kubernetes-client` (1.20) is too old for the
# kustomization's `labels` field, and newer builds are not in the distribution.
#
# Knobs (as in ensure-services.sh): PANELFLOW_SETUP_NO_INSTALL=1 (never apt-get), PANELFLOW_SETUP_DRY_RUN=1
# (say what would be done, change nothing).
set -euo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=${PANELFLOW_SETUP_DRY_RUN:-0}
NO_INSTALL=${PANELFLOW_SETUP_NO_INSTALL:-0}
POLICY=/usr/sbin/policy-rc.d

say() { echo "ensure-test-tools: $*" >&2; }
die() {
    echo "ensure-test-tools: ERROR: $*" >&2
    exit 1
}
run() {
    if [[ $DRY_RUN == 1 ]]; then
        say "would run: $*"
    else
        "$@"
    fi
}
apt_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# Package maintainer scripts start services through invoke-rc.d / deb-systemd-invoke, which ask policy-rc.d
# first: 101 means "do not start". Ours is put in place for the install only, and any existing one restored.
deny_service_starts() {
    [[ -z ${SERVICE_STARTS_DENIED:-} ]] || return 0 # once: a second call would save our own policy as the original
    SERVICE_STARTS_DENIED=1
    if [[ -e $POLICY ]]; then
        cp -p "$POLICY" "$POLICY.panelflow-saved"
    fi
    printf '#!/bin/sh\n# ensure-test-tools.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    trap restore_policy EXIT
}
restore_policy() {
    if [[ -e $POLICY.panelflow-saved ]]; then
        mv -f "$POLICY.panelflow-saved" "$POLICY"
    else
        rm -f "$POLICY"
    fi
}

install_prometheus() {
    local why=()
    [[ $(id -u) == 0 ]] || why+=("not root")
    command -v apt-get >/dev/null || why+=("no apt-get")
    [[ $NO_INSTALL == 1 ]] && why+=("PANELFLOW_SETUP_NO_INSTALL=1")
    if ((${#why[@]})); then
        die "promtool is missing (tests/ops checks the alert rules with it) and cannot be installed here" \
            "(${why[*]}): sudo apt-get install -y --no-install-recommends prometheus" \
            "(only its promtool is used; stop the prometheus service it starts if you do not want it)"
    fi
    if [[ -z $(apt_candidate prometheus) || $(apt_candidate prometheus) == "(none)" ]]; then
        say "apt-cache knows no prometheus package: apt-get update"
        run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    local candidate
    candidate=$(apt_candidate prometheus)
    if [[ $DRY_RUN != 1 && (-z $candidate || $candidate == "(none)") ]]; then
        die "no prometheus package in the configured apt sources; install promtool (Prometheus 2.x) on PATH"
    fi
    say "installing prometheus ${candidate:-} with apt-get, for promtool (its server is neither started nor enabled)"
    [[ $DRY_RUN == 1 ]] || deny_service_starts
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    if [[ $DRY_RUN == 1 ]]; then
        say "would disable the prometheus service the package enables"
        return 0
    fi
    # The package enables its service for the next boot; the tests need only the binary.
    if command -v systemctl >/dev/null; then
        systemctl disable --quiet prometheus.service >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null && [[ -e /etc/init.d/prometheus ]]; then
        update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    command -v promtool >/dev/null || die "prometheus was installed but promtool is not on PATH"
    promtool --version >/dev/null 2>&1 || die "promtool does not run: $(promtool --version 2>&1 | head -n 1)"
}

install_chromium() {
    local why=()
    [[ $(id -u) == 0 ]] || why+=("not root")
    command -v apt-get >/dev/null || why+=("no apt-get")
    [[ $NO_INSTALL == 1 ]] && why+=("PANELFLOW_SETUP_NO_INSTALL=1")
    if ((${#why[@]})); then
        die "chromium is missing (tests/api/test_reference.py opens /docs in it) and cannot be installed here" \
            "(${why[*]}): sudo apt-get install -y --no-install-recommends chromium fonts-liberation"
    fi
    if [[ -z $(apt_candidate chromium) || $(apt_candidate chromium) == "(none)" ]]; then
        say "apt-cache knows no chromium package: apt-get update"
        run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    say "installing chromium with apt-get, for the /docs browser test"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation
    [[ $DRY_RUN == 1 ]] || [[ -x /usr/bin/chromium ]] || die "chromium was installed but /usr/bin/chromium is missing"
}

# Debian packages for the client tests and the backup test, installed together when any is missing (root + apt
# only).
install_packages() {
    local why=()
    [[ $(id -u) == 0 ]] || why+=("not root")
    command -v apt-get >/dev/null || why+=("no apt-get")
    [[ $NO_INSTALL == 1 ]] && why+=("PANELFLOW_SETUP_NO_INSTALL=1")
    if ((${#why[@]})); then
        die "missing for the tests (tests/clients, tests/ops backups): $* (cannot install here: ${why[*]}): sudo apt-get install -y $*"
    fi
    if [[ -z $(apt_candidate "$1") || $(apt_candidate "$1") == "(none)" ]]; then
        run env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    say "installing $* with apt-get (for tests/clients and the backup test)"
    [[ $DRY_RUN == 1 ]] || deny_service_starts
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

node_major() { node -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

command -v promtool >/dev/null || install_prometheus
missing=()
if ! command -v php >/dev/null; then
    missing+=(php-cli php-curl)
elif ! php -r 'exit(function_exists("curl_init") ? 0 : 1);' 2>/dev/null; then
    missing+=(php-curl)
fi
command -v node >/dev/null || missing+=(nodejs)
# pg_dump and pg_restore: tests/ops/test_backup_restore.py runs the documented backup procedure.
{ command -v pg_dump >/dev/null && command -v pg_restore >/dev/null; } || missing+=(postgresql-client)
((${#missing[@]} == 0)) || install_packages "${missing[@]}"
if [[ $DRY_RUN != 1 ]]; then
    php -r 'exit(function_exists("curl_init") ? 0 : 1);' || die "php has no curl extension: install php-curl"
    (($(node_major) >= 20)) || die "node $(node --version 2>/dev/null || echo missing) is too old for clients/js: install Node 20+"
fi
[[ -x /usr/bin/chromium ]] || install_chromium
command -v kubectl >/dev/null ||
    say "note: no kubectl: tests/ops skips its \`kubectl kustomize deploy/k8s\` check (the manifests are still checked)"
exit 0

#!/usr/bin/env bash
# The one test command (README and .ci/run call exactly this), from a clean Debian machine:
#   1. installs the Debian packages the test bed needs, only if one is missing;
#   2. creates .venv and installs the project with its `test` extra (again when
#      pyproject.toml changed);
#   3. runs ruff, mypy and pytest (extra arguments go to pytest, e.g. `tests/integration -x`).
# The integration tests start their own dockerd and registries (tests/testbed.py), so this
# must run as root. It exits non-zero if any step fails; all three checks always run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# docker.io: dockerd (+ containerd, runc); docker-registry: Distribution 2.8.2;
# busybox-static: the one binary in the FROM-scratch test images; skopeo: a peer for
# registry tests; apache2-utils: htpasswd (bcrypt); openssl: the bed's CA; rsync: needed by
# gitlab-ci-local; buildah: the daemonless builder (tests run it as CI containers do:
# STORAGE_DRIVER=vfs, BUILDAH_ISOLATION=chroot).
DEB_PACKAGES=(docker.io docker-registry busybox-static skopeo apache2-utils openssl rsync git buildah tini)
# Debian's own python3 needs python3-venv for `python3 -m venv` (ensurepip).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then DEB_PACKAGES+=(python3-venv); fi

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "test.sh: installing Debian packages: ${missing[*]}" >&2
    # Keep the packages' maintainer scripts from starting a system dockerd/registry (one
    # on :5000 would be left running): policy-rc.d exit 101 means "do not start services".
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    apt_rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                "${missing[@]}"
    } || apt_rc=$?
    if ((made_policy)); then rm -f "$policy"; fi
    if ((apt_rc)); then
        echo "test.sh: apt-get failed (exit $apt_rc) installing: ${missing[*]}" >&2
        exit "$apt_rc"
    fi
fi

# Debian 13's Docker Engine 26 (containerd image store), buildx, cosign and oras, unpacked
# into .tools/debian13/ for the test bed's second engine (cached; nothing system-wide).
bash scripts/debian13-tools.sh

# The venv is reused between runs; the install is redone only when pyproject.toml changes
# (an editable install needs network for its build backend, ~10 s each time).
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp=.venv/.imgtag-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

# gitlab-ci-local runs the GitLab template end to end (tests/integration/test_ci_gitlab.py).
# 4.52.x is the newest that runs on Debian's Node 20; it lives in .tools, not globally.
GLCI_VERSION=4.52.2
if [[ "$(.tools/node_modules/.bin/gitlab-ci-local --version 2>/dev/null)" != "$GLCI_VERSION" ]]; then
    if ! command -v npm >/dev/null; then
        echo "test.sh: installing Debian packages: nodejs npm" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
    fi
    mkdir -p .tools
    npm install --silent --no-audit --no-fund --prefix .tools "gitlab-ci-local@$GLCI_VERSION" >&2
fi
export PATH="$PATH:$PWD/.tools/node_modules/.bin"

failed=()
echo "== ruff check tagger tests benchmarks" >&2
ruff check tagger tests benchmarks || failed+=(ruff)
echo "== mypy" >&2
mypy || failed+=(mypy)
echo "== pytest $*" >&2
pytest_rc=0
# A hung engine or registry must not hold CI for its full 90 minutes; pass your own
# --timeout to change this (the last one given wins).
pytest --timeout=600 "$@" || pytest_rc=$?
if ((pytest_rc == 5)); then
    echo "test.sh: pytest collected no tests: that is a failure here." >&2
fi
if ((pytest_rc)); then failed+=("pytest (exit $pytest_rc)"); fi

if ((${#failed[@]})); then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    if ((pytest_rc)); then exit "$pytest_rc"; fi
    exit 1
fi
echo "test.sh: ruff, mypy and pytest passed" >&2

#!/usr/bin/env bash
# The whole imgtag flow on the example app in examples/hello, against a local engine and
# registry: imgtag next, imgtag build-push, the same push refused, --on-exists skip, and a
# prune plan.
#
#   bash scripts/demo.sh            # starts the test bed (dockerd + registries), then stops it
#   DOCKER_HOST=... IMGTAG_DEMO_REGISTRY=127.0.0.1:5000 bash scripts/demo.sh   # use running ones
#
# Needs what scripts/test.sh installs (run it once first on a fresh machine: it installs the
# Debian packages and .venv). Run as root when the bed is started here (it starts dockerd).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$PWD
if [[ ! -x .venv/bin/imgtag ]]; then
    echo "demo: .venv is missing: run 'bash scripts/test.sh' once (it installs everything)" >&2
    exit 2
fi
export PATH="$repo_root/.venv/bin:$PATH"

started_bed=0
if [[ -z "${IMGTAG_DEMO_REGISTRY:-}" ]]; then
    exports=$(python tests/testbed.py up) || exit 1
    eval "$exports"
    started_bed=1
    IMGTAG_DEMO_REGISTRY=$IMGTAG_TESTBED_PLAIN
fi
work=$(mktemp -d)
cleanup() {
    rm -rf "$work"
    if ((started_bed)); then python "$repo_root/tests/testbed.py" down >/dev/null; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# A fresh git checkout of the example app, tagged v1.0.0 and one commit past it.
cp -r examples/hello "$work/hello"
cp /bin/busybox "$work/hello/busybox"
cd "$work/hello"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
git init -q -b main && git add -A && git commit -qm "feat: hello" && git tag v1.0.0
echo "Hello again." >greeting.txt && git commit -qam "fix: a friendlier greeting"

image="$IMGTAG_DEMO_REGISTRY/demo/hello"
step imgtag next --counter commits
imgtag next --counter commits
step imgtag next --format json --counter commits
imgtag next --format json --counter commits

step imgtag build-push "$image" --counter commits --alias latest --format json
imgtag build-push "$image" --counter commits --alias latest --format json 2>/dev/null

step imgtag build-push "$image" --counter commits "   # the same tag again: refused"
rc=0
imgtag build-push "$image" --counter commits 2>&1 >/dev/null || rc=$?
echo "exit code: $rc (3: refused to publish)"

step imgtag build-push "$image" --counter commits --on-exists skip "   # same commit: accepted"
imgtag build-push "$image" --counter commits --on-exists skip

step docker run --rm "$image:latest"
/usr/bin/docker run --rm --network none "$image:latest"

# A few more builds, then the retention plan a cleanup cron would carry out.
for n in 1 2 3; do
    echo "Hello, build $n." >greeting.txt && git commit -qam "fix: greeting $n"
    imgtag build-push "$image" --counter commits >/dev/null 2>&1
done
step imgtag prune "$image" --keep-last 2 "   # a dry run: the plan only"
imgtag prune "$image" --keep-last 2 2>/dev/null

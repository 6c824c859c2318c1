#!/usr/bin/env bash
# Fetches Debian 13's container toolchain into .tools/debian13/ (ignored by git) without
# touching the host's packages: Docker Engine 26 (docker.io), its CLI (docker-cli),
# containerd 1.7, docker-buildx, cosign and oras. The test bed (tests/testbed.py) runs
# that dockerd beside Debian 12's 20.10 engine, with the containerd image store.
#
# How: a private apt configuration (its own sources file, lists and cache under
# .tools/debian13/apt/) naming the host's Debian mirror with `Suites: trixie`; then
# `apt-get download` (no dependency resolution, nothing installed) and `dpkg-deb -x` of
# each package into .tools/debian13/root/. Debian 13's runc needs glibc 2.38 (Debian 12
# has 2.36): the host's runc is used instead, so it is never unpacked.
#
# Cached: a second run with the same package list does nothing (no network). Remove
# .tools/debian13/ to fetch again. Prints nothing on success when cached.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(docker.io docker-cli containerd docker-buildx cosign oras)
dest=.tools/debian13
root=$dest/root
stamp=$dest/.fetched
want="${PACKAGES[*]}"

if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x $root/usr/sbin/dockerd ]]; then
    exit 0
fi

echo "debian13-tools: fetching ${PACKAGES[*]} (Debian 13) into $dest" >&2
apt_dir=$PWD/$dest/apt
rm -rf "$root" "$apt_dir"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$root"

# The host's Debian entry (not its security one), with the suite replaced by trixie.
sources=$apt_dir/trixie.sources
host_sources=/etc/apt/sources.list.d/debian.sources
if [[ -f $host_sources ]]; then
    awk '
        BEGIN { RS = ""; FS = "\n" }
        $0 ~ /URIs:/ && $0 !~ /security/ && !done {
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^Suites:/) print "Suites: trixie"
                else if ($i ~ /^Components:/) print "Components: main"
                else if ($i !~ /^#/) print $i
            }
            done = 1
        }
    ' "$host_sources" >"$sources"
fi
if [[ ! -s $sources ]]; then
    # One-line format (/etc/apt/sources.list): the first plain `deb URI` line.
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
        /etc/apt/sources.list 2>/dev/null || true)
    if [[ -z $uri ]]; then
        echo "debian13-tools: found no Debian entry in $host_sources or /etc/apt/sources.list" >&2
        exit 1
    fi
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" >"$sources"
fi

apt_opts=(
    -o "Dir::Etc::SourceList=$sources"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    # Files written as root into a folder the _apt user cannot read: no sandbox warning.
    -o APT::Sandbox::User=root
)
apt-get -q "${apt_opts[@]}" update >&2
(cd "$apt_dir/debs" && apt-get -q "${apt_opts[@]}" download "${PACKAGES[@]}" >&2)
for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$root"
done
# Never Debian 13's runc (glibc 2.38), should a package ever carry one.
rm -f "$root/usr/sbin/runc" "$root/usr/bin/runc"
# The .debs and lists are not needed once unpacked (~95 MB).
rm -rf "$apt_dir/debs" "$apt_dir/cache" "$apt_dir/lists"
"$root/usr/sbin/dockerd" --version >&2
echo "$want" >"$stamp"

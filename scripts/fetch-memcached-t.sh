#!/usr/bin/env bash
# Put memcached 1.6.18's own test suite (t/) under .cache/memcached-1.6.18/, from Debian's
# source package (bookworm ships 1.6.18). Used by tests/test_conformance.py; needs apt-get.
# usage: scripts/fetch-memcached-t.sh [DEST]      prints the directory that holds t/
set -euo pipefail
DEST="${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/memcached-1.6.18}"
if [ -d "$DEST/t/lib" ]; then echo "$DEST"; exit 0; fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/parts" "$WORK/lists/partial" "$WORK/src"
cat > "$WORK/parts/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT=(-q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$WORK/parts"
     -o Dir::State::Lists="$WORK/lists")
apt-get "${APT[@]}" update >&2
(cd "$WORK/src" && apt-get "${APT[@]}" source --download-only memcached >&2)
mkdir -p "$DEST"
tar -xJf "$WORK"/src/memcached_1.6.18.orig.tar.* -C "$WORK/src"
cp -r "$WORK"/src/memcached-1.6.18/t "$DEST/"
echo "$DEST"

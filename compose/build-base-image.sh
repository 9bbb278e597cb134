#!/usr/bin/env bash
# Build a Debian base image with Python 3 (+ venv) from Debian packages, for machines that
# cannot pull from a container registry: mmdebstrap (variant minbase) fetches the packages
# through the host's own apt sources and its tarball is streamed straight into `docker import`.
#
#   compose/build-base-image.sh [--rebuild] [TAG]     # TAG defaults to pymc-base:<codename>
#
# Environment: APT_SOURCES=/path/to/file.sources (or a sources.list) to choose the apt source
# file instead of the host's Debian/Ubuntu one.
set -euo pipefail

prog=${0##*/}
args=("$@")

usage() {
    cat <<EOF
usage: $prog [--rebuild] [TAG]

Builds TAG (default pymc-base:<host codename>) from Debian packages with mmdebstrap
(variant minbase, include python3,python3-venv) using the host's apt sources, and imports
it with docker import. If TAG already exists nothing is done, unless --rebuild.
Must run as root. APT_SOURCES=FILE overrides the apt source file.
EOF
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

rebuild=0
tag=
while (($#)); do
    case $1 in
        --rebuild) rebuild=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *)
            [[ -z $tag ]] || die "only one TAG, got '$tag' and '$1'"
            tag=$1
            ;;
    esac
    shift
done

# --- what we need -------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap builds the root file system as root): sudo $0${args[*]:+ ${args[*]}}"

missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v docker >/dev/null || missing+=(docker)
if ((${#missing[@]})); then
    die "${missing[*]} not found: apt-get install mmdebstrap docker.io"
fi
docker info >/dev/null 2>&1 ||
    die "cannot talk to the Docker daemon: dockerd must be running (systemctl start docker, or start dockerd by hand)"

[[ -r /etc/os-release ]] || die "no /etc/os-release: cannot tell the host's release"
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $codename ]] || die "/etc/os-release has no VERSION_CODENAME (is this Debian or Ubuntu?)"

tag=${tag:-pymc-base:$codename}

# --- already there? -------------------------------------------------------------------------
old_id=
if old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null); then
    if ((!rebuild)); then
        echo "$tag exists already ($(docker image inspect --format '{{.Created}}' "$tag")); --rebuild to build it again."
        echo "$tag"
        exit 0
    fi
else
    old_id=
fi

# --- the host's apt sources -----------------------------------------------------------------
# A file that names the host's own suite: the distribution's own file first, then any
# other (third-party repositories are left out: their keys and suites are not the base's).
has_suite() { # FILE: does it have an active entry for $codename?
    grep -Eq "^[[:space:]]*(Suites:.*[[:space:]]|deb[[:space:]].*[[:space:]])${codename}([[:space:]]|$)" "$1"
}
sources=${APT_SOURCES:-}
if [[ -n $sources ]]; then
    [[ -r $sources ]] || die "APT_SOURCES=$sources: no such readable file"
else
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/ubuntu.sources \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.sources; do
        if [[ -r $f ]] && has_suite "$f"; then
            sources=$f
            break
        fi
    done
    [[ -n $sources ]] ||
        die "no apt source for '$codename' in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources; set APT_SOURCES=FILE"
fi

# --- build ----------------------------------------------------------------------------------
# Like Debian's slim images: no manual pages, translations or documentation other than
# the copyright files (dpkg keeps these filters in the image for later installs too).
slim=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
echo "building $tag: mmdebstrap --variant=minbase --include=python3,python3-venv (no docs, man pages, locales) $codename - $sources | docker import"
SECONDS=0
# Imported without a name first: if mmdebstrap fails half-way, docker import may still take
# the truncated tarball, and that must not end up as $tag.
new_id=
if ! new_id=$(mmdebstrap --variant=minbase --include=python3,python3-venv \
    "${slim[@]}" "$codename" - "$sources" |
    docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "mmdebstrap --variant=minbase --include=python3,python3-venv $codename" \
        -); then
    [[ -z $new_id ]] || docker rmi "$new_id" >/dev/null 2>&1 || true
    die "building the base image failed (see mmdebstrap's output above)"
fi
docker tag "$new_id" "$tag"

if [[ -n $old_id && $old_id != "$new_id" ]]; then
    # The previous image, now nameless; kept if an image built on it still needs it.
    if docker rmi "$old_id" >/dev/null 2>&1; then
        echo "removed the previous $tag (${old_id#sha256:})"
    else
        echo "the previous $tag (${old_id:7:12}) is still used by other images; left in place"
    fi
fi

echo "built $tag in ${SECONDS}s: python $(docker run --rm "$tag" python3 -c 'import platform; print(platform.python_version())'), $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"
echo "$tag"

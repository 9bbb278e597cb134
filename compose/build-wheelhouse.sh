#!/usr/bin/env bash
# Fill compose/wheelhouse/ on the host with every wheel the pymc image needs, so that
# `docker build -f compose/Dockerfile` installs with pip --no-index (no network in the build):
# pyproject.toml's runtime dependencies as binary wheels for the base image's Python, libc
# and architecture, its build requirements (setuptools: the image builds pymc from the
# source tree it is given, offline), and a wheel of pymc itself built from this tree.
#
#   compose/build-wheelhouse.sh [BASE_IMAGE]     # default $BASE_IMAGE, else pymc-base:<codename>
#
# Needs docker (to ask BASE_IMAGE for its Python) and, on the host, python3 >= 3.11 with pip
# and access to the package index. Changing pymc's code needs no new wheelhouse; changing
# its dependencies, or the base image's Python, does.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
wheelhouse=$here/wheelhouse

die() {
    echo "$prog: $*" >&2
    exit 1
}

case ${1:-} in
    -h | --help)
        sed -n '2,12s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    -*) die "unknown option: $1 (see --help)" ;;
esac
(($# <= 1)) || die "one BASE_IMAGE at most (see --help)"

codename=
if [[ -r /etc/os-release ]]; then
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
image=${1:-${BASE_IMAGE:-pymc-base:${codename:-bookworm}}}

command -v docker >/dev/null || die "docker is missing: apt-get install docker.io"
command -v python3 >/dev/null || die "python3 is missing on the host"
python3 -m pip --version >/dev/null 2>&1 || die "pip is missing on the host: apt-get install python3-pip"
docker image inspect "$image" >/dev/null 2>&1 ||
    die "no image $image here (compose/build-base-image.sh builds pymc-base:<codename>; docker pull others)"

# --- what the image runs ----------------------------------------------------------------------
echo "asking $image for its Python, libc and architecture..."
read -r pyver libc glibc arch < <(docker run --rm --network none "$image" python3 -c '
import platform, sys
libc, version = platform.libc_ver()
print("%d.%d" % sys.version_info[:2], libc or "-", version or "-", platform.machine())') ||
    die "could not run python3 in $image"
[[ $libc == glibc ]] || die "$image has no glibc (libc: $libc): manylinux wheels would not run there"
pytag=cp${pyver/./}
glibc_minor=${glibc#2.}
glibc_minor=${glibc_minor%%.*}

# Every manylinux tag that glibc 2.$glibc_minor runs, the legacy aliases included.
platforms=()
for ((minor = glibc_minor; minor >= 5; minor--)); do
    platforms+=("manylinux_2_${minor}_${arch}")
done
case $arch in
    x86_64 | i686) platforms+=("manylinux2014_${arch}" "manylinux2010_${arch}" "manylinux1_${arch}") ;;
    aarch64 | ppc64le | s390x | armv7l | ppc64) platforms+=("manylinux2014_${arch}") ;;
esac
platforms+=(any)

# --- what pymc needs, from pyproject.toml: [project] dependencies, [build-system] requires ----
meta=$(python3 - "$root/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    pyproject = tomllib.load(f)
print("name", pyproject["project"]["name"])
for req in pyproject["project"].get("dependencies", []):
    print("run", req)
for req in pyproject.get("build-system", {}).get("requires", ["setuptools>=40.8.0"]):
    print("build", req)
EOF
) || die "could not read $root/pyproject.toml (the host's python3 needs tomllib: 3.11+, or tomli)"
mapfile -t lines <<<"$meta"
name=''
deps=()
build_deps=()
for line in "${lines[@]}"; do
    case $line in
        "name "*) name=${line#name } ;;
        "run "*) deps+=("${line#run }") ;;
        "build "*) build_deps+=("${line#build }") ;;
        *) ;;
    esac
done
[[ -n $name ]] || die "$root/pyproject.toml has no [project] name"
dist=${name//-/_}

# --- the wheelhouse --------------------------------------------------------------------------
mkdir -p "$wheelhouse"
target="python $pyver ($pytag), glibc $glibc, $arch"
stamp=$wheelhouse/TARGET
if [[ -f $stamp && $(<"$stamp") != "$target" ]]; then
    echo "the wheelhouse was for $(<"$stamp"); removing its wheels"
    rm -f "$wheelhouse"/*.whl
fi
old=("$wheelhouse/$dist"-*.whl)
if [[ -e ${old[0]} ]]; then
    echo "removing the old ${old[*]##*/}"
    rm -f "${old[@]}"
fi
printf '%s\n' "$target" >"$stamp"

echo
echo "downloading for $target: ${deps[*]} (to run), ${build_deps[*]} (to build $name)"
SECONDS=0
python3 -m pip download --disable-pip-version-check --dest "$wheelhouse" \
    --only-binary=:all: --python-version "$pyver" --implementation cp \
    --abi "$pytag" --abi abi3 --abi none \
    "${platforms[@]/#/--platform=}" \
    "${deps[@]}" "${build_deps[@]}"

echo
echo "building the $name wheel from $root"
# From a copy, so that the build leaves no build/ or *.egg-info behind in the source tree.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
tar -C "$root" -c \
    --exclude=.git --exclude=.cache --exclude='.pymc-lab*' --exclude=.pytest_cache \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=./build --exclude=./dist \
    --exclude=./benchmarks/.build --exclude=./compose/wheelhouse --exclude=./compose/state \
    . | tar -C "$src" -x
# With the wheelhouse's own build requirements, as the image build will.
python3 -m pip wheel --disable-pip-version-check --no-deps --no-index --find-links "$wheelhouse" \
    --wheel-dir "$wheelhouse" "$src"

# --- check it, offline, in the image itself --------------------------------------------------
# pip download judges environment markers by the host's Python; installing in the image
# without network, from the source tree as compose/Dockerfile does, proves the wheelhouse
# is complete for it.
echo
echo "checking: pip install --no-index --find-links wheelhouse SOURCE-TREE in $image (no network)"
docker run --rm --network none -v "$wheelhouse:/wheelhouse:ro" -v "$src:/src:ro" "$image" sh -ec "
    cp -r /src /tmp/src
    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install --quiet --disable-pip-version-check --no-cache-dir \
        --no-index --find-links /wheelhouse /tmp/src
    /tmp/venv/bin/python -c 'import gevent, $dist; print(\"ok: $dist and gevent\", gevent.__version__, \"import\")'
" || die "the wheelhouse does not install in $image"

echo
echo "$wheelhouse ($target), in ${SECONDS}s:"
(cd "$wheelhouse" && ls -s --block-size=K -- *.whl && du -sh . | awk '{print "total " $1}')

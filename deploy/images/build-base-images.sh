#!/usr/bin/env bash
# Offline / air-gapped base images: when Docker Hub and ghcr.io cannot be reached, build the
# images that the Dockerfile and deploy/docker-compose.yml name from Debian packages (mmdebstrap
# + docker import) and from the uv wheel on PyPI, under the very same names, so that
# `docker build` and `docker compose` find them locally and never try to pull.
#
#   deploy/images/build-base-images.sh            # builds what is missing or out of date
#
# Needs: mmdebstrap, a Docker engine (DOCKER_HOST is honoured), python3 and PyPI (PYPI_URL) for
# the uv wheel. Each image carries the label ccgate.base-key, a hash of its recipe (below; RECIPE is
# bumped when the way of building changes); an image whose key matches is kept, so a second
# run costs a few `docker image inspect`s. An image of that name without the label (pulled from
# a registry, or loaded) is the real one and is left alone.
# Ollama and Jaeger cannot be built from Debian packages: pull them where a registry is
# reachable (or load them with `docker load`); the stack test stands in for them.
set -euo pipefail

DOCKER=${DOCKER:-docker}
UV_VERSION=${UV_VERSION:-0.13.9}
PYPI_URL=${PYPI_URL:-https://pypi.org/simple}  # or a mirror's simple index (PEP 691 JSON)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
RECIPE=2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STANDIN="ccgate offline stand-in built from Debian ${SUITE} packages"

up_to_date() { # name key
    local label
    label=$("$DOCKER" image inspect -f '{{index .Config.Labels "ccgate.base-key"}}' "$1" 2>/dev/null) || return 1
    [ "$label" = "$2" ] || [ "$label" = "<no value>" ] || [ -z "$label" ]
}

debian_image() { # name packages customize-hook changes...
    local name=$1 packages=$2 hook=$3
    shift 3
    local key
    key="$RECIPE-$(printf '%s|%s|%s|%s|%s' "$SUITE" "$name" "$packages" "$hook" "$*" | sha256sum | cut -c1-16)"
    if up_to_date "$name" "$key"; then
        echo "base image $name is up to date ($key)"
        return
    fi
    echo "building base image $name from Debian ${SUITE} packages"
    local changes=(--change "LABEL ccgate.base-key=$key" --change "LABEL org.opencontainers.image.description=\"$STANDIN\""
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8')
    local change
    for change in "$@"; do changes+=(--change "$change"); done
    mmdebstrap --quiet --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook="$hook" \
        "$SUITE" - \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" \
        | "$DOCKER" import "${changes[@]}" - "$name" >/dev/null
}

# python:3.11-slim-bookworm: Debian's python3.11 (the official image builds its own 3.11).
debian_image python:3.11-slim-bookworm python3,python3.11,ca-certificates,passwd \
    'true' 'CMD ["python3"]'

# redis:7-alpine: Debian's redis 7. The official image turns protected mode off (a container's
# network is its boundary); the wrapper does the same, and /data belongs to the redis user.
debian_image redis:7-alpine redis-server,redis-tools \
    'printf "#!/bin/sh\nexec /usr/bin/redis-server \"\$@\" --protected-mode no\n" > "$1/usr/local/bin/redis-server"; chmod 755 "$1/usr/local/bin/redis-server"; mkdir -p "$1/data"; chroot "$1" chown redis:redis /data' \
    'USER redis' 'WORKDIR /data' 'CMD ["redis-server"]'

# nginx:1.27-alpine: Debian's nginx (1.22); same layout for conf.d, logs to the container's
# output at the official image's level (notice), no default site, and wget for the healthcheck.
debian_image nginx:1.27-alpine nginx-light,wget \
    'rm -f "$1/etc/nginx/sites-enabled/default"; ln -sf /dev/stdout "$1/var/log/nginx/access.log"; ln -sf /dev/stderr "$1/var/log/nginx/error.log"; sed -i "s|^error_log .*|error_log /var/log/nginx/error.log notice;|" "$1/etc/nginx/nginx.conf"' \
    'CMD ["nginx", "-g", "daemon off;"]'

# ghcr.io/astral-sh/uv:VERSION: the official image is FROM scratch with /uv and /uvx; the same
# two binaries come in the uv wheel on PyPI.
uv_name="ghcr.io/astral-sh/uv:$UV_VERSION"
uv_key="$RECIPE-uv-$UV_VERSION"
if up_to_date "$uv_name" "$uv_key"; then
    echo "base image $uv_name is up to date ($uv_key)"
else
    echo "building base image $uv_name from the uv $UV_VERSION wheel"
    mkdir -p "$WORK/uv"
    python3 - "$WORK/uv" "$UV_VERSION" "$PYPI_URL" <<'PY'
# The manylinux x86_64 wheel from the package index (its PEP 691 JSON page), checked against
# the sha256 the index gives.
import hashlib, io, json, pathlib, sys, urllib.parse, urllib.request, zipfile
target, version, index = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3].rstrip("/")
page = urllib.request.Request(
    f"{index}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
with urllib.request.urlopen(page, timeout=60) as answer:
    files = json.load(answer)["files"]
wheel = next(
    f for f in files
    if f["filename"].startswith(f"uv-{version}-") and f["filename"].endswith("manylinux2014_x86_64.whl")
)
with urllib.request.urlopen(urllib.parse.urljoin(f"{index}/uv/", wheel["url"]), timeout=300) as answer:
    data = answer.read()
if hashlib.sha256(data).hexdigest() != wheel["hashes"]["sha256"]:
    sys.exit(f"{wheel['filename']}: sha256 does not match the index's")
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    for info in zf.infolist():
        name = pathlib.PurePosixPath(info.filename)
        if name.parent.name == "scripts" and name.name in ("uv", "uvx"):
            (target / name.name).write_bytes(zf.read(info))
            (target / name.name).chmod(0o755)
PY
    tar -C "$WORK/uv" -c uv uvx | "$DOCKER" import --change "LABEL ccgate.base-key=$uv_key" \
        --change 'CMD ["/uv"]' - "$uv_name" >/dev/null
fi

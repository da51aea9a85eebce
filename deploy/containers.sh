# Shared shell functions of images.sh and image-test.sh (source after lib.sh; it defines, never
# runs): which container engine, the local Debian base image, the images' names and sizes.

SERVICES=(schema-registry processor ingest-api)
IMAGE_TAG=${IMAGE_TAG:-dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/fitness-debian-base:bookworm}
IMAGES_CACHE=${IMAGES_CACHE:-$HOME/.cache/fitness/images}

image_name() { echo "localhost/fitness/$1:$IMAGE_TAG"; }

# Sets ENGINE to podman (preferred) or docker. podman reads deploy/podman/containers.conf, the
# settings this machine kind needs (runc, cgroupfs, file events, ulimits), not /etc/containers.
ensure_container_engine() {
    ENGINE=${CONTAINER_ENGINE:-}
    if [[ -z $ENGINE ]]; then
        if command -v podman >/dev/null; then
            ENGINE=podman
        elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
            ENGINE=docker
        else
            die "neither podman nor a running docker was found; install podman (apt-get install podman buildah runc netavark mmdebstrap) and run again"
        fi
    fi
    command -v "$ENGINE" >/dev/null || die "CONTAINER_ENGINE=$ENGINE is not installed"
    if [[ $ENGINE == podman ]]; then
        export CONTAINERS_CONF=${CONTAINERS_CONF:-$DEPLOY_DIR/podman/containers.conf}
    fi
}

# The machine's first Debian mirror from its apt sources (deb822 or one-line format).
debian_mirror() {
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1)
    [[ -z $uri ]] && uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# Makes $BASE_IMAGE once: Debian bookworm minbase plus what the binaries link (libpq5, libssl3)
# and CA certificates, from Debian's packages with mmdebstrap, imported into the engine.
ensure_base_image() {
    if "$ENGINE" image exists "$BASE_IMAGE" 2>/dev/null || "$ENGINE" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local tar=$IMAGES_CACHE/debian-bookworm-rootfs.tar
    if [[ ! -s $tar ]]; then
        command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: install it (apt-get install mmdebstrap) and run again; it makes the Debian base image from Debian's packages"
        local mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
        say "making the Debian bookworm base image with mmdebstrap from $mirror (once, about 2-3 minutes)"
        mkdir -p "$IMAGES_CACHE"
        mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates,libpq5,libssl3 bookworm "$tar.partial" "$mirror" \
            || { rm -f "$tar.partial"; die "mmdebstrap failed; check that $mirror is reachable (or set DEBIAN_MIRROR), then run again"; }
        mv "$tar.partial" "$tar"
    fi
    say "importing $tar as $BASE_IMAGE"
    "$ENGINE" import --quiet "$tar" "$BASE_IMAGE" >/dev/null || die "importing the base image failed"
}

# One line per image: name and size in MB.
report_image_sizes() {
    local service
    for service in "${SERVICES[@]}"; do
        local bytes
        bytes=$("$ENGINE" image inspect --format '{{.Size}}' "$(image_name "$service")")
        awk -v name="$(image_name "$service")" -v bytes="$bytes" 'BEGIN { printf "  %-44s %6.1f MB\n", name, bytes / 1e6 }'
    done
}

#!/usr/bin/env bash
# `make images`: builds the images of the three services (schema-registry, processor, ingest-api)
# with podman, or docker where podman is missing and a docker daemon answers.
#
# No container registry can be reached on this machine kind, so neither a Rust builder image nor
# debian:bookworm-slim can be pulled. Instead:
#   - the runtime base is made from Debian's packages with mmdebstrap (minbase plus
#     ca-certificates, libpq5 and libssl3) and imported as $BASE_IMAGE, once;
#   - the binaries come from the release build on the host (Debian bookworm, the base's glibc),
#     copied by the Dockerfile's `<service>-prebuilt` targets.
# Where a registry can be reached, the Dockerfile's multi-stage targets build everything inside
# containers instead (docs/deploy.md, "Images").
#
# Environment:
#   IMAGE_TAG        tag of the three images (default dev): localhost/fitness/<service>:$IMAGE_TAG
#   CONTAINER_ENGINE podman or docker (default: podman when installed)
#   DEBIAN_MIRROR    mirror for mmdebstrap (default: the machine's first Debian apt source)
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
source deploy/containers.sh

START=$SECONDS
ensure_container_engine
ensure_base_image

say "building the release binaries on the host"
cargo build --release --locked -p ingest-api -p processor -p schema-registry --bins
CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/fitness-images.XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/prebuilt"
for service in "${SERVICES[@]}"; do
    install -m 0755 "$CARGO_TARGET_DIR/release/$service" "$CONTEXT/prebuilt/$service"
done

REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' crates/ingest-api/Cargo.toml | head -n 1)
# podman builds OCI images by default, and the OCI format has no HEALTHCHECK: it would be dropped
# with a warning. The Docker format keeps it.
FORMAT=()
[[ $ENGINE == podman ]] && FORMAT=(--format docker)
for service in "${SERVICES[@]}"; do
    say "building $(image_name "$service") (target $service-prebuilt)"
    "$ENGINE" build --quiet "${FORMAT[@]}" -f deploy/docker/Dockerfile --ignorefile deploy/docker/Dockerfile.dockerignore \
        --target "$service-prebuilt" \
        --build-arg RUNTIME_IMAGE="$BASE_IMAGE" \
        --build-arg VERSION="${VERSION:-0.1.0}" --build-arg REVISION="$REVISION" \
        --build-arg CREATED="$(date -u +%FT%TZ)" \
        -t "$(image_name "$service")" "$CONTEXT" >/dev/null \
        || die "building the $service image failed; the output above says why"
done

echo
echo "images ($ENGINE, base $BASE_IMAGE):"
report_image_sizes
echo "took $((SECONDS - START))s"

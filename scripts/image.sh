#!/usr/bin/env bash
# Builds the vxtrace image without an image registry, the same image the Dockerfile describes:
#   build   this checkout's own build (scripts/build.mjs: the BPF object, the addon, the TypeScript)
#           on this Debian bookworm machine, i.e. the Dockerfile's build stage's toolchain;
#           production npm packages only (npm ci --omit=dev) in a staging directory
#   run     a bookworm root filesystem from Debian's packages (mmdebstrap, minbase) with libbpf1,
#           libelf1, zlib1g, libstdc++6, iproute2, nftables and iptables (the agent reads its node's
#           firewall: nft and iptables-legacy-save); Node 20 at /usr/local/bin/node, taken from this
#           machine's Node 20 (Debian's own nodejs in bookworm is 18, older than vxtrace needs);
#           the app at /opt/vxtrace
#   image   `podman import` of that root filesystem with the Dockerfile's ENTRYPOINT
# Usage: scripts/image.sh [TAG]    (default localhost/vxtrace:VERSION; prints the tag at the end)
# Needs root, mmdebstrap and podman (Debian packages). Everything it makes lives under build/image/
# (ignored by git) and in podman's storage (`podman rmi TAG` removes it).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

VERSION=$(node -p 'require("./package.json").version')
TAG=${1:-localhost/vxtrace:$VERSION}
OUT=build/image
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap and podman import write root-owned files): run as root or prefix sudo"
for tool in mmdebstrap podman; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian package $tool; scripts/setup.sh installs it)"
done
NODE=$(command -v node)
"$NODE" -e 'process.exit(+process.versions.node.split(".")[0] === 20 ? 0 : 1)' \
  || die "this machine's node is $("$NODE" --version); the image takes Node 20 from it"

say "build (scripts/build.mjs)"
node scripts/build.mjs >&2

rm -rf "$OUT" && mkdir -p "$OUT/app"
APP=$OUT/app
cp package.json package-lock.json "$APP/"
cp -r bin "$APP/bin"
mkdir -p "$APP/dist" "$APP/bpf/.output" "$APP/native/build/Release"
for d in dist/*/; do case "$d" in dist/test/|dist/bench/) ;; *) cp -r "$d" "$APP/$d";; esac; done
find "$APP/dist" -name '*.map' -delete
cp bpf/.output/vxtrace.bpf.o "$APP/bpf/.output/"
cp native/build/Release/vxtrace_native.node "$APP/native/build/Release/"

# The same inputs make the same image: an image of this tag built from identical files is kept
# (VXTRACE_IMAGE_REBUILD=1 builds it anew).
INPUT=$( (cd "$APP" && find . -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum "$NODE" | cut -d' ' -f1; cat "$OLDPWD/scripts/image.sh") | sha256sum | cut -c1-32)
if [ -z "${VXTRACE_IMAGE_REBUILD:-}" ] && [ "$(podman image inspect --format '{{index .Labels "io.vxtrace.input"}}' "$TAG" 2>/dev/null)" = "$INPUT" ]; then
  say "$TAG is up to date (same inputs)"
  echo "$TAG"
  exit 0
fi
say "staging the app in $APP (production npm packages only)"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci --omit=dev failed"

say "root filesystem (mmdebstrap bookworm, minbase)"
mmdebstrap --quiet --variant=minbase \
  --include=libbpf1,libelf1,zlib1g,libstdc++6,iproute2,nftables,iptables \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="mkdir -p \"\$1/usr/local/bin\" \"\$1/opt/vxtrace\"" \
  --customize-hook="copy-in $NODE /usr/local/bin" \
  --customize-hook="sync-in $APP /opt/vxtrace" \
  --customize-hook='chroot "$1" /usr/local/bin/node --version >/dev/null' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$OUT/rootfs.tar" || die "mmdebstrap failed (it needs Debian's package mirror)"

say "podman import as $TAG"
OLD=$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
podman import --quiet \
  --change 'ENTRYPOINT ["/usr/local/bin/node", "/opt/vxtrace/bin/vxtrace.js"]' \
  --change 'CMD ["--help"]' \
  --change 'WORKDIR /opt/vxtrace' \
  --change "LABEL org.opencontainers.image.title=vxtrace" \
  --change "LABEL org.opencontainers.image.version=$VERSION" \
  --change "LABEL io.vxtrace.input=$INPUT" \
  "$OUT/rootfs.tar" "$TAG" >/dev/null || die "podman import failed"
rm -f "$OUT/rootfs.tar"
# The image this tag named before, if any, is not kept dangling.
if [ -n "$OLD" ] && [ "$OLD" != "$(podman image inspect --format '{{.Id}}' "$TAG")" ]; then podman rmi "$OLD" >/dev/null 2>&1 || true; fi
say "built $TAG ($(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MiB", $1/1048576}'))"
echo "$TAG"

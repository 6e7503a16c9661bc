#!/usr/bin/env bash
# One-time and every-time set-up for vxtrace on a Debian machine: system packages, npm packages,
# then the incremental build. Idempotent and quiet when everything is already there.
# Used by `npm test` and `npm run demo`; safe to run by hand (`npm run setup`).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# System packages vxtrace needs at build or run time (Debian names).
#   clang, llvm         compile bpf/*.bpf.c          libbpf-dev, libelf-dev, zlib1g-dev, pkg-config  link the addon
#   cmake, g++, make    build the addon (cmake-js)   bpftool        inspect programs in tests
#   iproute2, nftables, iputils-ping, ethtool, procps   build and probe the lab
#   iptables            read (and, in tests, set) a node's legacy x_tables firewall
#   tshark, tcpdump, iperf3                        read traces in tests, benchmarks
#   prometheus          promtool, to check the hub's /metrics text in tests
#   chromium            the page's browser tests (playwright-core drives it; no browser is downloaded)
PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config cmake g++ make bpftool
          iproute2 nftables iptables iputils-ping ethtool procps tshark tcpdump iperf3 socat prometheus chromium)
#   kubernetes-client  kubectl, to render deploy/ in tests (`kubectl kustomize`); skipped when a
#                      kubectl is already installed (another package owning /usr/bin/kubectl would conflict)
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)
#   mmdebstrap, podman, runc   build and run the image without a registry (scripts/image.sh, test/image)
#   openssl                    the stand-in API server's certificate in tests
PACKAGES+=(mmdebstrap podman runc openssl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}. Run as root (or prefix sudo) so that set-up can apt-get install them."
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
  log=$(mktemp)
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 \
    || { cat "$log" >&2; rm -f "$log"; die "apt-get install ${missing[*]} failed (output above)"; }
  rm -f "$log"
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
fi

node scripts/build.mjs

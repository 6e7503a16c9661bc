# The vxtrace image: the agent (DaemonSet) and the hub (Deployment) run from it (deploy/).
#   docker build -t REGISTRY/vxtrace:0.2.0 .
# scripts/image.sh builds the same image without a registry (Debian packages, mmdebstrap, podman
# import): the same build toolchain, the same runtime packages, Node 20 at the same place.

# Build: the BPF object (clang), the libbpf addon (cmake-js), the TypeScript; then only the
# production npm packages are kept.
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev libelf-dev zlib1g-dev pkg-config cmake g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node scripts/build.mjs && rm -rf dist/test dist/bench && npm prune --omit=dev --no-audit --no-fund

# Run: slim Debian, the shared libraries the addon links (libbpf, libelf, zlib), iproute2 (the
# agent reads its node's kernel state through ip, bridge and tc), nftables and iptables (its
# firewall: nft, and iptables-legacy-save for rules kept in the legacy tables), and Node 20.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g libstdc++6 iproute2 nftables iptables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/vxtrace
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/bpf/.output/vxtrace.bpf.o ./bpf/.output/vxtrace.bpf.o
COPY --from=build /src/native/build/Release/vxtrace_native.node ./native/build/Release/vxtrace_native.node
ENTRYPOINT ["/usr/local/bin/node", "/opt/vxtrace/bin/vxtrace.js"]
CMD ["--help"]

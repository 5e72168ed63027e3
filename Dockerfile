# The rise-registry image: the binary on a distroless runtime (C library,
# CA certificates, no shell), run as uid 65532, configured from a mounted
# directory. Needs BuildKit (the default builder of current Docker), which
# builds only the stages the chosen one depends on.
#
# Two ways to build (docs/kubernetes.md):
#   docker build -t rise-registry .
#       compiles the binary in the `source` stage (Rust toolchain image);
#   cargo build --release --locked
#   docker build --build-arg BINARY=prebuilt -t rise-registry .
#       takes a binary built outside, at PREBUILT_BINARY in the context
#       (default target/release/rise-registry; .dockerignore lets it in).
# The binary must be built for glibc 2.36 or older (Debian 12) on x86_64.
#
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (charts/rise-registry).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# `source` or `prebuilt`: which stage provides /out/rise-registry.
ARG BINARY=source
# The release and the commit, for the image's labels and (in the `source`
# stage) the binary's `--version` and rise_registry_build_info;
# scripts/release passes both.
ARG VERSION=dev
ARG REVISION=unknown

FROM ${RUST_IMAGE} AS source
ARG REVISION
WORKDIR /src
COPY . .
RUN RISE_REGISTRY_REVISION="${REVISION}" cargo build --release --locked --bin rise-registry \
 && mkdir -p /out && cp target/release/rise-registry /out/rise-registry

FROM scratch AS prebuilt
ARG PREBUILT_BINARY=target/release/rise-registry
COPY ${PREBUILT_BINARY} /out/rise-registry

FROM ${BINARY} AS binary

FROM ${RUNTIME_IMAGE}
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="rise-registry" \
      org.opencontainers.image.description="Scoped container-registry credentials for Rise, and the AWS setup behind them" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binary --chmod=0755 /out/rise-registry /usr/local/bin/rise-registry
# The example layers, so the image runs as it is (development run mode, on
# loopback); deployments mount their own directory here (the chart mounts a
# ConfigMap) or point RISE_CONFIG_DIR elsewhere.
COPY config/ /etc/rise-registry/
ENV RISE_CONFIG_DIR=/etc/rise-registry
# nonroot in the distroless images; numeric, so Kubernetes' runAsNonRoot
# can check it without reading /etc/passwd.
USER 65532:65532
WORKDIR /home/nonroot
# server.listen and server.metrics_listen in the chart's configuration.
EXPOSE 3000 9464
ENTRYPOINT ["/usr/local/bin/rise-registry"]
CMD ["serve"]

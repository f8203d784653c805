# syntax=docker/dockerfile:1
# One image with every Tailor binary; each Deployment picks its binary with
# `command`. Build from the repository root:
#   docker build -t ghcr.io/tailor-autoscaling/tailor:0.1.0 .
# (docs/operations.md has the multi-arch variant.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches only speed up rebuilds; the image does not depend on them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin tailor-recommender \
        --bin tailor-updater \
        --bin tailor-admission-webhook \
        --bin tailor-metrics-adapter \
        --bin tailor-expander \
        --bin tailor-sim \
    && mkdir -p /out \
    && for bin in tailor-recommender tailor-updater tailor-admission-webhook \
                  tailor-metrics-adapter tailor-expander tailor-sim; do \
           cp "target/release/$bin" /out/; \
       done

# glibc and libgcc only, no shell, no package manager; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/tailor-autoscaling/tailor" \
      org.opencontainers.image.description="Tailor: cost-aware Kubernetes autoscaling" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532

# promrelay: build with the Rust image, run on slim Debian as an unprivileged user.
#
#   docker build -t promrelay .
#   docker run -p 8431:8431 -v promrelay-data:/var/lib/promrelay promrelay \
#       --remote-write-url http://vminsert:8480/insert/0/prometheus/api/v1/write
#
# The queues live in the volume, so acknowledged pushes survive a container restart.

FROM rust:bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin promrelay

FROM debian:bookworm-slim
# ca-certificates: storages reached over https.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The data directory is created and owned before VOLUME, so a new volume inherits the owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/promrelay \
        --shell /usr/sbin/nologin promrelay \
    && mkdir -p /var/lib/promrelay \
    && chown promrelay:promrelay /var/lib/promrelay
COPY --from=builder /src/target/release/promrelay /usr/local/bin/promrelay
USER promrelay
VOLUME /var/lib/promrelay
EXPOSE 8431
# Arguments given to `docker run` are appended: --remote-write-url ... (repeat per storage).
ENTRYPOINT ["/usr/local/bin/promrelay", "--data-dir", "/var/lib/promrelay", "--listen", "0.0.0.0:8431"]

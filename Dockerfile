# sluice in a container: a multi-stage build, a small runtime image, a non-root user.
#
#   docker build -t sluice .
#   docker run --rm -v /var/log:/var/log:ro -v sluice-data:/var/lib/sluice \
#     -v $PWD/sluice.toml:/etc/sluice/sluice.toml:ro -p 127.0.0.1:9598:9598 sluice
#
# The config's data_dir should be /var/lib/sluice (a volume: checkpoints survive the
# container) and [api] address "0.0.0.0:9598" to reach the API from outside the
# container (set [api] token then). Secrets come in as environment variables.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends make pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice-pipeline \
    && install -D -m 0755 target/release/sluice /out/sluice \
    && /out/sluice completions bash > /out/sluice.bash \
    && /out/sluice man > /out/sluice.1

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system sluice && useradd --system --gid sluice --home-dir /var/lib/sluice --shell /usr/sbin/nologin sluice \
    && install -d -o sluice -g sluice -m 0750 /var/lib/sluice /etc/sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /out/sluice.bash /usr/share/bash-completion/completions/sluice
COPY --from=build /out/sluice.1 /usr/share/man/man1/sluice.1
USER sluice
WORKDIR /var/lib/sluice
EXPOSE 9598
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["sluice", "top", "--once", "--interval", "0.1"]
ENTRYPOINT ["sluice"]
CMD ["run", "--config", "/etc/sluice/sluice.toml"]

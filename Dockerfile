# The chathook server: built with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p chathook

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/chathook /usr/local/bin/chathook
ENV CHATHOOK_API_ADDR=0.0.0.0:5001 CHATHOOK_WS_ADDR=0.0.0.0:5200 CHATHOOK_DATA_DIR=/var/lib/chathook
EXPOSE 5001 5200
ENTRYPOINT ["chathook"]

# The container image: the static binary (scripts/build-static) alone on an empty base.
#
#   docker build -t wolkvox-import .
#   docker run --rm -v wolkvox-data:/data -v "$PWD/tokens:/run/secrets/wolkvox/tokens:ro" \
#       wolkvox-import import tickets.xlsx --mapping tickets.yaml \
#       --server crm0001.wolkvox.com --token-file /run/secrets/wolkvox/tokens
#
# The image runs as uid/gid 65532, so the token file and the /data volume must be readable
# (the volume writable) by it. Input, mapping, results and the ledger live on /data, the
# working directory; WOLKVOX_LEDGER puts the ledger there whatever the input's name.
# Kubernetes: deploy/cronjob.yaml.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# build-static checks that the result is static and prints its path as its last line.
RUN scripts/build-static > /tmp/build-static.out \
 && cp "$(tail -n 1 /tmp/build-static.out)" /wolkvox-import
# Scratch has no shell to make directories with: prepare /tmp (SQLite's temporary files,
# the --simulate ledger) and /data here.
RUN mkdir -p /rootfs/tmp /rootfs/data && chmod 1777 /rootfs/tmp

# Nothing but the binary: it carries its CA roots and DNS resolver (Cargo.toml), and
# tests/static_binary.rs runs it from an empty root exactly like this one.
FROM scratch
COPY --from=build /rootfs/tmp /tmp
COPY --from=build --chown=65532:65532 /rootfs/data /data
COPY --from=build /wolkvox-import /wolkvox-import
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# HOME for anything that looks for one (there is no /etc/passwd to find it in).
ENV HOME=/tmp \
    WOLKVOX_LEDGER=/data/ledger.sqlite
ENTRYPOINT ["/wolkvox-import"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# larder in a container: the server on 0.0.0.0:8080, data in the volume /var/lib/larder.
#
#   docker build -t larder .
#   docker run -d --name larder -p 8080:8080 -v larder-data:/var/lib/larder larder
#   docker exec larder cat /var/lib/larder/admin-token
#
# Settings as LARDER_* variables (`a.b` in larder.toml is LARDER_A_B), or a
# larder.toml mounted and named with LARDER_CONFIG=/etc/larder/larder.toml.
# Variables win over the file, so LARDER_LISTEN and LARDER_DATA_DIR below win
# over `listen` and `data-dir` in a mounted larder.toml: change them with -e.

ARG NODE_IMAGE=node:24-bookworm-slim

# Compile TypeScript to dist/ (Node does not strip types under node_modules, and
# a container should not need the compiler anyway).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts scripts/
COPY bin bin
COPY src src
RUN node scripts/build.ts

# Production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
# bzip2: larder decompresses legacy bzip2 NARs with the bzip2 program.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bzip2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/larder
COPY --from=deps /src/package.json ./
COPY --from=deps /src/node_modules node_modules
COPY --from=build /src/dist dist
RUN ln -s /opt/larder/dist/bin/larder.js /usr/local/bin/larder \
 && mkdir -p /var/lib/larder \
 && chown node:node /var/lib/larder

ENV NODE_ENV=production \
    LARDER_LISTEN=0.0.0.0:8080 \
    LARDER_DATA_DIR=/var/lib/larder
# The image's unprivileged user (uid 1000), owner of the data volume.
USER node
WORKDIR /var/lib/larder
VOLUME /var/lib/larder
EXPOSE 8080

# GET / answers 200 without touching the index or storage: the process is up and serving.
# (/main/nix-cache-info of a private cache needs a token; 503 there means storage or index trouble.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const port = (process.env.LARDER_LISTEN || '0.0.0.0:8080').split(':').pop(); fetch('http://127.0.0.1:' + port + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["larder"]
CMD ["serve"]

# fluxq: one image for the worker, the API and the CLI.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Compile with the full install, then keep production dependencies only: tsx, s3rver,
# pngjs and jpeg-js (demo, tests, bench) are devDependencies, so the image has no `fluxq demo`.
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# bin/fluxq.js runs dist/cli.js (it falls back to tsx only in a checkout without a build).
COPY bin ./bin
USER node
# SIGTERM reaches node directly (exec form): the worker drains within SHUTDOWN_TIMEOUT_MS.
ENTRYPOINT ["node", "bin/fluxq.js"]
CMD ["worker"]

# The server image: `docker compose up` (docker-compose.yml) or any container platform.
# Configuration is the environment only; docs/production.md lists every variable.
#
#   docker build -t annotation-server .
#   docker run --rm annotation-server task db:migrate     (with the DB_* variables: deploy step)
#   docker run -p 8000:8000 annotation-server             (the server; never migrates)

# The Deno the project uses: keep in step with DENO_VERSION in .ci/run (tests/deploy_files_test.ts).
FROM denoland/deno:2.9.6

# The image's `deno` user (uid 1993) owns the app and the module cache (DENO_DIR=/deno-dir).
WORKDIR /app
RUN chown deno:deno /app
USER deno
ENV DENO_NO_UPDATE_CHECK=1

# Only the npm packages production needs (scripts/production_packages.ts): those the server and
# the db:* and user:create tasks import, and dbmate, which db:migrate runs. Not the development
# ones in deno.json (embedded-postgres and its PostgreSQL binaries, playwright-core, pg-boss,
# fast-check). `--entrypoint` with lazy caching installs what those files import, so the source
# is copied first: a source change reinstalls them (a few MB, from the lock file). Then
# nodeModulesDir becomes "manual": `deno task` and `deno run` use node_modules as built and never
# install the rest at run time. tests/deploy_files_test.ts runs this step and checks the result.
COPY --chown=deno:deno . .
RUN deno install --frozen --unstable-npm-lazy-caching \
      --entrypoint main.ts scripts/db.ts scripts/user.ts npm:dbmate@2.24.0 \
  && sed -i 's/"nodeModulesDir": "auto"/"nodeModulesDir": "manual"/' deno.json \
  && grep -q '"nodeModulesDir": "manual"' deno.json
RUN deno cache --frozen main.ts scripts/db.ts scripts/user.ts

ENV APP_ENV=production
EXPOSE 8000

# No curl in the image: Deno fetches the liveness probe itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch(`http://127.0.0.1:${Deno.env.get('PORT') || 8000}/healthz`); if (!r.ok) Deno.exit(1);"]

# The image's entrypoint (tini, then `deno` for a deno sub-command) forwards SIGTERM, and
# `deno task` forwards it to the server, which shuts down gracefully. Migrations are a
# separate step: `task db:migrate` (the compose `migrate` service).
CMD ["task", "start"]

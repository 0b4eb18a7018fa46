# Sourced by scripts/instructions and scripts/cpu: a build's own demo (`BIN demo --dir DIR`) on
# fixed ports, each build on a database of its own at its own migration level.
#
# The caller sets BIN (the binary, absolute), DIR, PORT, OPS_PORT and POPULATION, and calls
# `demo_prepare` once before `demo_start`.

SERVER=
PSC=()

# The default DIR of a build: one per binary, so that each keeps its database.
demo_dir_of() {
  echo "/tmp/visiodroits-instructions/$(sha1sum "$1" | cut -c1-12)"
}

demo_stop() {
  if [ -n "$SERVER" ]; then
    kill -INT "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  SERVER=
  return 0
}

# demo_start [wrapper...]: the demo on DIR, in the background (pid in SERVER); returns once it is
# ready.
demo_start() {
  : > "$DIR/server.log"
  # From DIR, where no .env is found.
  (cd "$DIR" && exec env VD_LISTEN=127.0.0.1:$PORT VD_METRICS_LISTEN=127.0.0.1:$OPS_PORT \
    VD_LOG=warn "$@" "$BIN" demo --dir "$DIR" "${PSC[@]}") > "$DIR/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do
    grep -qE "^ready in [0-9]" "$DIR/server.log" && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 1
  done
  echo "$(basename "$0"): the server did not start:" >&2
  tail -5 "$DIR/server.log" >&2
  exit 1
}

# The private cluster's superuser is the user it runs as.
demo_db_url() {
  local owner
  owner=$(stat -c %U "$DIR/pg/data")
  echo "postgres://$owner@localhost/visiodroits?host=$DIR/pg/run"
}

# The stand-in PSC issuer on a port of its own when the build's demo takes --psc-listen (an older
# build needs 8444 free), and POPULATION generated beneficiaries imported once per DIR.
demo_prepare() {
  mkdir -p "$DIR"
  PSC=()
  if "$BIN" demo --help 2>/dev/null | grep -- --psc-listen >/dev/null; then
    PSC=(--psc-listen "127.0.0.1:$((PORT + 1))")
  fi
  if [ ! -f "$DIR/imported" ]; then
    demo_start
    "$BENCH" gen-droits "$POPULATION" "$DIR/droits.csv"
    (cd "$DIR" && DATABASE_URL=$(demo_db_url) "$BIN" import "$DIR/droits.csv")
    rm -f "$DIR/droits.csv"
    touch "$DIR/imported"
    demo_stop
  fi
}

# demo_load ARGS...: the load generator against the running demo, as the dev PKI's valid client.
demo_load() {
  "$BENCH" load --url "https://localhost:$PORT" --ca "$DIR/pki/ca/root.pem" \
    --cert "$DIR/pki/clients/valid.pem" --key "$DIR/pki/clients/valid.key" \
    --population "$POPULATION" "$@"
}

#!/usr/bin/env bash
# `docker compose --profile cpu up` for real, end to end. Not part of CI: it needs a running Docker
# daemon, the package registries (PyPI, the Debian mirror), root when the base image has to be made,
# and a few GB of disk. What it does:
#   1. a base image: $SMOKE_BASE_IMAGE if it exists, else Debian bookworm (minbase + python3.11,
#      venv, pip) made with debootstrap from this machine's apt mirror and `docker import`ed;
#   2. the images on that base, with `--network host` builds: Redis (Debian's redis-server) and,
#      through compose (docker-compose.yml + docker-compose.smoke.yml), api and worker-cpu; the CPU
#      torch wheel comes from $SMOKE_WHEELS served on the host, else from PyTorch's index;
#   3. `compose --profile cpu up -d redis api worker-cpu`; waits for /ready through the API
#      container's published port and for the worker to answer a Celery ping;
#   4. /encode of a real photo, then one optimised edit: the worker container is restarted while
#      the job runs, and the job must still succeed (run again after its heartbeat stops) and its
#      result be an image;
#   5. Flower (`--profile flower`, built from the same base) started with FLOWER_BASIC_AUTH: it must
#      refuse a request without the credentials and, with them, list the worker;
#   6. `compose down -v` (containers, network, Redis volume), whatever happened.
#
# Usage: scripts/compose-smoke.sh PHOTO        (or SMOKE_PHOTO=PHOTO scripts/compose-smoke.sh)
# Settings (environment):
#   SMOKE_BASE_IMAGE      base image name (default faceedit-base:bookworm; made when missing)
#   SMOKE_CA_DIR          extra CA certificates (*.crt) the base image made here trusts
#                         (default /usr/local/share/ca-certificates, the host's own additions)
#   SMOKE_WHEELS          folder holding a torch CPU wheel (default /opt/wheels, used if it has one)
#   SMOKE_WHEELS_PORT     where the host serves that folder to the builds (default 8765)
#   SMOKE_TORCH_PIP_ARGS  pip arguments for torch, instead of the two above (e.g. --index-url ...)
#   SMOKE_STEPS           steps of the optimised edit (default 500, the API's maximum: a job long
#                         enough to be restarted in the middle)
#   SMOKE_RMI=1           also remove the built images at the end (they are kept by default:
#                         a second run reuses their layers)
#   FACEEDIT_API_KEY      passed to the API container and sent as X-API-Key
set -euo pipefail
cd "$(dirname "$0")/.."

PHOTO=${1:-${SMOKE_PHOTO:-}}
[ -n "$PHOTO" ] && [ -f "$PHOTO" ] || { echo "usage: $0 PHOTO  (a photo with a face)" >&2; exit 2; }
BASE=${SMOKE_BASE_IMAGE:-faceedit-base:bookworm}
REDIS_IMAGE=${SMOKE_REDIS_IMAGE:-faceedit-smoke/redis:latest}
WHEELS=${SMOKE_WHEELS:-/opt/wheels}
CA_DIR=${SMOKE_CA_DIR:-/usr/local/share/ca-certificates}
STEPS=${SMOKE_STEPS:-500}
PROJECT=faceedit-smoke
URL=http://127.0.0.1:8000  # the API container's published port (docker-compose.yml: "8000:8000")
export SMOKE_BASE_IMAGE=$BASE SMOKE_REDIS_IMAGE=$REDIS_IMAGE

log() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
die() { log "FAILED: $*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose) compose_version=$(docker compose version --short)
elif command -v docker-compose >/dev/null; then
  # compose v1 (Debian's docker-compose 1.29): profiles, health conditions and build.network work
  COMPOSE=(docker-compose) compose_version=$(docker-compose version --short)
else
  die "neither 'docker compose' nor 'docker-compose' found"
fi
COMPOSE+=(-p "$PROJECT" -f docker-compose.yml -f docker-compose.smoke.yml --profile cpu --profile flower)
export FLOWER_BASIC_AUTH="smoke:$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (e.g. dockerd --storage-driver=vfs --iptables=false --bridge=none)"
log "${COMPOSE[*]} $compose_version; daemon $(docker version --format '{{.Server.Version}}'); photo $PHOTO"

work=$(mktemp -d /tmp/compose-smoke.XXXXXX)
wheel_server=
up=
cleanup() {
  local rc=$?
  if [ -n "$up" ]; then
    if [ "$rc" != 0 ]; then
      log "logs of the failed run:"
      "${COMPOSE[@]}" logs --no-color --tail 60 >&2 || true
    fi
    log "tearing down"
    rmi=(); [ "${SMOKE_RMI:-0}" = 1 ] && rmi=(--rmi all)
    "${COMPOSE[@]}" down -v --remove-orphans "${rmi[@]}" >"$work/down.log" 2>&1 || cat "$work/down.log" >&2
    if [ "${SMOKE_RMI:-0}" = 1 ]; then docker rmi "$REDIS_IMAGE" >/dev/null 2>&1 || true; fi
  fi
  if [ -n "$wheel_server" ]; then kill "$wheel_server" 2>/dev/null || true; fi
  log "$([ "$rc" = 0 ] && echo PASSED || echo "exit $rc"); wall time ${SECONDS}s; files in $work"
}
trap cleanup EXIT
trap 'exit 143' INT TERM  # interrupted: tear down all the same, and say it did not pass

# -- 1. the base image -------------------------------------------------------------------------
apt_mirror() {  # the Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list)
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null; cat /etc/apt/sources.list 2>/dev/null; } |
    grep -oE '^(URIs:[[:space:]]*|deb[[:space:]]+)https?://[^[:space:]]+/debian/?([[:space:]]|$)' |
    grep -oE 'https?://[^[:space:]]+' | head -1 || true
}
if docker image inspect "$BASE" >/dev/null 2>&1; then
  log "base image $BASE: present"
else
  command -v debootstrap >/dev/null || die "$BASE is missing and debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "$BASE is missing; making it with debootstrap needs root"
  mirror=${DEBIAN_MIRROR:-$(apt_mirror)}; mirror=${mirror:-http://deb.debian.org/debian}
  log "base image $BASE: debootstrap bookworm (minbase, python3 + venv + pip) from $mirror"
  root=$(mktemp -d /var/tmp/faceedit-base.XXXXXX)
  chmod 755 "$root"  # it becomes the image's /: mktemp's 0700 would lock every user but root out
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$root"; die debootstrap; }
  # the certificate authorities this machine added (a proxy's, a company's) are trusted inside too,
  # so pip in the builds reaches PyPI the way the host does
  if ls "$CA_DIR"/*.crt >/dev/null 2>&1; then
    cp "$CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1
    log "base image: trusts the CAs in $CA_DIR ($(cd "$CA_DIR" && ls -- *.crt | tr '\n' ' '))"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
  log "base image $BASE: imported"
fi

# -- 2. the images -----------------------------------------------------------------------------
log "building $REDIS_IMAGE (Debian's redis-server on $BASE)"
docker build --network host --force-rm -q -t "$REDIS_IMAGE" --build-arg BASE="$BASE" - >"$work/build-redis.log" 2>&1 <<'EOF' ||
ARG BASE
FROM ${BASE}
# in case the base was imported without a PATH of its own
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data \
 && printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' >/usr/local/bin/redis-server \
 && chmod 755 /usr/local/bin/redis-server
# protected mode off, as in the official image: without a config file Debian's redis-server
# refuses clients from other containers; the compose network is the boundary
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
EOF
  { tail -20 "$work/build-redis.log" >&2; die "redis image build"; }

if [ -z "${SMOKE_TORCH_PIP_ARGS:-}" ] && ls "$WHEELS"/torch-*.whl >/dev/null 2>&1; then
  port=${SMOKE_WHEELS_PORT:-8765}  # fixed: the URL is a build argument, so a new port is a new build
  python3 -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$port" >"$work/wheels.log" 2>&1 &
  wheel_server=$!
  sleep 1; kill -0 "$wheel_server" 2>/dev/null || { cat "$work/wheels.log" >&2; die "serving $WHEELS on port $port"; }
  SMOKE_TORCH_PIP_ARGS="--find-links http://127.0.0.1:$port/"
  log "torch from $WHEELS ($(basename "$(ls "$WHEELS"/torch-*.whl | head -1)")), served on 127.0.0.1:$port"
fi
export SMOKE_TORCH_PIP_ARGS=${SMOKE_TORCH_PIP_ARGS:---index-url https://download.pytorch.org/whl/cpu}
log "building api, worker-cpu and flower (log: $work/build.log)"
"${COMPOSE[@]}" build --force-rm api worker-cpu flower >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; die "compose build"; }
if [ -n "$wheel_server" ]; then kill "$wheel_server" 2>/dev/null || true; wheel_server=; fi
log "images: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^faceedit-smoke/" | tr '\n' ' ')"

# -- 3. up -------------------------------------------------------------------------------------
auth=(); [ -n "${FACEEDIT_API_KEY:-}" ] && auth=(-H "X-API-Key: $FACEEDIT_API_KEY")
api() { curl -fsS --max-time 60 "${auth[@]}" "$@"; }
field() { python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }
wait_for() {  # SECONDS WHAT COMMAND...: poll COMMAND every 2 s until it succeeds
  local limit=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not within ${limit}s"
    sleep 2
  done
}

log "compose --profile cpu up -d redis api worker-cpu"
up=1
"${COMPOSE[@]}" up -d redis api worker-cpu >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up"; }
wait_for 300 "/ready" api "$URL/ready"
log "ready: $(api "$URL/ready")"
ping_worker() { "${COMPOSE[@]}" exec -T worker-cpu celery -A worker.celery_app inspect ping --timeout 5; }
wait_for 300 "the worker's Celery ping" ping_worker
log "worker answers a Celery ping"

# -- 4. one optimised edit, with the worker restarted in the middle -------------------------------
encoded=$(api -F "file=@$PHOTO" "$URL/encode") || die "/encode of $PHOTO"
latent=$(field latent_id <<<"$encoded")
log "encoded $(basename "$PHOTO"): latent $latent, faces found $(field faces_found <<<"$encoded")"
body=$(printf '{"latent_id": "%s", "edits": [{"attribute": "Smiling", "strength": 1.5}], "steps": %d, "lambda1": 0.01, "lambda2": 0.001}' "$latent" "$STEPS")
accepted=$(api -H 'content-type: application/json' -d "$body" "$URL/edits/optimized") || die "POST /edits/optimized"
job=$(field job_id <<<"$accepted")
log "job $job queued ($STEPS steps)"

status() { api "$URL/jobs/$job" >"$work/job.json" && python3 - "$work/job.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print(j["status"], f'{j["step"]}/{j["steps"]}', f'attempt {j["attempts"]}', j.get("error") or "")
EOF
}
deadline=$((SECONDS + 600))
while :; do
  read -r st progress attempt_word attempt error < <(status) || die "GET /jobs/$job"
  case $st in
    running) if [ "${progress%/*}" -ge $((STEPS / 10)) ]; then break; fi ;;
    succeeded | failed) die "the job ended ($st) before the worker could be restarted: raise SMOKE_STEPS" ;;
  esac
  ((SECONDS < deadline)) || die "the job did not get a tenth of the way within 600s ($st $progress)"
  sleep 1
done
log "job running, step $progress, $attempt_word $attempt: restarting the worker container"
"${COMPOSE[@]}" restart -t 2 worker-cpu >"$work/restart.log" 2>&1 || { cat "$work/restart.log" >&2; die "compose restart"; }
log "worker container restarted"

deadline=$((SECONDS + 900)) last=
while :; do
  read -r st progress attempt_word attempt error < <(status) || die "GET /jobs/$job"
  now="$st $progress $attempt_word $attempt"
  # one line per status change, and one per 25% of progress
  key="$st ${attempt} $((${progress%/*} * 4 / STEPS))"
  if [ "$key" != "$last" ]; then log "job $now"; fi
  last=$key
  case $st in
    succeeded) break ;;
    failed) die "the job failed: $error" ;;
  esac
  ((SECONDS < deadline)) || die "the job did not finish within 900s of the restart ($now)"
  sleep 1
done

api -o "$work/result" "$URL/jobs/$job/result" || die "GET /jobs/$job/result"
kind=$(python3 - "$work/result" <<'EOF'
import sys
head = open(sys.argv[1], "rb").read(12)
print("PNG" if head.startswith(b"\x89PNG") else "JPEG" if head.startswith(b"\xff\xd8")
      else "WEBP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else "")
EOF
)
[ -n "$kind" ] || die "the job's result is not an image"
log "result: $kind, $(wc -c <"$work/result") bytes ($work/result); the job ran $attempt time(s)"
"${COMPOSE[@]}" logs --no-color worker-cpu 2>/dev/null | grep -E "faceedit\.optimized_edit.*(received|succeeded)" |
  sed -E 's/^[^|]*\| *//' | cut -c1-160 | while read -r line; do log "worker: $line"; done || true

# -- 5. Flower, behind its basic auth -----------------------------------------------------------
log "compose up -d flower"
"${COMPOSE[@]}" up -d flower >"$work/flower-up.log" 2>&1 || { cat "$work/flower-up.log" >&2; die "compose up flower"; }
flower_workers() {
  curl -fsS --max-time 10 -u "$FLOWER_BASIC_AUTH" "http://127.0.0.1:5555/api/workers?refresh=1" >"$work/flower.json" &&
    python3 -c 'import json, sys; w = json.load(open(sys.argv[1])); sys.exit(0 if w else 1)' "$work/flower.json"
}
wait_for 300 "Flower listing the worker" flower_workers
open_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:5555/api/workers)
[ "$open_code" = 401 ] || die "Flower answered $open_code without credentials (401 expected)"
log "flower: 401 without credentials; with them it lists $(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))))' "$work/flower.json")"

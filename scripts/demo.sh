#!/usr/bin/env bash
# The demo: what a signed health code is and how anyone verifies it offline; the reference
# origin; and the gateway keeping codes, declarations and scans going while the origin fails.
# Usage: scripts/demo.sh PATH-TO-SHOUHU. Everything it writes goes to target/demo/.
set -euo pipefail

shouhu=${1:?usage: scripts/demo.sh PATH-TO-SHOUHU}
out=target/demo
rm -rf "$out"
mkdir -p "$out"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "1. Keys: the origin signs codes from live data; the fallback issuer signs codes from the snapshot when the origin is down. Each has its own key."
origin_kid=$(run "$shouhu" keys generate --role origin --region 370000 --out "$out/keys")
fallback_kid=$(run "$shouhu" keys generate --role fallback --region 370000 --out "$out/keys")
echo "origin key id:   $origin_kid"
echo "fallback key id: $fallback_kid"

step "2. The trust list: every public key a scanner accepts. Scanners keep a copy and verify codes with no network."
run "$shouhu" keys trust-list "$out/keys" > "$out/trust-list.json"
cat "$out/trust-list.json"

step "3. Issue a green code from the origin for one citizen (pseudonymous subject id, masked name, 5-minute expiry)."
subject=00112233445566778899aabbccddeeff
code=$(run "$shouhu" code issue --key "$out/keys/origin-370000-$origin_kid.key.json" \
  --subject "$subject" --colour green --name '张*' --id-last4 123X --ttl 5m)
echo "$code" | tee "$out/code.txt"
echo "(${#code} characters: the QR text)"

step "4. Render its QR (what the citizen shows at the metro gate)."
run "$shouhu" code qr "$code" > "$out/code.svg"
echo "wrote $out/code.svg ($(wc -c < "$out/code.svg") bytes)"

step "5. A scanner verifies it offline against the trust list."
run "$shouhu" code verify --trust-list "$out/trust-list.json" - < "$out/code.txt"

step "6. A forged code (one character changed) is refused, with the reason."
forged="${code:0:40}$( [ "${code:40:1}" = "A" ] && echo B || echo A )${code:41}"
if run "$shouhu" code verify --trust-list "$out/trust-list.json" "$forged" > "$out/forged.json"; then
  echo "demo failed: a forged code verified" >&2; exit 1
fi
cat "$out/forged.json"

step "7. The same code ten minutes later has expired: screenshots die."
later=$(date -u -d '+10 minutes' +%Y-%m-%dT%H:%M:%SZ)
if run "$shouhu" code verify --trust-list "$out/trust-list.json" --at "$later" "$code" > "$out/expired.json"; then
  echo "demo failed: an expired code verified" >&2; exit 1
fi
cat "$out/expired.json"

step "8. A fallback code says so, and a scanner may refuse fallback data older than it allows."
fallback=$("$shouhu" code issue --key "$out/keys/fallback-370000-$fallback_kid.key.json" \
  --subject "$subject" --colour yellow --as-of "$(date -u -d '-20 minutes' +%Y-%m-%dT%H:%M:%SZ)")
run "$shouhu" code verify --trust-list "$out/trust-list.json" "$fallback" | grep -E '"(colour|source|as_of)"'
if run "$shouhu" code verify --trust-list "$out/trust-list.json" --max-fallback-age 15m "$fallback"; then
  echo "demo failed: stale fallback data verified" >&2; exit 1
fi

step "9. Start a private Redis for the snapshot, and the reference origin: the code-issuing system shouhu protects (SQLite, keys and data-source simulators in $out/origin). The origin publishes every citizen's colour to the snapshot."
mkdir -p "$out/origin" "$out/redis"
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$out/redis" --save "" --appendonly no \
  --logfile redis.log > /dev/null &
redis_pid=$!
redis="redis://127.0.0.1:$redis_port"
origin_pid=
proxy_pid=
issuer_pid=
stop_all() {
  for pid in $issuer_pid $proxy_pid $origin_pid $redis_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
echo "redis: $redis (pid $redis_pid)"
# A fixed subject-hash secret keeps the demo's synthetic data the same on every run.
printf 'demo-secret-not-for-production\n' > "$out/origin/hmac.secret"
"$shouhu" origin --data-dir "$out/origin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --redis "$redis" > "$out/origin.stdout" 2> "$out/origin.log" &
origin_pid=$!
# Waits for a server's "listening" line; $1 file, $2 pid, $3 log.
await_listening() {
  for _ in $(seq 1 200); do
    grep -q '^listening ' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; echo "demo failed: a server exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo failed: no listening line in $1" >&2; exit 1
}
await_listening "$out/origin.stdout" "$origin_pid" "$out/origin.log"
cat "$out/origin.stdout"
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
citizen=$(sed -n 's/.*citizen=\([^ ]*\).*/\1/p' "$out/origin.stdout")
health=$(sed -n 's/.*health=\([^ ]*\).*/\1/p' "$out/origin.stdout")
origin_admin=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$out/origin.stdout")
[ -n "$citizen" ] || { echo "demo failed: no listening line" >&2; exit 1; }
token=
token2=
# Like run, but shows the session tokens as $token and $token2.
runt() {
  local shown="$*"
  [ -n "$token2" ] && shown=${shown//$token2/\$token2}
  [ -n "$token" ] && shown=${shown//$token/\$token}
  printf '$ %s\n' "$shown" >&2
  "$@"
}
post() { runt curl -sS -X POST -H 'content-type: application/json' "$@"; echo; }

step "10. Register (the ID number is checked: GB 11643 check digit, birth date, region; only a keyed hash is stored)."
id=11010519491231002X
post "$citizen/api/register" -d "{\"name\":\"张三\",\"id_number\":\"$id\",\"phone\":\"13800138000\",\"address\":\"济南市历下区\"}" | tee "$out/register.json"
post "$citizen/api/register" -d '{"name":"张三","id_number":"110105194912310021","phone":"13800138000","address":"济南"}'

step "11. Log in: a session token (JWT, EdDSA) whose subject is the pseudonymous id."
token=$(post "$citizen/api/login" -d "{\"id_number\":\"$id\",\"phone\":\"13800138000\"}" | tee "$out/login.json" | field token)
subject=$(field subject < "$out/login.json")
echo "subject: $subject"

step "12. Declare today's health (sent twice with the same Idempotency-Key: applied once)."
for _ in 1 2; do
  post "$citizen/api/declare" -H "Authorization: Bearer $token" -H 'Idempotency-Key: demo-day-1' \
    -d '{"temperature":36.6,"symptoms":[],"travel":[]}'
done

step "13. Get the code: the origin asks the three data sources, runs the colour rules and signs."
runt curl -sS "$citizen/api/code" -H "Authorization: Bearer $token" | tee "$out/origin-code.json"; echo
runt curl -sS "$citizen/code" -H "Authorization: Bearer $token" -o "$out/code.html"
echo "wrote $out/code.html (the citizen's page)"

step "14. A scanner verifies it offline against the trust list the origin serves."
run curl -sS "$citizen/.well-known/shouhu/trust-list.json" -o "$out/origin-trust-list.json"
field code < "$out/origin-code.json" > "$out/origin-code.txt"
run "$shouhu" code verify --trust-list "$out/origin-trust-list.json" - < "$out/origin-code.txt"

step "15. The health commission marks the citizen a close contact: the code turns red, and explain says why."
post "$health/admin/subjects/$subject" -d '{"op":"close_contact"}'
# The origin follows each source's change feed and re-colours within a second or so.
colour=
for _ in $(seq 1 50); do
  colour=$(curl -sS "$citizen/api/code" -H "Authorization: Bearer $token" | field colour)
  [ "$colour" = red ] && break
  sleep 0.1
done
echo "colour now: $colour"
[ "$colour" = red ] || { echo "demo failed: the code did not turn red" >&2; exit 1; }
runt curl -sS "$citizen/api/code/explain" -H "Authorization: Bearer $token"; echo

step "16. The snapshot in Redis already holds the red, and the watermark says how complete it is."
run "$shouhu" snapshot stats --redis "$redis"

step "17. Start the gateway, shouhu proxy, in front of the origin. It fetches the origin's session key and trust list, generates its own fallback key on first start, and follows the snapshot in Redis."
"$shouhu" proxy --origin "$citizen" --redis "$redis" --data-dir "$out/proxy" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 > "$out/proxy.stdout" 2> "$out/proxy.log" &
proxy_pid=$!
await_listening "$out/proxy.stdout" "$proxy_pid" "$out/proxy.log"
cat "$out/proxy.stdout"
proxy=$(sed -n 's/^listening \(http:[^ ]*\) admin .*/\1/p' "$out/proxy.stdout")
proxy_admin=$(sed -n 's/^listening .* admin \(http:.*\)$/\1/p' "$out/proxy.stdout")
# Status and X-Shouhu-Source of a GET through the proxy; the body goes to $1.
through() { local to=$1; shift; runt curl -sS -o "$to" -w '%{http_code} X-Shouhu-Source: %header{x-shouhu-source}\n' "$@"; }

step "18. Citizens now go through the gateway. The first request is answered by the origin, the next from the per-user cache. A second citizen registers through it."
through "$out/proxy-code-1.json" "$proxy/api/code" -H "Authorization: Bearer $token"
through "$out/proxy-code-2.json" "$proxy/api/code" -H "Authorization: Bearer $token"
id2=37010219900101001X
post "$proxy/api/register" -d "{\"name\":\"李四\",\"id_number\":\"$id2\",\"phone\":\"13900000001\",\"address\":\"济南市市中区\"}"
token2=$(post "$proxy/api/login" -d "{\"id_number\":\"$id2\",\"phone\":\"13900000001\"}" | field token)
[ -n "$token2" ] || { echo "demo failed: the second citizen could not log in" >&2; exit 1; }

step "19. The origin collapses: it resets every connection (fault injection through its admin API)."
post "$origin_admin/admin/fault" -d '{"mode":"refuse"}'
if curl -sS -m 2 "$citizen/api/code" > /dev/null 2>&1; then echo "demo failed: the origin still answers" >&2; exit 1; fi
echo "origin: refusing connections"

step "20. Through the gateway, nobody waits for the dead origin: the first citizen gets their still-valid red code from the cache, the second a code signed by the fallback issuer from the snapshot (never greener than the origin last said)."
through "$out/proxy-code-3.json" "$proxy/api/code" -H "Authorization: Bearer $token"
[ "$(field colour < "$out/proxy-code-3.json")" = red ] || { echo "demo failed: the first citizen's code is not red" >&2; exit 1; }
colour=
for _ in $(seq 1 50); do
  curl -sS -o "$out/fallback-code.json" "$proxy/api/code" -H "Authorization: Bearer $token2"
  colour=$(field colour < "$out/fallback-code.json")
  [ "$colour" = green ] && break
  sleep 0.1
done
through "$out/fallback-code.json" "$proxy/api/code" -H "Authorization: Bearer $token2"
cat "$out/fallback-code.json"; echo
[ "$(field source < "$out/fallback-code.json")" = fallback ] || { echo "demo failed: no fallback code" >&2; exit 1; }
runt curl -sS "$proxy/code" -H "Authorization: Bearer $token2" -o "$out/fallback-code.html"
echo "wrote $out/fallback-code.html (the same page, with a data-as-of line)"

step "21. A declaration is kept in the write journal and answered 202 with a receipt; a venue scan is verified at the edge with the trust list."
for _ in $(seq 1 20); do
  status=$(curl -sS -o "$out/declare.json" -w '%{http_code}' -X POST "$proxy/api/declare" \
    -H 'content-type: application/json' -H "Authorization: Bearer $token" -H 'Idempotency-Key: demo-day-2' \
    -d '{"temperature":36.8,"symptoms":[],"travel":["青岛"]}')
  [ "$status" = 202 ] && break
  sleep 0.2
done
echo "$status $(cat "$out/declare.json")"
[ "$status" = 202 ] || { echo "demo failed: the declaration was not journalled" >&2; exit 1; }
post "$proxy/api/verify" -d "{\"code\":\"$(field code < "$out/fallback-code.json")\"}"
runt curl -sS "$proxy_admin/status"; echo

step "22. The origin comes back. The gateway's replayer submits the journalled declaration with the citizen's own session and Idempotency-Key: applied once."
post "$origin_admin/admin/fault" -d '{"mode":"none"}'
for _ in $(seq 1 100); do
  curl -sS "$proxy_admin/status" | grep -q '"journal_backlog":0' && break
  sleep 0.1
done
runt curl -sS "$proxy_admin/status"; echo
runt curl -sS "$citizen/api/code/explain" -H "Authorization: Bearer $token" | tee "$out/explain-after.json"; echo
grep -q '"declarations":2' "$out/explain-after.json" || { echo "demo failed: the journalled declaration was not applied once" >&2; exit 1; }

step "23. A scanner holding the gateway's trust list (the origin's key and the gateway's fallback key) verifies the fallback code offline."
run curl -sS "$proxy/.well-known/shouhu/trust-list.json" -o "$out/proxy-trust-list.json"
field code < "$out/fallback-code.json" > "$out/fallback-code.txt"
run "$shouhu" code verify --trust-list "$out/proxy-trust-list.json" --max-fallback-age 15m - < "$out/fallback-code.txt"

step "24. The fallback also runs alone, shouhu issuer (for instance as the backup upstream of an existing nginx). With the origin killed, it signs the first citizen's red code from the same snapshot."
mkdir -p "$out/issuer"
cp "$out/origin/keys/session-key.pub" "$out/issuer/session-key.pub"
"$shouhu" issuer --data-dir "$out/issuer" --redis "$redis" --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 > "$out/issuer.stdout" 2> "$out/issuer.log" &
issuer_pid=$!
await_listening "$out/issuer.stdout" "$issuer_pid" "$out/issuer.log"
issuer=$(sed -n 's/^listening \(http:[^ ]*\).*/\1/p' "$out/issuer.stdout")
kill "$origin_pid"; wait "$origin_pid" 2>/dev/null || true; origin_pid=
runt curl -sS "$issuer/api/code" -H "Authorization: Bearer $token" | tee "$out/issuer-code.json"; echo
[ "$(field colour < "$out/issuer-code.json")" = red ] || { echo "demo failed: the issuer's code is not red" >&2; exit 1; }

step "Done. Files are in $out/."

#!/usr/bin/env bash
# Pass-through and cache-hit throughput of `shouhu proxy` against nginx on this machine.
# See loadtests/README.md ("Peer benchmark: shouhu vs nginx") for what it measures.
#
#   loadtests/peer/proxy-vs-nginx.sh
#
# Environment (all optional):
#   DURATION=8s CONNECTIONS=64 THREADS=2   wrk -d / -c / -t of each measured run
#   WARMUP=2s                              one unmeasured wrk run per target first
#   ROUNDS=3                               rounds; the order nginx/shouhu alternates
#   ADAPTIVE_ADMISSION=true                false: pass-through under a fixed limit instead of
#                                          the adaptive one (the default of a deployment)
#   RESULTS_DIR=DIR                        where results.md and wrk outputs go
#                                          (default: the temp dir, kept after the run)
#   CARGO_TARGET_DIR                       where `cargo build --release` puts the binary
#   SHOUHU_BIN=PATH                        use this binary and skip the build
#
# Everything listens on 127.0.0.1 on free ports; on exit only the processes this script
# started are stopped. Needs: nginx, wrk, redis-server, python3, curl.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-2s}"
ROUNDS="${ROUNDS:-3}"
ADAPTIVE_ADMISSION="${ADAPTIVE_ADMISSION:-true}"

for tool in nginx wrk redis-server python3 curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "proxy-vs-nginx: $tool not found; on Debian: apt-get install nginx wrk redis-server python3 curl" >&2
        exit 1
    fi
done

# --- build -------------------------------------------------------------------------------
# The release profile (fat LTO, codegen-units = 1) is in the root Cargo.toml; a
# comparison build can override it with CARGO_PROFILE_RELEASE_* and another
# CARGO_TARGET_DIR.
if [[ -n "${SHOUHU_BIN:-}" ]]; then
    shouhu="$SHOUHU_BIN"
else
    (cd "$repo" && cargo build --release --locked -p shouhu)
    shouhu="${CARGO_TARGET_DIR:-$repo/target}/release/shouhu"
fi

# --- temp dir and clean-up ---------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/shouhu-peer.XXXXXX")"
results="${RESULTS_DIR:-$tmp/results}"
mkdir -p "$results"
pids=()

cleanup() {
    # Only our own children, by PID: nginx masters stop their workers on TERM.
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    echo "proxy-vs-nginx: logs in $tmp" >&2
}
trap cleanup EXIT

# N free loopback ports, held open together so no two are the same.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# render TEMPLATE OUT KEY=VALUE...: replaces each @KEY@ of the template.
render() {
    python3 - "$@" <<'PY'
import sys
template, out, *pairs = sys.argv[1:]
text = open(template, encoding="utf-8").read()
for pair in pairs:
    key, value = pair.split("=", 1)
    text = text.replace(f"@{key}@", value)
open(out, "w", encoding="utf-8").write(text)
PY
}

# wait_for_line PID OUT ERR PREFIX: the first line of OUT that starts with PREFIX, within
# 30 s; fails at once, showing ERR, if process PID exits first (a bad config exits 64).
wait_for_line() {
    local pid="$1" out="$2" err="$3" prefix="$4" line
    for _ in $(seq 300); do
        line="$(grep -m1 "^$prefix" "$out" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            echo "$line"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "proxy-vs-nginx: process $pid exited before printing '$prefix':" >&2
            cat "$err" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "proxy-vs-nginx: no '$prefix' line in $out within 30s:" >&2
    cat "$err" >&2
    return 1
}

# wait_for_port PORT: until something accepts on 127.0.0.1:PORT, within 30 s.
wait_for_port() {
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "proxy-vs-nginx: nothing listens on 127.0.0.1:$1 after 30s" >&2
    return 1
}

read -r redis_port upstream_port pass_port cache_port < <(free_ports 4)
user="$(id -un)"
group="$(id -gn)"

# --- redis and the reference origin ------------------------------------------------------
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=("$!")
wait_for_port "$redis_port"

render "$here/shouhu-origin.toml.in" "$tmp/origin.toml"
RUST_LOG=warn "$shouhu" origin --config "$tmp/origin.toml" --data-dir "$tmp/origin-data" \
    --redis "redis://127.0.0.1:$redis_port" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$tmp/origin.out" 2>"$tmp/origin.err" &
origin_pid=$!
pids+=("$origin_pid")
origin_line="$(wait_for_line "$origin_pid" "$tmp/origin.out" "$tmp/origin.err" "listening ")"
origin_url="$(tr ' ' '\n' <<<"$origin_line" | sed -n 's/^citizen=//p')"
# The origin writes its session-token public key to {data_dir}/keys (key_dir's default).
session_key="$tmp/origin-data/keys/session-key.pub"
[[ -f "$session_key" ]] || { echo "proxy-vs-nginx: no $session_key" >&2; exit 1; }

# One citizen: a GB 11643 ID number with its check digit, registered and logged in at the
# origin itself (not through the proxy); the session token is what wrk sends.
id_number="$(python3 -c '
body = "370102" + "19900101" + "042"
w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
print(body + "10X98765432"[sum(int(c) * k for c, k in zip(body, w)) % 11])')"
phone="13900000042"
curl -fsS -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"name\":\"张三\",\"id_number\":\"$id_number\",\"phone\":\"$phone\",\"address\":\"济南市历下区\"}" \
    "$origin_url/api/register"
token="$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"id_number\":\"$id_number\",\"phone\":\"$phone\"}" "$origin_url/api/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

# --- the static upstream -----------------------------------------------------------------
mkdir -p "$tmp/upstream-tmp" "$tmp/peer-tmp"
upstream_body="$(python3 -c 'print("0123456789abcdef" * 64, end="")')"   # 1 KiB
render "$here/nginx-upstream.conf.in" "$tmp/nginx-upstream.conf" DIR="$tmp" USER="$user" \
    GROUP="$group" UPSTREAM_PORT="$upstream_port" UPSTREAM_BODY="$upstream_body"
nginx -p "$tmp" -c "$tmp/nginx-upstream.conf" -e "$tmp/upstream-error.log" -g 'daemon off;' \
    2>>"$tmp/upstream-error.log" &
pids+=("$!")
wait_for_port "$upstream_port"

# --- the two shouhu proxies (one thread each) --------------------------------------------
# RUST_LOG=warn: nothing is logged per request.
render "$here/shouhu-pass.toml.in" "$tmp/shouhu-pass.toml" DIR="$tmp" \
    UPSTREAM_PORT="$upstream_port" SESSION_KEY="$session_key" ADAPTIVE="$ADAPTIVE_ADMISSION"
RUST_LOG=warn "$shouhu" proxy --config "$tmp/shouhu-pass.toml" \
    >"$tmp/proxy-pass.out" 2>"$tmp/proxy-pass.err" &
proxy_pass_pid=$!
pids+=("$proxy_pass_pid")
render "$here/shouhu-cache.toml.in" "$tmp/shouhu-cache.toml" DIR="$tmp" \
    ORIGIN_URL="$origin_url" SESSION_KEY="$session_key"
RUST_LOG=warn "$shouhu" proxy --config "$tmp/shouhu-cache.toml" \
    >"$tmp/proxy-cache.out" 2>"$tmp/proxy-cache.err" &
proxy_cache_pid=$!
pids+=("$proxy_cache_pid")
# The proxy prints `listening http://ADDR admin http://ADDR`.
line="$(wait_for_line "$proxy_pass_pid" "$tmp/proxy-pass.out" "$tmp/proxy-pass.err" "listening ")"
shouhu_pass="$(awk '{print $2}' <<<"$line")"
line="$(wait_for_line "$proxy_cache_pid" "$tmp/proxy-cache.out" "$tmp/proxy-cache.err" "listening ")"
shouhu_cache="$(awk '{print $2}' <<<"$line")"

# Fill the per-user cache and check the second answer comes from it.
curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$shouhu_cache/api/code"
curl -fsS -D "$tmp/cached.headers" -o "$tmp/cached.body" -H "Authorization: Bearer $token" \
    "$shouhu_cache/api/code"
source_header="$(tr -d '\r' <"$tmp/cached.headers" | sed -n 's/^[Xx]-[Ss]houhu-[Ss]ource: *//p')"
if [[ "$source_header" != "cache" ]]; then
    echo "proxy-vs-nginx: GET /api/code came from '$source_header', not the cache" >&2
    exit 1
fi
content_type="$(tr -d '\r' <"$tmp/cached.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: *//p')"

# --- nginx, the peer ---------------------------------------------------------------------
# The cached body as an nginx string: escape \ and ", and write ${dollar} for $.
cached_literal="$(python3 -c '
import sys
b = open(sys.argv[1], encoding="utf-8").read()
print(b.replace("\\", "\\\\").replace("\"", "\\\"").replace("$", "${dollar}"), end="")' "$tmp/cached.body")"
render "$here/nginx-peer.conf.in" "$tmp/nginx-peer.conf" DIR="$tmp" USER="$user" \
    GROUP="$group" UPSTREAM_PORT="$upstream_port" PASS_PORT="$pass_port" \
    CACHE_PORT="$cache_port" CONTENT_TYPE="$content_type" CACHED_BODY="$cached_literal"
nginx -p "$tmp" -c "$tmp/nginx-peer.conf" -e "$tmp/peer-error.log" -g 'daemon off;' \
    2>>"$tmp/peer-error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_for_port "$pass_port"
wait_for_port "$cache_port"

nginx_pass="http://127.0.0.1:$pass_port"
nginx_cache="http://127.0.0.1:$cache_port"

# Both sides must answer the same bytes before anything is timed.
same_body() { # URL_A URL_B [curl args]
    local a="$1" b="$2"
    shift 2
    if ! cmp -s <(curl -fsS "$@" "$a") <(curl -fsS "$@" "$b"); then
        echo "proxy-vs-nginx: $a and $b answer different bodies" >&2
        exit 1
    fi
}
same_body "$nginx_pass/bench/pass" "$shouhu_pass/bench/pass"
same_body "$nginx_cache/api/code" "$shouhu_cache/api/code" -H "Authorization: Bearer $token"

# --- measuring ---------------------------------------------------------------------------
# CPU time (user + system, in clock ticks) used so far by a process, all its threads, and
# its direct children: for nginx the master plus its worker, for shouhu the one process.
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
        # Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name.
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
clk_tck="$(getconf CLK_TCK)"

# run LABEL PID URL [wrk args]: one measured wrk run; appends a row to $results/runs.tsv.
run() {
    local label="$1" pid="$2" url="$3" out before after
    shift 3
    out="$results/wrk-$label-round$round.txt"
    before="$(cpu_ticks "$pid")"
    wrk "-t$THREADS" "-c$CONNECTIONS" "-d$DURATION" --latency "$@" "$url" >"$out"
    after="$(cpu_ticks "$pid")"
    python3 - "$out" "$label" "$round" "$((after - before))" "$clk_tck" \
        >>"$results/runs.tsv" <<'PY'
import re, sys
path, label, rnd, ticks, clk = sys.argv[1:]
text = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
reqs = int(re.search(r"(\d+) requests in", text).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
p99_ms = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
cpu_us = int(ticks) / int(clk) * 1e6 / max(reqs, 1)
print(f"{label}\t{rnd}\t{rps:.0f}\t{p99_ms:.2f}\t{cpu_us:.1f}\t"
      f"{bad.group(1) if bad else 0}\t{errors.group(0) if errors else ''}")
PY
    tail -n1 "$results/runs.tsv" | awk -F'\t' '{printf "  %-14s round %s: %8s req/s  p99 %6s ms  cpu %5s us/req  non-2xx %s %s\n", $1, $2, $3, $4, $5, $6, $7}'
}

auth=(-H "Authorization: Bearer $token")
variant() { # pass|cache WHO
    case "$1/$2" in
    pass/nginx) run nginx-pass "$nginx_pid" "$nginx_pass/bench/pass" ;;
    pass/shouhu) run shouhu-pass "$proxy_pass_pid" "$shouhu_pass/bench/pass" ;;
    cache/nginx) run nginx-cache "$nginx_pid" "$nginx_cache/api/code" "${auth[@]}" ;;
    cache/shouhu) run shouhu-cache "$proxy_cache_pid" "$shouhu_cache/api/code" "${auth[@]}" ;;
    esac
}

echo "proxy-vs-nginx: warm-up ($WARMUP per target)"
for url in "$nginx_pass/bench/pass" "$shouhu_pass/bench/pass"; do
    wrk "-t$THREADS" "-c$CONNECTIONS" "-d$WARMUP" "$url" >/dev/null
done
for url in "$nginx_cache/api/code" "$shouhu_cache/api/code"; do
    wrk "-t$THREADS" "-c$CONNECTIONS" "-d$WARMUP" "${auth[@]}" "$url" >/dev/null
done

printf 'label\tround\treq_per_s\tp99_ms\tcpu_us_per_req\tnon_2xx\tsocket_errors\n' \
    >"$results/runs.tsv"
for round in $(seq "$ROUNDS"); do
    # Odd rounds measure nginx first, even rounds shouhu first: the machine's speed drifts.
    if ((round % 2)); then order=(nginx shouhu); else order=(shouhu nginx); fi
    echo "proxy-vs-nginx: round $round (${order[*]})"
    for v in pass cache; do
        for who in "${order[@]}"; do
            variant "$v" "$who"
        done
    done
done

# Still cache hits at the end? (A miss would have measured the origin instead.)
curl -fsS -D "$tmp/after.headers" -o /dev/null "${auth[@]}" "$shouhu_cache/api/code"
if ! tr -d '\r' <"$tmp/after.headers" | grep -qi '^x-shouhu-source: cache$'; then
    echo "proxy-vs-nginx: the cache-hit variant stopped hitting the cache" >&2
    exit 1
fi

# --- the table ---------------------------------------------------------------------------
command="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency [-H 'Authorization: Bearer TOKEN'] URL"
if [[ -n "${SHOUHU_BIN:-}" ]]; then
    revision="a given binary"
else
    revision="built from $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
fi
python3 - "$results/runs.tsv" "$command" "$ROUNDS" "$revision" "$shouhu" "$ADAPTIVE_ADMISSION" \
    >"$results/results.md" <<'PY'
import statistics, sys, platform, os
path, command, rounds, revision, binary, adaptive = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
by = {}
for label, rnd, rps, p99, cpu, bad, err in rows:
    by.setdefault(label, []).append((int(rnd), float(rps), float(p99), float(cpu), int(bad), err))
med = {k: (statistics.median(r[1] for r in v), statistics.median(r[2] for r in v),
           statistics.median(r[3] for r in v)) for k, v in by.items()}
print(f"# shouhu proxy vs nginx, {platform.node()}, {os.cpu_count()} cores\n")
print(f"Each run: `{command}`; {rounds} rounds, order alternating; one worker each.")
print(f"shouhu: {binary}, {revision}; pass-through admission adaptive = {adaptive}.\n")
print("| run | round | req/s | p99 ms | cpu µs/req | non-2xx |")
print("|---|---|---|---|---|---|")
for label, v in by.items():
    for rnd, rps, p99, cpu, bad, err in v:
        print(f"| {label} | {rnd} | {rps:.0f} | {p99:.2f} | {cpu:.1f} | {bad}{' ' + err if err else ''} |")
print("\n| variant | nginx req/s | shouhu req/s | shouhu/nginx req/s | nginx cpu µs/req | shouhu cpu µs/req | shouhu/nginx cpu | p99 ms nginx / shouhu |")
print("|---|---|---|---|---|---|---|---|")
for v, name in (("pass", "pass-through (proxy_pass vs shouhu `other`)"),
                ("cache", "cache hit (nginx `return 200` vs shouhu cache)")):
    n, s = med[f"nginx-{v}"], med[f"shouhu-{v}"]
    print(f"| {name} | {n[0]:.0f} | {s[0]:.0f} | {s[0] / n[0]:.2f} | {n[2]:.1f} | {s[2]:.1f} | {s[2] / n[2]:.2f} | {n[1]:.2f} / {s[1]:.2f} |")
print("\nMedians of the rounds. cpu µs/req is the server's own CPU time (user + system, "
      "from /proc) over requests completed; it drifts less than req/s on a shared machine.")
if any(int(r[5]) for r in rows):
    print("\n**Some runs had non-2xx answers: the figures are not comparable.**")
PY
cat "$results/results.md"
if awk -F'\t' 'NR > 1 && $6 != 0 { bad = 1 } END { exit !bad }' "$results/runs.tsv"; then
    echo "proxy-vs-nginx: some runs had non-2xx answers" >&2
    exit 1
fi

#!/usr/bin/env bash
# The demo: what a signed health code is and how anyone verifies it offline.
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

step "Done. Files are in $out/."

#!/usr/bin/env bash
# Runs a fedsynth consortium (coordinator + 3 banks) as four separate network hosts on this machine,
# using Linux network namespaces joined by veth pairs to a bridge, cuts bank 3's link in the middle of
# round 2, shows the round committing with the remaining banks, restores the link, shows bank 3
# reconnecting and contributing to a later round, and tears everything down on exit.
#
# This is the runnable stand-in for docker/compose.yaml on machines without Docker.
#
# Usage (root, from anywhere):   sudo scripts/netns-consortium.sh
# Tunables (environment):        FS_ROUNDS=12 FS_ROWS=3000 FS_LOCAL_STEPS=40 FS_BATCH_SIZE=64
#                                FS_DEADLINE=15 FS_CUT_SECONDS=35 FS_TIMEOUT=240
#                                FS_WORK_DIR=<dir> FS_KEEP=1 (keep logs and data)
#
# Addressing: 10.231.0.0/24 exists only inside the namespaces this script creates (fs-hub, fs-coord,
# fs-bank1..3). No namespace has a default route and nothing is attached to the root namespace, so no
# packet can leave the machine; all traffic stays between these test hosts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${FS_ROUNDS:-12}"
ROWS="${FS_ROWS:-3000}"
# Enough local steps that a round lasts a few seconds: the cut has to land before bank 3 reports.
LOCAL_STEPS="${FS_LOCAL_STEPS:-40}"
BATCH_SIZE="${FS_BATCH_SIZE:-64}"
DEADLINE="${FS_DEADLINE:-15}"
# The link stays down at least this long: longer than socket.io's ping interval + timeout (10 s + 20 s
# on the coordinator), so both ends declare the connection dead and bank 3 must really reconnect.
CUT_SECONDS="${FS_CUT_SECONDS:-35}"
TIMEOUT="${FS_TIMEOUT:-240}"
PORT=7600
SUBNET=10.231.0
HUB=fs-hub
HOSTS=(coord bank1 bank2 bank3)
declare -A ADDR=([coord]=$SUBNET.1 [bank1]=$SUBNET.11 [bank2]=$SUBNET.12 [bank3]=$SUBNET.13)
COORD_URL="http://${ADDR[coord]}:$PORT"

say() { printf '\n[netns-consortium %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '\n[netns-consortium] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------- preflight: explain clearly what is missing ----------
[[ "$(id -u)" == 0 ]] || die "needs root (it creates network namespaces and veth links); run: sudo $0"
command -v ip >/dev/null 2>&1 || die "needs iproute2's 'ip' command (Debian/Ubuntu: apt-get install iproute2)"
command -v node >/dev/null 2>&1 || die "needs node (>= 20) on PATH"
[[ -d "$REPO/node_modules" ]] || die "no node_modules in $REPO: run 'npm ci' first"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 4 ]] || die "FS_ROUNDS must be an integer >= 4 (round 2 is cut, bank 3 must rejoin later), got '$ROUNDS'"
for ns in "$HUB" "${HOSTS[@]/#/fs-}"; do
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    die "namespace $ns already exists (another run, or a stale one): remove it with 'ip netns del $ns'"
  fi
done
PROBE="fs-probe-$$"
ip netns add "$PROBE" 2>/dev/null || die "'ip netns add' failed: this kernel/container does not allow network namespaces (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
ip netns del "$PROBE"

WORK="${FS_WORK_DIR:-$(mktemp -d /tmp/fedsynth-netns.XXXXXX)}"
mkdir -p "$WORK"
LOG="$WORK/coordinator.log"
PIDS=()
NS_CREATED=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  # Anything still running inside our namespaces was started by this script.
  for ns in "${NS_CREATED[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for ns in "${NS_CREATED[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ $rc -ne 0 && -f "$LOG" ]]; then
    echo "--- last coordinator log lines ($LOG) ---" >&2
    tail -n 25 "$LOG" | cut -c1-400 >&2
    for h in bank1 bank2 bank3; do
      [[ -f "$WORK/$h.log" ]] && { echo "--- last $h log lines ---" >&2; tail -n 8 "$WORK/$h.log" | cut -c1-400 >&2; }
    done
  fi
  if [[ "${FS_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
    echo "[netns-consortium] logs and data kept in $WORK" >&2
  elif [[ -z "${FS_WORK_DIR:-}" ]]; then
    rm -rf "$WORK"
  fi
  echo "[netns-consortium] cleaned up: namespaces ${NS_CREATED[*]:-none} removed, processes stopped (exit $rc)" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fedsynth() { node "$REPO/bin/fedsynth.mjs" "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "fs-$ns" "$@"; }

# Waits until the coordinator's JSON log has a line matching an extended regex; prints that line.
DEADLINE_AT=$(( $(date +%s) + TIMEOUT ))
wait_log() {
  local pattern=$1 what=$2 line
  while true; do
    line=$(grep -E "$pattern" "$LOG" 2>/dev/null | head -n 1 || true)
    [[ -n "$line" ]] && { printf '%s\n' "$line"; return 0; }
    kill -0 "${PIDS[0]}" 2>/dev/null || die "the coordinator exited while waiting for $what"
    (( $(date +%s) < DEADLINE_AT )) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.1
  done
}
# Like wait_log, but only counts lines after line number $1 of the log.
wait_log_after() {
  local from=$1 pattern=$2 what=$3 line
  while true; do
    line=$(tail -n "+$((from + 1))" "$LOG" 2>/dev/null | grep -E "$pattern" | head -n 1 || true)
    [[ -n "$line" ]] && { printf '%s\n' "$line"; return 0; }
    kill -0 "${PIDS[0]}" 2>/dev/null || die "the coordinator exited while waiting for $what"
    (( $(date +%s) < DEADLINE_AT )) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.5
  done
}
field() { # field NAME JSONLINE -> value of a top-level scalar field
  node -e 'const o = JSON.parse(process.argv[2]); const v = o[process.argv[1]]; process.stdout.write(v === undefined ? "" : String(v))' "$1" "$2"
}

# ---------- 1. the network: four hosts on a private bridge ----------
say "1/7 creating hosts: namespaces $HUB (bridge), fs-coord, fs-bank1, fs-bank2, fs-bank3"
ip netns add "$HUB"; NS_CREATED+=("$HUB")
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
ip -n "$HUB" link set lo up
for h in "${HOSTS[@]}"; do
  ip netns add "fs-$h"; NS_CREATED+=("fs-$h")
  # One veth pair per host: fsv-<host> stays on the bridge in the hub, eth0 is the host's only NIC.
  ip -n "$HUB" link add "fsv-$h" type veth peer name eth0 netns "fs-$h"
  ip -n "$HUB" link set "fsv-$h" master br0 up
  ip -n "fs-$h" link set lo up
  ip -n "fs-$h" addr add "${ADDR[$h]}/24" dev eth0
  ip -n "fs-$h" link set eth0 up
  echo "    fs-$h: eth0 ${ADDR[$h]}/24 <-> $HUB:fsv-$h (no default route)"
done

# ---------- 2. data and identities, each made on its own host ----------
say "2/7 simulating 3 banks' data ($ROWS rows in total) in $WORK/data"
fedsynth simulate-banks --banks 3 --rows "$ROWS" --out "$WORK/data" --seed 42 >/dev/null
mkdir -p "$WORK/keys"
say "3/7 generating keys: each bank on its own host; the public identities form the allow-list (coordinator) = the consortium directory (banks)"
in_ns coord node "$REPO/bin/fedsynth.mjs" keygen --out "$WORK/keys/coordinator.json" --id coordinator >"$WORK/keys/coordinator.pub.json" 2>/dev/null
for i in 1 2 3; do
  in_ns "bank$i" node "$REPO/bin/fedsynth.mjs" keygen --out "$WORK/keys/bank-$i.json" --id "bank-$i" >"$WORK/keys/bank-$i.pub.json" 2>/dev/null
done
# node -e: argv[1] is allow.json, then the coordinator identity, then the banks (the allow-list holds banks only).
node -e 'const fs = require("fs"); const ids = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, "utf8"))); fs.writeFileSync(process.argv[1], JSON.stringify(ids.slice(1), null, 2)); for (const i of ids) console.log(`    ${i.id.padEnd(12)} fingerprint ${i.fingerprint}`)' \
  "$WORK/allow.json" "$WORK/keys/coordinator.pub.json" "$WORK/keys/bank-1.pub.json" "$WORK/keys/bank-2.pub.json" "$WORK/keys/bank-3.pub.json" \
  || die "could not build the allow-list from keygen output"
COORD_KEY=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).signPublicKey)' "$WORK/keys/coordinator.pub.json")

# ---------- 3. the coordinator on its host ----------
# A round must commit with 2 of the 3 banks once one link is cut, so this run opts out of secure
# aggregation (which the coordinator requires, by default, for rounds of 3 or more banks).
say "4/7 starting the coordinator on fs-coord (${ADDR[coord]}:$PORT): $ROUNDS rounds, min 2 banks, ${DEADLINE}s deadline"
FEDSYNTH_LOG_FORMAT=json ip netns exec fs-coord node "$REPO/bin/fedsynth.mjs" coordinator \
  --host "${ADDR[coord]}" --port "$PORT" --schema "$WORK/data/schema.json" --state-dir "$WORK/state" \
  --key "$WORK/keys/coordinator.json" --allow-list "$WORK/allow.json" \
  --min-clients 2 --insecure-aggregation --rounds "$ROUNDS" --local-steps "$LOCAL_STEPS" --batch-size "$BATCH_SIZE" \
  --deadline "$DEADLINE" --wait-for-clients 3 --update-clip-norm 1 --exit-when-finished \
  >"$WORK/coordinator.out" 2>"$LOG" &
PIDS+=($!)
# Health is checked from bank 1's host: proves the coordinator is reachable across the bridge.
until in_ns bank1 node -e "fetch('$COORD_URL/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" 2>/dev/null; do
  kill -0 "${PIDS[0]}" 2>/dev/null || die "the coordinator exited during start-up"
  (( $(date +%s) < DEADLINE_AT )) || die "the coordinator's /healthz did not answer from fs-bank1"
  sleep 0.5
done
echo "    GET $COORD_URL/healthz from fs-bank1: ok"

# ---------- 4. three agents, each on its own host ----------
say "5/7 starting 3 bank agents (fs-bank1..3), each reading only its own CSV"
for i in 1 2 3; do
  FEDSYNTH_LOG_FORMAT=json ip netns exec "fs-bank$i" node "$REPO/bin/fedsynth.mjs" agent \
    --coordinator "$COORD_URL" --bank-id "bank-$i" --data "$WORK/data/bank-$i.csv" --schema "$WORK/data/schema.json" \
    --key "$WORK/keys/bank-$i.json" --coordinator-key "$COORD_KEY" --consortium-directory "$WORK/allow.json" --state-dir "$WORK/bank-$i-state" \
    --epsilon-max 20 --dp-rounds "$((ROUNDS + 3))" --exit-when-finished \
    >"$WORK/bank$i.out" 2>"$WORK/bank$i.log" &
  PIDS+=($!)
done
line=$(wait_log '"event":"round_started".*"round":1[,}]' "round 1 to start")
echo "    round 1 started with: $(field participants "$line")"
line=$(wait_log '"event":"round_committed".*"round":1[,}]' "round 1 to commit")
echo "    round 1 committed: banks=$(field banks "$line") dropped=$(field dropped "$line")"
# Every bank holds the consortium directory (the allow-list): secure-aggregation key-list verification is on.
for i in 1 2 3; do
  v=$(node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).secureAggregation.keyListVerification))' "$WORK/bank-$i-state/agent-status.json" 2>/dev/null || true)
  [[ "$v" == verified ]] || die "bank $i: secure-aggregation key-list verification is '$v', expected 'verified' (see $WORK/bank-$i-state/agent-status.json)"
done
echo "    key-list verification: on at all 3 banks (consortium directory = allow.json)"

# ---------- 5. cut bank 3 in the middle of round 2 ----------
line=$(wait_log '"event":"round_started".*"round":2[,}]' "round 2 to start")
echo "    round 2 started with: $(field participants "$line")"
say "6/7 CUTTING bank 3's link (ip -n $HUB link set fsv-bank3 down) while round 2 is in progress"
ip -n "$HUB" link set fsv-bank3 down
CUT_TS=$(date +%s)
CUT_AT=$(wc -l <"$LOG")
if grep -qE '"event":"update_received","round":2,"bank":"bank-3"' "$LOG"; then
  die "bank 3 had already sent its round-2 update before the cut: rounds are too short here, raise FS_LOCAL_STEPS (now $LOCAL_STEPS)"
fi
echo "    bank 3 is still training round 2; its update cannot reach the coordinator now"
line=$(wait_log '"event":"round_committed".*"round":2[,}]' "round 2 to commit without bank 3")
BANKS=$(field banks "$line"); DROPPED=$(field dropped "$line")
echo "    round 2 committed: banks=$BANKS dropped=$DROPPED"
grep -E '"event":"bank_dropped"' "$LOG" | sed 's/^/    coordinator: /' || true
if [[ "$BANKS" != 2 && ! "${DROPPED:-0}" -ge 1 ]]; then
  die "round 2 was expected to commit with 2 banks / >= 1 dropped, got banks=$BANKS dropped=$DROPPED"
fi
echo "    => the round completed with the remaining banks; bank 3's update was never needed."

# ---------- 6. restore the link, bank 3 comes back ----------
HOLD=$(( CUT_TS + CUT_SECONDS - $(date +%s) ))
if (( HOLD > 0 )); then
  echo "    keeping the link down ${HOLD}s more, past the ping timeout, so both ends drop the connection"
  sleep "$HOLD"
fi
grep -E '"event":"bank_disconnected".*"bank":"bank-3"' "$LOG" | tail -n 1 | sed 's/^/    coordinator: /' || true
say "7/7 RESTORING bank 3's link; its agent reconnects with backoff and rejoins a later round"
ip -n "$HUB" link set fsv-bank3 up
RESTORED_AT=$(wc -l <"$LOG")
line=$(wait_log_after "$CUT_AT" '"event":"bank_registered".*"bank":"bank-3"' "bank 3 to reconnect")
echo "    bank-3 registered again (connected: $(field connected "$line"))"
line=$(wait_log_after "$RESTORED_AT" '"event":"update_received".*"bank":"bank-3"' "an update from bank 3 after the link came back")
ROUND_BACK=$(field round "$line")
echo "    bank-3 sent its update for round $ROUND_BACK"
line=$(wait_log '"event":"round_committed".*"round":'"$ROUND_BACK"'[,}]' "round $ROUND_BACK to commit")
echo "    round $ROUND_BACK committed: banks=$(field banks "$line") dropped=$(field dropped "$line")"
line=$(wait_log '"event":"training_finished"' "training to finish")
echo "    training finished: $(field rounds "$line") rounds, model version $(field modelVersion "$line")"

echo
echo "round summary (from the coordinator's log):"
grep -E '"event":"round_committed"' "$LOG" | while IFS= read -r l; do
  echo "    round $(field round "$l"): banks=$(field banks "$l") dropped=$(field dropped "$l")"
done
fedsynth sample --model "$WORK/state/latest.ckpt" --rows 200 --out "$WORK/synthetic.csv" >/dev/null 2>&1 \
  && echo "    sampled 200 synthetic rows from the global model ($(head -n 1 "$WORK/synthetic.csv" | tr ',' ' ' | wc -w) columns)"
echo
echo "NETNS CONSORTIUM OK: round 2 committed without bank 3 (link cut); bank 3 rejoined in round $ROUND_BACK"

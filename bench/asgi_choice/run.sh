#!/usr/bin/env bash
# Reproduces every number in README.md.
#
#   bash bench/asgi_choice/run.sh                 # all sections, 3 rounds (~40 min)
#   ROUNDS=1 bash bench/asgi_choice/run.sh get put small
#
# Sections: setup limits get put slowdisk small mixed rss   (default: all of them)
# Env: VENV (default: repo .venv)  BENCH_DATA (default /work/asgi_bench_data)
#      OUT (results dir)  ROUNDS (repeats of get/put/small/mixed, default 3; slowdisk:
#      SLOW_ROUNDS, default 2)
#      HYPERCORN=0 to skip hypercorn (otherwise installed into $HC_VENV, not the main venv)
#
# Servers of one section run side by side on PORT, PORT+1, PORT+2 and are measured in
# rotating order inside each round, so that load from other tenants of this shared
# 2-core machine hits them alike.  SERVERS (default "uvicorn granian hypercorn").
# The slowdisk section (and one limits line) needs root and a cgroup-v1 blkio controller:
# it puts the servers in a child cgroup with blkio.throttle.write_bps_device = 300 MB/s
# (throttles the writeback that fdatasync/sync_file_range submit) and removes it after.
#
# Everything talks to 127.0.0.1 only; every loop is bounded by a count, and every
# load run by a duration plus `timeout`.  Results: $OUT/results.jsonl, summarised
# into $OUT/results.md by summarize.py.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-$(cd "$HERE/../.." && pwd)/.venv}
PY=$VENV/bin/python
HC_VENV=${HC_VENV:-/tmp/asgi_choice_hypercorn}
export BENCH_DATA=${BENCH_DATA:-/work/asgi_bench_data}
OUT=${OUT:-$HERE/results/$(date +%Y%m%d-%H%M%S)}
ROUNDS=${ROUNDS:-3}
HYPERCORN=${HYPERCORN:-1}
SERVERS=${SERVERS:-"uvicorn granian hypercorn"}
PORT=${PORT:-18300}
N=5                 # measured repetitions per large-transfer data point (median reported)
DUR=10              # seconds per wrk/ab run
CONNS=32
CGROUP=/sys/fs/cgroup/blkio/asgi_choice_slowdisk   # only for the "slowdisk" section
SLOW_BPS=300000000                                 # 300 MB/s, the figure quoted for this disk
SECTIONS=${*:-"setup limits get put slowdisk small mixed rss"}

mkdir -p "$OUT"
RES=$OUT/results.jsonl
LOG=$OUT/run.log
echo "# $(date -Is) sections=[$SECTIONS] rounds=$ROUNDS" | tee -a "$LOG"

has() { [[ " $SECTIONS " == *" $1 "* ]]; }
rec() { echo "$1" >> "$RES"; echo "$1" | tee -a "$LOG" >/dev/null; }
median() { "$PY" -c 'import sys,statistics;v=[float(x) for x in sys.argv[1:]];print(round(statistics.median(v),1))' "$@"; }

server_ok() {
  [[ $1 == hypercorn ]] && { [[ $HYPERCORN == 1 && -x $HC_VENV/bin/hypercorn ]] || return 1; }
  return 0
}

port_of() { case $1 in uvicorn) echo $PORT;; granian) echo $((PORT + 1));; hypercorn) echo $((PORT + 2));; esac; }
declare -A SPIDS=()

# start_server SERVER APP WORKERS [slow]  -> SPIDS[SERVER] (a session leader: kill by -pid)
start_server() {
  local srv=$1 app=$2 workers=$3 slow=${4:-} port cmd
  port=$(port_of "$srv")
  case $srv in
    uvicorn)   cmd="$VENV/bin/uvicorn --app-dir $HERE --host 127.0.0.1 --port $port --loop uvloop --http httptools --no-access-log --log-level warning --workers $workers $app:app" ;;
    granian)   cmd="$VENV/bin/granian --interface asgi --working-dir $HERE --host 127.0.0.1 --port $port --loop uvloop --log-level warning --workers $workers $app:app" ;;
    hypercorn) cmd="env PYTHONPATH=$HERE $HC_VENV/bin/hypercorn --worker-class uvloop --workers $workers --bind 127.0.0.1:$port $app:app" ;;
  esac
  if [[ -n $slow ]]; then
    # join the throttled blkio cgroup first; children (workers, threads) inherit it
    setsid sh -c "echo \$\$ > $CGROUP/cgroup.procs && exec $cmd" >>"$OUT/server.log" 2>&1 &
  else
    setsid $cmd >>"$OUT/server.log" 2>&1 &
  fi
  SPIDS[$srv]=$!
  local i
  for i in $(seq 1 100); do   # <= 20 s
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/small"; then sleep 0.5; return 0; fi
    sleep 0.2
  done
  echo "server $srv $app did not start" | tee -a "$LOG"; stop_server "$srv"; return 1
}

stop_server() {
  local srv=$1 pid=${SPIDS[$1]:-} i
  [[ -n $pid ]] || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "SPIDS[$srv]"
  sleep 0.3
}
stop_all() { local s; for s in "${!SPIDS[@]}"; do stop_server "$s"; done; }
trap stop_all EXIT

# start_all APP WORKERS [slow] -> RUNNING (servers that came up)
start_all() {
  RUNNING=()
  local s
  for s in $SERVERS; do
    server_ok "$s" || continue
    start_server "$s" "$@" && RUNNING+=("$s")
  done
}
# servers of RUNNING, rotated by round so no server is always first
rotated() { local r=$1 n=${#RUNNING[@]} i; for i in $(seq 0 $((n - 1))); do echo "${RUNNING[$(( (i + r) % n ))]}"; done; }
# CPU time (1/100 s ticks, user+sys, all threads) of every process in a server's session
cpu_ticks() {
  local pid=${SPIDS[$1]} p t=0 x
  for p in $(ps -o pid= -s "$pid"); do
    x=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0); t=$((t + ${x:-0}))
  done
  echo $t
}
psi() { awk '/^some/ {sub("avg10=","",$2); print $2}' /proc/pressure/cpu 2>/dev/null || echo null; }

curl_get() {  # curl_get LABEL URL [RANGE] -> median MB/s over N runs (+1 warm-up)
  local url=$1 range=${2:-} r=() i s
  for i in $(seq 0 $N); do
    if [[ -n $range ]]; then
      s=$(curl -s --max-time 60 -o /dev/null -r "$range" -w '%{speed_download}' "$url")
    else
      s=$(curl -s --max-time 60 -o /dev/null -w '%{speed_download}' "$url")
    fi
    [[ $i -gt 0 ]] && r+=("$(echo "$s / 1000000" | bc -l)")
  done
  echo "$(median "${r[@]}") ${r[*]}"
}

# ------------------------------------------------------------------ setup
if has setup; then
  command -v wrk >/dev/null && command -v ab >/dev/null && command -v bc >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq wrk apache2-utils bc; }
  mkdir -p "$BENCH_DATA"
  [[ -f $BENCH_DATA/blob.bin && $(stat -c %s "$BENCH_DATA/blob.bin") == 268435456 ]] \
    || head -c 268435456 /dev/urandom > "$BENCH_DATA/blob.bin"
  if [[ $HYPERCORN == 1 && ! -x $HC_VENV/bin/hypercorn ]]; then
    base=$("$PY" -c 'import sys;print(sys.base_prefix)')
    "$base/bin/python3" -m venv "$HC_VENV"
    "$HC_VENV/bin/pip" install -q hypercorn uvloop starlette==1.10.0 || echo "hypercorn install failed; skipping it"
  fi
  { echo "uname: $(uname -r)"; nproc; "$PY" -V
    "$VENV/bin/pip" list 2>/dev/null | grep -iE '^(starlette|uvicorn|granian|uvloop|httptools) '
    [[ -x $HC_VENV/bin/pip ]] && "$HC_VENV/bin/pip" list 2>/dev/null | grep -iE '^(hypercorn|h11) '
    wrk --version 2>&1 | head -1; ab -V | head -1; curl --version | head -1; } > "$OUT/versions.txt" 2>&1 || true
fi

# ------------------------------------------------------------------ limits
if has limits; then
  cd "$HERE"
  "$PY" limits.py hash -n $N | while read -r l; do rec "{\"section\":\"limits\",\"data\":$l}"; done
  "$PY" limits.py loopback -n $N | while read -r l; do rec "{\"section\":\"limits\",\"data\":$l}"; done
  "$PY" limits.py disk "$BENCH_DATA" -n $N | while read -r l; do rec "{\"section\":\"limits\",\"data\":$l}"; done
  # dd, as quoted in the brief (zeros, then random data from the page-cached blob)
  for src in /dev/zero "$BENCH_DATA/blob.bin"; do
    r=()
    for i in $(seq 0 $N); do
      s=$(dd if="$src" of="$BENCH_DATA/_dd" bs=4M count=64 conv=fdatasync 2>&1 | tail -1)
      rm -f "$BENCH_DATA/_dd"
      # "268435456 bytes (268 MB, 256 MiB) copied, 0.805362 s, 333 MB/s"
      secs=$(echo "$s" | sed -E 's/.*copied, ([0-9.]+) s.*/\1/')
      r+=("$(echo "268.435456 / $secs" | bc -l)")
    done
    rec "{\"section\":\"limits\",\"data\":{\"kind\":\"dd\",\"src\":\"$src\",\"warmup_MBps\":$(median "${r[0]}"),\"median_MBps\":$(median "${r[@]:1}")}}"
  done
  # same, inside the 300 MB/s blkio throttle used by the slowdisk section
  if [[ -d /sys/fs/cgroup/blkio ]]; then
    mkdir -p $CGROUP \
      && echo "$(stat -c '%Hd:%Ld' "$BENCH_DATA") $SLOW_BPS" > $CGROUP/blkio.throttle.write_bps_device \
      && sh -c "echo \$\$ > $CGROUP/cgroup.procs && cd $HERE && exec $PY limits.py disk $BENCH_DATA -n 3" \
         | while read -r l; do rec "{\"section\":\"limits\",\"throttled\":true,\"data\":$l}"; done || true
  fi
fi

# ------------------------------------------------------------------ GET 256 MiB
RANGE=67108864-201326591   # middle 128 MiB
get_variants() {  # get_variants APP BASEURL -> "name|url|range" lines
  local a=$1 B=$2
  echo "stream1m|$B/blob/stream?chunk=1048576|"
  echo "stream4m|$B/blob/stream?chunk=4194304|"
  echo "range_stream4m|$B/blob/stream?chunk=4194304|$RANGE"
  if [[ $a == app_raw ]]; then
    echo "pathsend|$B/blob/pathsend|"
  else
    echo "fileresponse|$B/blob/file|"
    echo "fileresponse4m|$B/blob/file4m|"
    echo "range_fileresponse|$B/blob/file|$RANGE"
    echo "range_fileresponse4m|$B/blob/file4m|$RANGE"
  fi
}
if has get; then
  for app in app_raw app_starlette; do
    start_all "$app" 1
    for round in $(seq 1 "$ROUNDS"); do
      for srv in $(rotated "$round"); do
        while IFS='|' read -r name url range; do
          code=$(curl -s -o /dev/null --max-time 60 -w '%{http_code}' "$url" </dev/null)
          if [[ $code != 200 ]]; then
            rec "{\"section\":\"get\",\"round\":$round,\"server\":\"$srv\",\"app\":\"$app\",\"variant\":\"$name\",\"unsupported\":$code}"
            continue
          fi
          ra=(); [[ -n $range ]] && ra=(--range "$range")
          p0=$(psi); t0=$(cpu_ticks "$srv")
          j=$(cd "$HERE" && timeout 300 "$PY" client.py get "$url" "${ra[@]}" -n $N --label "$name" </dev/null) || j='{"error":true}'
          t1=$(cpu_ticks "$srv")
          c=$(curl_get "$url" "$range" </dev/null)
          rec "{\"section\":\"get\",\"round\":$round,\"server\":\"$srv\",\"app\":\"$app\",\"variant\":\"$name\",\"cpu_psi_avg10\":$p0,\"server_cpu_ms_per_req\":$(( (t1 - t0) * 10 / (N + 1) )),\"py\":$j,\"curl_median_MBps\":${c%% *},\"curl_runs\":\"${c#* }\"}"
        done < <(get_variants "$app" "http://127.0.0.1:$(port_of "$srv")")
      done
    done
    stop_all
  done
fi

# ------------------------------------------------------------------ PUT 256 MiB
put_modes=("naive|naive|" "naive_thread|naive_thread|" "naive_wb|naive_wb|"
           "batched4m|batched|4194304" "batched8m|batched|8388608" "batched8m_wb|batched_wb|8388608")
run_put() {  # run_put SECTION SLOWFLAG MODE...
  local section=$1 slow=$2; shift 2
  local round srv app v name mode buf j url p0
  for app in app_raw app_starlette; do
    start_all "$app" 1 "$slow"
    for round in $(seq 1 "$ROUNDS"); do
      for srv in $(rotated "$round"); do
        for v in "$@"; do
          IFS='|' read -r name mode buf <<<"$v"
          url="http://127.0.0.1:$(port_of "$srv")/upload/$mode${buf:+?buf=$buf}"
          p0=$(psi); t0=$(cpu_ticks "$srv")
          j=$(cd "$HERE" && timeout 300 "$PY" client.py put "$url" -n $N --label "$name") || j='{"error":true}'
          t1=$(cpu_ticks "$srv")
          rec "{\"section\":\"$section\",\"round\":$round,\"server\":\"$srv\",\"app\":\"$app\",\"variant\":\"$name\",\"cpu_psi_avg10\":$p0,\"server_cpu_ms_per_req\":$(( (t1 - t0) * 10 / (N + 1) )),\"py\":$j}"
        done
      done
    done
    stop_all
  done
}
has put && run_put put "" "${put_modes[@]}"
if has slowdisk; then
  if [[ -d /sys/fs/cgroup/blkio ]]; then
    mkdir -p $CGROUP
    echo "$(stat -c '%Hd:%Ld' "$BENCH_DATA") $SLOW_BPS" > $CGROUP/blkio.throttle.write_bps_device
    ROUNDS=${SLOW_ROUNDS:-2} run_put slowdisk 1 "naive|naive|" "naive_wb|naive_wb|" "batched8m|batched|8388608" "batched8m_wb|batched_wb|8388608"
  else
    echo "no cgroup-v1 blkio controller: slowdisk skipped" | tee -a "$LOG"
  fi
fi
[[ -d $CGROUP ]] && rmdir $CGROUP 2>/dev/null || true

# ------------------------------------------------------------------ small GET / HEAD
# wrk for GET (HTTP/1.1 keep-alive); loadgen.py for HEAD and, to calibrate it, GET.
# ab -k is recorded too but speaks HTTP/1.0: uvicorn closes those connections.
if has small; then
  for app in app_raw app_starlette; do
    for w in 1 2; do
      start_all "$app" "$w"
      for srv in "${RUNNING[@]}"; do   # warm-up (bounded)
        timeout 20 wrk -t1 -c$CONNS -d2s "http://127.0.0.1:$(port_of "$srv")/small" >/dev/null 2>&1 || true
      done
      for round in $(seq 1 "$ROUNDS"); do
        for srv in $(rotated "$round"); do
          B=http://127.0.0.1:$(port_of "$srv")
          p0=$(psi); t0=$(cpu_ticks "$srv")
          wg=$(timeout $((DUR + 20)) wrk -t1 -c$CONNS -d${DUR}s "$B/small" 2>&1 || true)
          t1=$(cpu_ticks "$srv")
          wrk_rps=$(echo "$wg" | awk '/Requests\/sec/ {print $2}')
          wrk_n=$(echo "$wg" | awk '/requests in/ {print $1}')
          wrk_err=$(echo "$wg" | grep -cE 'Non-2xx|Socket errors' || true)
          lh=$(cd "$HERE" && timeout $((DUR + 30)) "$PY" loadgen.py -m HEAD -c $CONNS -d $DUR "$B/blobhead" || echo '{"rps":0}')
          lg=$(cd "$HERE" && timeout $((DUR + 30)) "$PY" loadgen.py -m GET -c $CONNS -d $DUR "$B/small" || echo '{"rps":0}')
          ab_head=0; ab_ka=0
          if [[ $round == 1 ]]; then   # once: shows the HTTP/1.0 keep-alive difference
            ab_o=$(timeout $((DUR + 20)) ab -q -k -i -c $CONNS -t $DUR -n 5000000 "$B/blobhead" 2>&1 || true)
            ab_head=$(echo "$ab_o" | awk '/Requests per second/ {print $4}')
            ab_ka=$(echo "$ab_o" | awk '/Keep-Alive requests/ {print $3}')
          fi
          rec "{\"section\":\"small\",\"round\":$round,\"server\":\"$srv\",\"app\":\"$app\",\"workers\":$w,\"cpu_psi_avg10\":$p0,\"wrk_get_rps\":${wrk_rps:-0},\"wrk_requests\":${wrk_n:-0},\"wrk_server_cpu_ticks\":$((t1 - t0)),\"wrk_err_lines\":$wrk_err,\"lg_head\":$lh,\"lg_get\":$lg,\"ab10_head_rps\":${ab_head:-0},\"ab10_keepalive_reqs\":${ab_ka:-0}}"
        done
      done
      stop_all
    done
  done
fi

# ------------------------------------------------------------------ mixed: pulls + small GETs
# 2 back-to-back curl pull loops of the 256 MiB blob while wrk measures /small:
# does a big transfer starve the event loop?  Starlette app, 1 worker.
pull_loop() {  # pull_loop URL OUTFILE -> total bytes and seconds into OUTFILE
  local url=$1 out=$2 tot=0 i=0 b t0 t1
  t0=$(date +%s.%N)
  while (( i < 200 )) && [[ $(echo "$(date +%s.%N) - $t0 < $DUR" | bc) == 1 ]]; do
    b=$(curl -s -o /dev/null --max-time 30 -w '%{size_download}' "$url" </dev/null || echo 0)
    tot=$((tot + ${b%.*})); i=$((i + 1))
  done
  t1=$(date +%s.%N)
  echo "$tot $(echo "$t1 - $t0" | bc)" > "$out"
}
if has mixed; then
  start_all app_starlette 1
  for round in $(seq 1 "$ROUNDS"); do
    for srv in $(rotated "$round"); do
      B=http://127.0.0.1:$(port_of "$srv")
      variants=(file4m)
      [[ $srv == granian ]] && variants+=(file)   # file = pathsend on granian
      for v in "${variants[@]}"; do
        p0=$(psi)
        pull_loop "$B/blob/$v" "$OUT/pull1" & P1=$!
        pull_loop "$B/blob/$v" "$OUT/pull2" & P2=$!
        sleep 0.5
        wg=$(timeout $((DUR + 20)) wrk -t1 -c$CONNS -d$((DUR - 1))s --latency "$B/small" 2>&1 || true)
        wait $P1 $P2 || true
        rps=$(echo "$wg" | awk '/Requests\/sec/ {print $2}')
        p99=$(echo "$wg" | awk '$1 == "99%" {print $2}')
        read -r b1 s1 < "$OUT/pull1"; read -r b2 s2 < "$OUT/pull2"
        mbps=$(echo "($b1 / $s1 + $b2 / $s2) / 1000000" | bc -l)
        rec "{\"section\":\"mixed\",\"round\":$round,\"server\":\"$srv\",\"app\":\"app_starlette\",\"variant\":\"$v\",\"cpu_psi_avg10\":$p0,\"wrk_get_rps\":${rps:-0},\"wrk_p99\":\"${p99:-}\",\"pull_MBps\":$(printf '%.0f' "$mbps")}"
      done
    done
  done
  stop_all
  rm -f "$OUT/pull1" "$OUT/pull2"
fi

# ------------------------------------------------------------------ idle RSS
if has rss; then
  for srv in $SERVERS; do
    server_ok "$srv" || continue
    for w in 1 2; do
      start_server "$srv" app_starlette "$w" || continue
      curl -s -o /dev/null "http://127.0.0.1:$(port_of "$srv")/small"; sleep 2
      # every process in the server's session: pid, RSS and PSS (kB)
      pid=${SPIDS[$srv]}
      procs=$(ps -o pid= -s "$pid" | tr -s ' \n' ' ')
      tot_rss=0; tot_pss=0; per=""
      for p in $procs; do
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
        pss=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
        tot_rss=$((tot_rss + ${rss:-0})); tot_pss=$((tot_pss + ${pss:-0}))
        per="$per{\"pid\":$p,\"cmd\":\"$(ps -o comm= -p $p)\",\"rss_kb\":${rss:-0},\"pss_kb\":${pss:-0}},"
      done
      rec "{\"section\":\"rss\",\"server\":\"$srv\",\"app\":\"app_starlette\",\"workers\":$w,\"total_rss_kb\":$tot_rss,\"total_pss_kb\":$tot_pss,\"procs\":[${per%,}]}"
      stop_server "$srv"
    done
  done
fi

"$PY" "$HERE/summarize.py" "$RES" > "$OUT/results.md" && echo "wrote $OUT/results.md" | tee -a "$LOG"

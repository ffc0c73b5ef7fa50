#!/bin/sh
# Hostile scripts through `kip eval` (the CLI limits: 1 GiB of heap, 50 million operations,
# 10 minutes of computing): how long each takes to end, the peak RSS of the process, and how it
# ends. `KIP=path/to/kip benches/script_limits.sh` (default target/release/kip). Each script
# runs under `timeout` and an address-space cap (MEMCAP_MIB, default 4096), so a script no limit
# stops shows as killed or aborted instead of taking the machine.
set -u
KIP=${KIP:-target/release/kip}
TIMEOUT=${TIMEOUT:-120}
ulimit -v $((${MEMCAP_MIB:-4096} * 1024))
KIP_HOME=$(mktemp -d)
export KIP_HOME
trap 'rm -rf "$KIP_HOME"' EXIT

big='let s = "x"; while s.len < 16777216 { s += s; }'
shared='let s = ""; s.pad(1 << 20, "x"); let a = []; a.pad(100000, s);'

printf '%-22s %8s %10s  %s\n' case seconds 'peak MiB' 'how it ended'
run() {
    name=$1 script=$2
    out=$(mktemp)
    /usr/bin/time -f '%e %M' -o "$out.time" timeout "$TIMEOUT" "$KIP" eval "$script" >"$out" 2>&1
    code=$?
    read -r secs kib <<EOF
$(tail -n 1 "$out.time")
EOF
    case $code in
        0) ended="finished: $(head -c 40 "$out" | head -n 1)" ;;
        124) ended="killed after ${TIMEOUT} s" ;;
        134) ended="aborted: memory allocation failed at the ${MEMCAP_MIB:-4096} MiB cap" ;;
        *) ended=$(grep -m1 -o 'error: .*' "$out" | cut -c8-70) ;;
    esac
    [ -n "$ended" ] || ended="exit $code: $(head -c 60 "$out" | head -n 1)"
    printf '%-22s %8s %10s  %s\n' "$name" "$secs" "$((kib / 1024))" "$ended"
    rm -f "$out" "$out.time"
}

run 'split 16 MB into chars' "$big s.split(\"\").len()"
run 'push x 90,000' 'let a = []; for i in 0..90000 { a.push(i); } a.len()'
run 'push x 1,000,000' 'let a = []; for i in 0..1000000 { a.push(i); } a.len()'
run 'string += in a loop' 'let c = ""; c.pad(65536, "x"); let s = ""; loop { s += c; }'
run 'sort 4 M strings' 'let s = ""; s.pad(1 << 22, "zyxwvu"); let a = s.split(""); a.sort(); a.len()'
run 'map growth' 'let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }'
run 'deep recursion' 'fn down(n) { down(n + 1) } down(0)'
run 'pad(1 << 40)' 'let s = ""; s.pad(1 << 40, "x"); s.len'
run 'pad list with a blob' 'let row = blob(8 << 20); let a = []; a.pad(1000, row); a.len()'
run 's = s + s' 'let s = " "; loop { s = s + s; }'
run 'closures in a loop' 'let fs = []; loop { let x = fs; fs.push(|| x.len()); }'
run 'while true {}' 'while true {}'
run 'print a shared string' "$shared a.to_string().len()"
run 'replace x 100,000' 'let s = ""; s.pad(1 << 20, "x"); let t = ""; t.pad(100000, "a"); t.replace("a", s); t.len()'

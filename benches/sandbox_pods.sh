#!/bin/bash
# Memory of the sandbox around one big Deployment: resident memory (VmRSS, and the peak VmHWM)
# and store size before, once every pod was created and seen by the scheduler, after the
# Deployment is deleted, and after a restart. Results go into BENCHMARKS.md.
#
#   benches/sandbox_pods.sh [REPLICAS] [KIP]      # defaults: 20000, target/release/kip
#
# Needs kubectl and python3. Waits use the pods' resourceVersion going still, not timers.
set -euo pipefail
N=${1:-20000}
KIP=${2:-target/release/kip}
KIP=$(realpath "$KIP")
WORK=$(mktemp -d)
trap '"$KIP" sandbox down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
export KIP_HOME=$WORK/kip KUBECONFIG=$WORK/kip/sandbox/kubeconfig
"$KIP" sandbox up >/dev/null
pid() { cat "$KIP_HOME/sandbox/sandbox.pid"; }
report() {
    local mem store
    mem=$(awk '/VmHWM|VmRSS/ {printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$(pid)/status")
    store=$(du -m "$KIP_HOME/sandbox/data/store.redb" | cut -f1)
    printf '%-16s %s store %s MB\n' "$1:" "$mem" "$store"
}
# The resourceVersion of a pod list and the pods by phase ("/unschedulable" when the
# scheduler said so, "/unseen" before it looked at them).
census() {
    kubectl get --raw /api/v1/namespaces/default/pods | python3 -c '
import collections, json, sys
pods = json.load(sys.stdin)
seen = collections.Counter()
for p in pods["items"]:
    cond = {c["type"]: c for c in p.get("status", {}).get("conditions", [])}.get("PodScheduled")
    state = p["status"].get("phase", "?")
    state += "" if cond else "/unseen"
    state += "/unschedulable" if cond and cond["status"] == "False" else ""
    seen[state] += 1
print(pods["metadata"]["resourceVersion"], sum(seen.values()), json.dumps(dict(seen)))'
}
# Until there are $1 pods, each seen by the scheduler, and nothing changed for 5 s.
settle() {
    local last="" rv count states
    while true; do
        read -r rv count states < <(census)
        if [ "$rv" = "$last" ] && [ "$count" = "$1" ] && [[ $states != *unseen* ]]; then
            echo "  pods: $states"
            return
        fi
        last=$rv
        sleep 5
    done
}
report before
kubectl apply -f - >/dev/null <<EOT
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
 "spec": {"replicas": $N, "selector": {"matchLabels": {"app": "big"}},
  "template": {"metadata": {"labels": {"app": "big"}},
   "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}
EOT
settle "$N"
report "$N pods"
kubectl delete deployment big >/dev/null
settle 0
sleep 5
report "deleted"
"$KIP" sandbox down >/dev/null
"$KIP" sandbox up >/dev/null
report "restarted"

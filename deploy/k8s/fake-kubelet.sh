#!/bin/bash
# A stand-in kubelet for the test control plane (no kubelet, no container runtime): for pods bound
# to a node it marks them Running and Ready; pods of helm test hooks and of Jobs (the charts' hook
# Jobs: create-topics, migrate, recompute) Succeeded, so `helm test` passes and Helm's hooks
# complete; it finishes graceful deletions. Bounded: runs at most $1 seconds.
#
# Adapted from ../shared/k8s/fake-kubelet.sh, which marks only helm test pods Succeeded.
K=${KUBECTL:-kubectl}; END=$(( $(date +%s) + ${1:-600} ))
while [ "$(date +%s)" -lt "$END" ]; do
  # One line per pod: namespace|name|phase|deletionTimestamp|helm hook|owner kind ('|' keeps
  # empty fields in place).
  $K get pods -A -o jsonpath='{range .items[?(@.spec.nodeName)]}{.metadata.namespace}{"|"}{.metadata.name}{"|"}{.status.phase}{"|"}{.metadata.deletionTimestamp}{"|"}{.metadata.annotations.helm\.sh/hook}{"|"}{.metadata.ownerReferences[0].kind}{"\n"}{end}' 2>/dev/null |
  while IFS='|' read -r ns name phase del hook owner; do
    [ -z "$name" ] && continue
    if [ -n "$del" ]; then $K delete pod -n "$ns" "$name" --grace-period=0 --force >/dev/null 2>&1; continue; fi
    [ "$phase" != "Pending" ] && continue
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ); p=Running; ready=True; st="{\"running\":{\"startedAt\":\"$now\"}}"
    if [ "$hook" = "test" ] || [ "$owner" = "Job" ]; then
      p=Succeeded; ready=False; st="{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\",\"startedAt\":\"$now\",\"finishedAt\":\"$now\"}}"
    fi
    cs=$($K get pod -n "$ns" "$name" -o jsonpath='{range .spec.containers[*]}{.name}{"|"}{.image}{"\n"}{end}' |
      awk -F'|' -v st="$st" -v r="$( [ $ready = True ] && echo true || echo false)" 'BEGIN{printf "["} {if(NR>1)printf ","; printf "{\"name\":\"%s\",\"image\":\"%s\",\"imageID\":\"\",\"ready\":%s,\"restartCount\":0,\"state\":%s}",$1,$2,r,st} END{printf "]"}')
    $K patch pod -n "$ns" "$name" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"$p\",\"hostIP\":\"10.0.0.1\",\"podIP\":\"10.244.0.$((RANDOM%250+2))\",\"startTime\":\"$now\",\"conditions\":[{\"type\":\"Initialized\",\"status\":\"True\"},{\"type\":\"Ready\",\"status\":\"$ready\",\"lastTransitionTime\":\"$now\"},{\"type\":\"ContainersReady\",\"status\":\"$ready\"},{\"type\":\"PodScheduled\",\"status\":\"True\"}],\"containerStatuses\":$cs}}" >/dev/null
  done
  sleep 1
done

#!/usr/bin/env bash
# Re-records impl/tests/fixtures/zookeeper-3.8-metrics.txt: every metric ZooKeeper 3.8 registers
# with its metrics provider, and the Prometheus type its PrometheusMetricsProvider exports it
# as, read from the bytecode of Debian's zookeeper-3.8.0.jar (the name passed to each
# MetricsContext.registerGauge / getCounter / getSummary / ... call, and the summary's detail
# level). Debian ships no PrometheusMetricsProvider jar, so a live /metrics cannot be compared;
# this list is what that provider would export (plus the JVM's own collectors, which zabd has
# no equivalent of). Needs javap (a JDK) and the jar.
#   ci/zk-metric-names.sh [JAR] > impl/tests/fixtures/zookeeper-3.8-metrics.txt
set -euo pipefail
jar=${1:-/usr/share/java/zookeeper-3.8.0.jar}
classes=(
  org.apache.zookeeper.server.ServerMetrics
  org.apache.zookeeper.server.ZooKeeperServer
  org.apache.zookeeper.server.quorum.QuorumZooKeeperServer
  org.apache.zookeeper.server.quorum.LeaderZooKeeperServer
  org.apache.zookeeper.server.quorum.FollowerZooKeeperServer
)
# Every class of the jar that calls a MetricsContext must be in the list above.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && unzip -q "$jar" 'org/apache/zookeeper/*')
for f in $(grep -rl 'MetricsContext' "$tmp" --include='*.class' | grep -v '/metrics/'); do
  c=${f#"$tmp"/}; c=${c%.class}; c=${c//\//.}
  case " ${classes[*]} " in *" $c "*) ;; *) echo "$c uses a MetricsContext: add it" >&2; exit 1 ;; esac
done
for c in "${classes[@]}"; do javap -c -p -classpath "$jar" "$c"; done | python3 -c '
import re, sys
kinds = {
    "registerGauge": ("gauge", ""), "registerGaugeSet": ("gauge", "key"),
    "getCounter": ("counter", ""), "getCounterSet": ("counter", "key"),
    "getSummary": ("summary", ""), "getSummarySet": ("summary", "key"),
}
name, level, out = None, None, {}
for line in sys.stdin:
    m = re.search(r"// String (\S+)$", line)
    if m:
        name = m.group(1)
        continue
    m = re.search(r"MetricsContext\$DetailLevel\.(BASIC|ADVANCED)", line)
    if m:
        level = m.group(1)
        continue
    m = re.search(r"MetricsContext\.(\w+):", line)
    if m and m.group(1) in kinds and name:
        kind, label = kinds[m.group(1)]
        extra = ""
        if kind == "summary":
            # PrometheusMetricsProvider: ADVANCED summaries carry quantiles 0.5, 0.9, 0.99;
            # BASIC ones 0.5 only.
            extra = " quantiles=" + ("0.5,0.9,0.99" if level == "ADVANCED" else "0.5")
        out[name] = kind + (" label=" + label if label else "") + extra
        name, level = None, None
print("# name type [label=L] [quantiles=Q]: ZooKeeper 3.8.0 metrics (ci/zk-metric-names.sh)")
for n in sorted(out):
    print(n, out[n])
'

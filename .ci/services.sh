# Sourced by .ci/run: installs what the tests need beyond npm (Debian's redis-server and
# chromium) when it is missing, starts Redis on loopback (a standalone server and a
# three-master Redis Cluster) in a temporary folder, and stops exactly what it started.
# Tests find them through SONOFS_TEST_REDIS_URL, SONOFS_TEST_REDIS_CLUSTER and
# SONOFS_TEST_CHROMIUM; a test whose service is absent fails, it does not skip.

ci_services_dir=$(mktemp -d "${TMPDIR:-/tmp}/sonofs-ci-XXXXXX")
ci_redis_port=${SONOFS_CI_REDIS_PORT:-16379}
ci_cluster_ports=${SONOFS_CI_CLUSTER_PORTS:-"17001 17002 17003"}

ci_install_missing() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ci: installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ci_redis_start() { # port dir [extra args]
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
}

ci_wait() { # what command...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "ci: $what did not come up" >&2; return 1
}

ci_services_start() {
  ci_install_missing
  # a port taken by anything else (a Redis Cluster's bus is its port + 10000) stops the run here
  ci_redis_start "$ci_redis_port" "$ci_services_dir/standalone"
  ci_wait "redis on $ci_redis_port" redis-cli -p "$ci_redis_port" ping || return 1
  local nodes=()
  for p in $ci_cluster_ports; do
    ci_redis_start "$p" "$ci_services_dir/$p" --cluster-enabled yes --cluster-config-file "$ci_services_dir/$p/nodes.conf"
    nodes+=("127.0.0.1:$p")
  done
  for p in $ci_cluster_ports; do ci_wait "redis on $p" redis-cli -p "$p" ping || return 1; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null || return 1
  local first=${ci_cluster_ports%% *}
  ci_wait "the redis cluster" sh -c "redis-cli -p $first cluster info | grep -q cluster_state:ok" || return 1
  export SONOFS_TEST_REDIS_URL="redis://127.0.0.1:$ci_redis_port"
  export SONOFS_TEST_REDIS_CLUSTER=$(IFS=,; echo "${nodes[*]}")
  export SONOFS_TEST_CHROMIUM=$(command -v chromium)
}

ci_services_stop() {
  for pidfile in "$ci_services_dir"/*/redis.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  sleep 0.2
  rm -rf "$ci_services_dir"
}

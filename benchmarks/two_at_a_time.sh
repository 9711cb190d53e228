# Sourced by the run scripts of benchmarks/: calls `$1 NAME SEED` for every seed of $2 and
# every NAME after it, two runs at a time (the 2-core machine), and waits for all of them.
#   two_at_a_time run "0 1 2" defaults l2-batch
two_at_a_time() {
  local fn=$1 seeds=$2 jobs=0 seed name
  shift 2
  for seed in $seeds; do
    for name in "$@"; do
      "$fn" "$name" "$seed" &
      jobs=$((jobs + 1))
      if (( jobs % 2 == 0 )); then wait; fi
    done
  done
  wait
}

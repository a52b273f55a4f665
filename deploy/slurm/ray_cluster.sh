# Start and stop a Ray cluster inside a Slurm allocation; sourced by h2ot_campaign.sbatch (and by its test).
#
#   source deploy/slurm/ray_cluster.sh
#   h2ot_ray_start          # head on the allocation's first node, one worker per other node; waits for all
#   h2ot campaign run GRID --address "$H2OT_RAY_ADDRESS"
#   h2ot_ray_stop           # every node's `ray start --block` step ends, which stops that node's Ray
#
# Reads SLURM_JOB_NODELIST (and SLURM_CPUS_PER_TASK, SLURM_GPUS_ON_NODE when set). Settings, all optional:
#   H2OT_RAY_PORT (6379)  H2OT_RAY_DASHBOARD_PORT (8265)  H2OT_RAY_HEAD_IP (the head node's address)
#   H2OT_RAY_TEMP_DIR (Ray's default)  H2OT_RAY_WAIT_S (180: how long to wait for the nodes)
#   H2OT_PYTHON (python: the environment with ray installed)
#   H2OT_RAY_START_ARGS (more `ray start` options for every node, e.g. --object-store-memory 10000000000)
# Sets H2OT_RAY_ADDRESS=HEAD_IP:PORT and H2OT_RAY_NODES (the node count). Token auth (Ray >= 2.59) is on:
# every node reads the token from ~/.ray/auth_token (a shared home; made there when missing) or
# RAY_AUTH_TOKEN, which srun passes on.

H2OT_RAY_PIDS=()

h2ot_ray_nodes() {
    scontrol show hostnames "${SLURM_JOB_NODELIST:?not inside a Slurm allocation (SLURM_JOB_NODELIST unset)}"
}

# The resources of one node's `ray start`: the allocation's CPUs and GPUs, not the whole machine's.
_h2ot_ray_resources() {
    local args=()
    [[ -n "${SLURM_CPUS_PER_TASK:-}" ]] && args+=(--num-cpus "$SLURM_CPUS_PER_TASK")
    [[ -n "${SLURM_GPUS_ON_NODE:-}" ]] && args+=(--num-gpus "$SLURM_GPUS_ON_NODE")
    echo "${args[@]}" "${H2OT_RAY_START_ARGS:-}"
}

_h2ot_wait_port() {  # host port seconds
    local deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "h2ot: the Ray head did not open $1:$2 within $3 s" >&2
            return 1
        fi
        sleep 1
    done
}

_h2ot_wait_nodes() {  # address count seconds
    "${H2OT_PYTHON:-python}" - "$1" "$2" "$3" <<'EOF'
import sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[3])
alive = lambda: sum(n["Alive"] for n in ray.nodes())
while alive() < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(1)
print(f"h2ot: {alive()} of {sys.argv[2]} Ray node(s) up", file=sys.stderr)
sys.exit(0 if alive() >= int(sys.argv[2]) else 1)
EOF
}

h2ot_ray_start() {
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}" RAY_USAGE_STATS_ENABLED=0
    local nodes head port dash wait_s resources temp=()
    mapfile -t nodes < <(h2ot_ray_nodes)
    ((${#nodes[@]})) || { echo "h2ot: SLURM_JOB_NODELIST names no node" >&2; return 1; }
    # `ray start` does not make the token: without one (a new home) the head dies at once. Make it here, on
    # the batch node whose home the nodes share, without printing it.
    if [[ "$RAY_AUTH_MODE" == token && -z "${RAY_AUTH_TOKEN:-}" \
          && ! -s "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]]; then
        ray get-auth-token --generate >/dev/null || { echo "h2ot: could not create a Ray auth token" >&2; return 1; }
    fi
    head="${nodes[0]}"
    port="${H2OT_RAY_PORT:-6379}"
    dash="${H2OT_RAY_DASHBOARD_PORT:-8265}"
    wait_s="${H2OT_RAY_WAIT_S:-180}"
    resources="$(_h2ot_ray_resources)"
    [[ -n "${H2OT_RAY_TEMP_DIR:-}" ]] && temp=(--temp-dir "$H2OT_RAY_TEMP_DIR")
    H2OT_RAY_HEAD_IP="${H2OT_RAY_HEAD_IP:-$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{print $1}')}"
    export H2OT_RAY_ADDRESS="$H2OT_RAY_HEAD_IP:$port" H2OT_RAY_NODES="${#nodes[@]}"

    echo "h2ot: Ray head on $head ($H2OT_RAY_ADDRESS), ${#nodes[@]} node(s)" >&2
    # shellcheck disable=SC2086  # $resources is a list of options
    srun --nodes=1 --ntasks=1 --overlap -w "$head" \
        ray start --head --block --node-ip-address="$H2OT_RAY_HEAD_IP" --port="$port" \
        --dashboard-host=127.0.0.1 --dashboard-port="$dash" --disable-usage-stats "${temp[@]}" $resources &
    H2OT_RAY_PIDS+=($!)
    _h2ot_wait_port "$H2OT_RAY_HEAD_IP" "$port" "$wait_s" || return 1

    local node
    for node in "${nodes[@]:1}"; do
        # shellcheck disable=SC2086
        srun --nodes=1 --ntasks=1 --overlap -w "$node" \
            ray start --block --address="$H2OT_RAY_ADDRESS" --disable-usage-stats $resources &
        H2OT_RAY_PIDS+=($!)
    done
    _h2ot_wait_nodes "$H2OT_RAY_ADDRESS" "${#nodes[@]}" "$wait_s"
}

h2ot_ray_stop() {
    # SIGTERM to each `srun ... ray start --block` step: Ray stops that node's processes and the step ends.
    local pid i
    for ((i = ${#H2OT_RAY_PIDS[@]} - 1; i >= 0; i--)); do  # workers first, the head last
        kill -TERM "${H2OT_RAY_PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${H2OT_RAY_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    H2OT_RAY_PIDS=()
}

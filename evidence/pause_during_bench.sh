#!/bin/bash
# Usage: setsid nice -n 10 CMD & bash evidence/pause_during_bench.sh $!   (CMD leads its own group)
# Stops process group $1 while an edge-runner timing of ANOTHER group runs (so it cannot disturb
# the latencies); its own timings (tests) do not stop it.
g=$1; stopped=0
others() { for p in $(pgrep -f "edge/bench[.]py|legc_edge[.]bench"); do
  [ "$(ps -o pgid= -p $p 2>/dev/null | tr -d ' ')" != "$g" ] && return 0; done; return 1; }
while kill -0 -- -$g 2>/dev/null; do
  if others; then [ $stopped = 0 ] && kill -STOP -- -$g && stopped=1
  elif [ $stopped = 1 ]; then kill -CONT -- -$g; stopped=0; fi
  sleep 0.1
done

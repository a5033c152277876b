#!/bin/sh
# A Docker engine in a container, for the multi-node Swarm test (tests/e2e_swarm_nodes.rs):
# it runs with every capability but SYS_RESOURCE (not `--privileged`, which needs a
# capability some hosts do not have), so /sys and the cgroup controllers are made writable
# here, then dockerd listens on its socket and, for the harness, on TCP 2375 (no TLS: only
# on the test's own network; `--tls=false` said outright, or dockerd waits 15 s to warn).
# Arguments go to dockerd (the test gives each node its `--bip`). vfs storage: ready in under a second, where overlay2 on a volume took ~18 s.
set -e
rm -f /var/run/docker.pid
mount -o remount,rw /sys
for controller in /sys/fs/cgroup/*; do
    [ -d "$controller" ] && mount -o remount,bind,rw "$controller" 2>/dev/null || true
done
exec dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:2375 --tls=false --storage-driver vfs "$@"

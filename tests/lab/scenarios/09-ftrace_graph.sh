# `rprobe ftrace -G vfs_read --depth 2` shows vfs_read's direct callees and nothing deeper:
# on 6.12 from function_graph in a private instance (with durations), on 6.1, whose
# instances have no function_graph, rebuilt from the function tracer's callers. tracefs
# (instances, current_tracer, tracing_on) is checked by init after the scenario.
. /lab/lib.sh

cleanup() {
    rprobe_instances_del
}

root='vfs_read() {'
broken && root='vfs_read_broken() {'

run rprobe ftrace -G vfs_read --depth 2 -b 8192 -- dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1
must_succeed "rprobe ftrace -G vfs_read --depth 2 -b 8192 -- dd"
graph="$(echo "$OUT" | grep -E '(dd|sh)-[0-9]+')"
echo "$graph" | grep -qF "$root" ||
    fail "expected a '$root' line from dd, saw: $(echo "$OUT" | head -n 5)"
echo "$graph" | grep -qE '(rw_verify_area|security_file_permission)\(\);' ||
    fail "expected rw_verify_area(); or security_file_permission(); at depth 2 under vfs_read, saw: $(echo "$graph" | head -n 8)"
# Depth 3 and below are cut: apparmor/selinux hooks run under security_file_permission.
echo "$graph" | grep -qE 'aa_file_perm|__rcu_read_lock' &&
    fail "expected nothing below depth 2, saw: $(echo "$graph" | grep -E 'aa_file_perm|__rcu_read_lock' | head -n 2)"
echo "$ERR" | grep -q 'events, [0-9]* lost' ||
    fail "expected a summary with events and lost counts on stderr, saw: $ERR"
pass

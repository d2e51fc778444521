# `rprobe ftrace -T` with `-N` in a private instance: globs, exclusions, command scoping
# (the dd it runs, not the shell), and a function ftrace cannot trace.
. /lab/lib.sh

cleanup() {
    [ -n "${RP:-}" ] && kill -9 "$RP" 2>/dev/null
    rprobe_instances_del
}

want=10
broken && want=1000

run rprobe ftrace -T vfs_write -- dd if=/dev/zero of=/dev/null count=10
must_succeed "rprobe ftrace -T vfs_write -- dd"
pid="$(echo "$ERR" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p' | head -n 1)"
# Matched by pid: the comm printed is saved_cmdlines' at read time, which can be "<...>"
# (not saved yet) or, on 6.1, "rprobe" (saved before the exec and not updated).
n="$(echo "$OUT" | grep -cE "[^ ]-$pid +\[[0-9]+\] .* vfs_write <-")"
[ "$n" -ge "$want" ] || fail "expected at least $want vfs_write calls from dd (pid $pid), saw $n"
others="$(echo "$OUT" | grep -vE "[^ ]-$pid +\[" | grep -c ' <-')"
[ "$others" -eq 0 ] || fail "expected only dd's calls, saw $others others: $(echo "$OUT" | grep -vE "[^ ]-$pid " | head -n 2)"

run rprobe ftrace -T 'vfs_*' -N vfs_write -N 'vfs_writ*' -- dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1
must_succeed "rprobe ftrace -T 'vfs_*' -N vfs_write"
pid="$(echo "$ERR" | sed -n 's/.*(pid \([0-9]*\)).*/\1/p' | head -n 1)"
echo "$OUT" | grep -qE "[^ ]-$pid +\[[0-9]+\] .* vfs_read <-" ||
    fail "expected vfs_read from dd with -T 'vfs_*', saw: $(echo "$OUT" | head -n 3)"
echo "$OUT" | grep -qE ' vfs_write <-' &&
    fail "expected no vfs_write with -N vfs_write, saw: $(echo "$OUT" | grep ' vfs_write <-' | head -n 1)"

run rprobe ftrace -T entry_SYSCALL_64 -- true
[ "$RC" -ne 0 ] || fail "expected -T entry_SYSCALL_64 (not traceable) to fail, saw exit 0"
echo "$ERR" | grep -q "ftrace cannot trace" ||
    fail "expected 'ftrace cannot trace' for entry_SYSCALL_64, saw: $ERR"
[ -z "$(ls "$T/instances")" ] || fail "expected no instance after a refusal, saw: $(ls "$T/instances")"

pass

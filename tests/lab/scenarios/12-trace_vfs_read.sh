# `rprobe trace` with a kernel probe whose field chain comes from the guest's BTF streams
# the names of files read (dd reading the marker file), and leaves kprobe_events empty after
# SIGTERM, as after a command that exits.
. /lab/lib.sh

cleanup() {
    [ -n "${RP:-}" ] && kill -9 "$RP" 2>/dev/null
    rprobe_kprobes_del
    rprobe_instances_del
}

want='name="lab-marker-file"'
broken && want='name="lab-marker-file.broken"'
spec='vfs_read file->f_path.dentry->d_name.name:string'

# With a command: it ends when dd exits.
run rprobe trace "$spec" -- dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1
must_succeed "rprobe trace '$spec' -- dd"
echo "$OUT" | grep -q "rprobe_[0-9]*:vfs_read: .*$want" || {
    echo "$OUT" | tail -n 10 | sed 's/^/  trace: /'
    fail "expected a vfs_read line with $want, saw: $(echo "$OUT" | grep -c vfs_read) vfs_read lines"
}
grep -q 'rprobe_' "$T/kprobe_events" && fail "expected kprobe_events clean after the command, saw: $(cat "$T/kprobe_events")"

# System-wide, stopped by SIGTERM.
rprobe trace "$spec" > /tmp/trace.out 2> /tmp/trace.err &
RP=$!
i=0
until grep -q '^Tracing ' /tmp/trace.err; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || fail "expected the trace header within 20 s, saw: $(cat /tmp/trace.err)"
    sleep 0.1
done
dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1 2>/dev/null
sleep 1
kill -TERM "$RP"
wait "$RP"
rc=$?
RP=
[ "$rc" -eq 0 ] || fail "expected exit 0 after SIGTERM, saw $rc: $(cat /tmp/trace.err)"
grep -q "vfs_read: .*$want" /tmp/trace.out || fail "expected $want while tracing system-wide, saw: $(grep -c vfs_read /tmp/trace.out) vfs_read lines"
grep -q 'rprobe_' "$T/kprobe_events" && fail "expected kprobe_events clean after SIGTERM, saw: $(cat "$T/kprobe_events")"
pass

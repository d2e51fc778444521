# User probes on each kernel: `rprobe add -x` with arguments by position (arg1..arg3, the
# SysV registers) and a return probe, values read back from a private instance's trace;
# an explicit name on a return probe gets perf's __return suffix; `rprobe list` shows them; `rprobe del` removes them and nothing is left in uprobe_events.
. /lab/lib.sh

BIN=/lab/fixtures/lab_args
cleanup() {
    instance_del lab
    for ev in work ret__return; do
        grep -q "^[pr]:labu/$ev " "$T/uprobe_events" && echo "-:labu/$ev" >> "$T/uprobe_events"
    done
}

want_work='id=1 len=100 name="alpha"
id=2 len=-200 name="beta"
id=3 len=300000 name="gamma"'
broken && want_work='id=1 len=100 name="alpha"'

run rprobe add -x "$BIN" 'labu:work=work id=arg1:s32 len=arg2:s64 name=arg3:string' \
    -a 'labu:ret=answer%return r=$retval:s32'
must_succeed "rprobe add -x $BIN work ... -a answer%return ..."
grep -q "^p:labu/work $BIN:0x[0-9a-f]\{16\} id=%di:s32 len=%si:s64 name=+0(%dx):string\$" "$T/uprobe_events" ||
    fail "expected the work uprobe in uprobe_events, saw: $(cat "$T/uprobe_events")"

run rprobe list 'labu:*'
must_succeed "rprobe list 'labu:*'"
echo "$OUT" | grep -q 'labu:work .*(on work in /lab/fixtures/lab_args with id=%di:s32' ||
    fail "expected rprobe list to show labu:work on work, saw: $OUT"
echo "$OUT" | grep -q 'labu:ret__return .*(on answer%return in /lab/fixtures/lab_args' ||
    fail "expected rprobe list to show labu:ret__return on answer%return, saw: $OUT"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/labu/enable" || fail "expected to enable labu in instance lab"
run "$BIN"
echo 0 > "$T/instances/lab/events/labu/enable"
# 1+100+'a' + 2-200+'b' + 3+300000+'g'
[ "$OUT" = "sum=300204 answer=42" ] || fail "expected lab_args to print sum=300204 answer=42, saw: $OUT"
seen="$(event_args "$T/instances/lab/trace" work lab_args)"
[ "$seen" = "$want_work" ] || fail "expected work events: $want_work; saw: ${seen:-none}"
seen="$(event_args "$T/instances/lab/trace" ret__return lab_args)"
[ "$seen" = "r=42" ] || fail "expected one ret__return event with r=42, saw: ${seen:-none}"
instance_del lab

run rprobe del 'labu:*'
must_succeed "rprobe del 'labu:*'"
echo "$OUT" | grep -q 'Removed event: labu:work' || fail "expected del to report labu:work, saw: $OUT"
grep -q "labu/" "$T/uprobe_events" && fail "expected no labu events after del, saw: $(cat "$T/uprobe_events")"
run rprobe del 'labu:*'
[ "$RC" -ne 0 ] || fail "expected a second 'rprobe del labu:*' to exit non-zero, saw 0"
pass

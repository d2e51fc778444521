# USDT on each kernel: `rprobe add -x BIN sdt_lab:work arg3:string` writes the note's site with
# its semaphore as (ref_ctr_offset) and the note's arguments; the program sees its semaphore
# non-zero only while the event is enabled (the kernel counts it), and the values read back
# from a private instance are the program's; `rprobe del` removes it.
. /lab/lib.sh

BIN=/lab/fixtures/lab_usdt
cleanup() {
    instance_del lab
    grep -q "^p:sdt_lab/work " "$T/uprobe_events" && echo "-:sdt_lab/work" >> "$T/uprobe_events"
}

want='arg1=0 arg2=0 arg3="one"
arg1=1 arg2=10 arg3="two"
arg1=2 arg2=20 arg3="three"'
broken && want='arg1=0 arg2=0 arg3="one"'

run rprobe add -x "$BIN" 'sdt_lab:work arg3:string'
must_succeed "rprobe add -x $BIN 'sdt_lab:work arg3:string'"
grep -q "^p:sdt_lab/work $BIN:0x[0-9a-f]\{16\}(0x[0-9a-f]*) arg1=%[a-z0-9]*:s32 arg2=%[a-z0-9]*:s64 arg3=+0(%[a-z0-9]*):string\$" "$T/uprobe_events" ||
    fail "expected sdt_lab/work with (ref_ctr_offset) in uprobe_events, saw: $(cat "$T/uprobe_events")"

run "$BIN"
[ "$OUT" = "seen 0 of 3" ] || fail "expected the semaphore to read 0 while the event is only added, saw: $OUT"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/sdt_lab/work/enable" || fail "expected to enable sdt_lab/work in instance lab"
run "$BIN"
[ "$OUT" = "seen 3 of 3" ] || fail "expected the semaphore non-zero while enabled (seen 3 of 3), saw: $OUT"
echo 0 > "$T/instances/lab/events/sdt_lab/work/enable"
seen="$(event_args "$T/instances/lab/trace" work lab_usdt)"
[ "$seen" = "$want" ] || fail "expected work events: $want; saw: ${seen:-none}"
instance_del lab

run "$BIN"
[ "$OUT" = "seen 0 of 3" ] || fail "expected the semaphore back at 0 after disabling, saw: $OUT"

run rprobe del 'sdt_lab:work'
must_succeed "rprobe del sdt_lab:work"
grep -q "sdt_lab/" "$T/uprobe_events" && fail "expected no sdt_lab events after del, saw: $(cat "$T/uprobe_events")"
pass

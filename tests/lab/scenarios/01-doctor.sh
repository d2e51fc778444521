# `rprobe doctor` reports every facility these Debian cloud kernels have as available.
. /lab/lib.sh

run rprobe doctor
[ "$RC" -eq 127 ] && fail "expected 'rprobe doctor' to run, saw exit 127 (command not found)"
missing=""
seen=""
for facility in kprobe_events uprobe_events function_graph hist_triggers btf; do
    if ! echo "$OUT" | grep -qE "^$facility: yes([^a-z_]|$)"; then
        missing="$missing $facility"
        line="$(echo "$OUT" | grep "^$facility:" | head -n 1)"
        seen="$seen; ${line:-no '$facility:' line}"
    fi
done
broken && missing="$missing (broken on purpose)"
[ -z "$missing" ] ||
    fail "expected 'rprobe doctor' to say yes for:$missing; saw (exit $RC)${seen:-: all yes}"
pass

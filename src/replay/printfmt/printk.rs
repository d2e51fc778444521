//! The `printk_formats` section of a perf.data file's tracing data (tracefs `printk_formats`):
//! the constant strings `%s` of a pointer field prints (`rcu:rcu_utilization`'s `s`).
//!
//! One string per line, `0xffffffff8281aceb : "Start scheduler-tick"`. perf splits each line at
//! its first `:` (`parse_ftrace_printk()`), skips one blank, and libtraceevent drops one
//! leading and one trailing `"` and then a final `\n` (the two characters), as
//! `tep_register_print_string()` does.

use std::collections::BTreeMap;

/// Kernel strings by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintkFormats(BTreeMap<u64, String>);

impl PrintkFormats {
    // 0xffffffff8281aceb : "Start scheduler-tick"
    /// Parse the section's text; lines without a `:` are skipped.
    pub fn parse(text: &str) -> PrintkFormats {
        let mut map = BTreeMap::new();
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let Some((addr, rest)) = line.split_once(':') else {
                continue;
            };
            let addr = super::parse::c_strtoull_radix16(addr);
            let text = rest.get(1..).unwrap_or("");
            let text = text.strip_prefix('"').unwrap_or(text);
            let text = text.strip_suffix('"').unwrap_or(text);
            let text = text.strip_suffix("\\n").unwrap_or(text);
            map.entry(addr).or_insert_with(|| text.to_owned());
        }
        PrintkFormats(map)
    }

    /// The string at `addr`.
    pub fn find(&self, addr: u64) -> Option<&str> {
        self.0.get(&addr).map(String::as_str)
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No strings at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines from this kernel's /sys/kernel/tracing/printk_formats, and odd ones.
    #[test]
    fn strips_as_perf_does() {
        let text = "0xffffffff8281aceb : \"Start scheduler-tick\"\n0xffffffff82819b5c : \"thaw_processes\"\n0xffffffff82819b5c : \"thaw_processes\"\n0xffffffff8281a000 : \"line\\n\"\n0x10 : \"a: b\"\nno colon\n0x20 :\n";
        let p = PrintkFormats::parse(text);
        assert_eq!(p.find(0xffff_ffff_8281_aceb), Some("Start scheduler-tick"));
        assert_eq!(p.find(0xffff_ffff_8281_9b5c), Some("thaw_processes"));
        assert_eq!(p.find(0xffff_ffff_8281_a000), Some("line"));
        assert_eq!(p.find(0x10), Some("a: b"));
        assert_eq!(p.find(0x20), Some(""));
        assert_eq!(p.find(0x30), None);
        assert_eq!(p.len(), 5);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(\\PC|\n|:|\"){0,200}") {
            let _ = PrintkFormats::parse(&text);
        }
    }
}

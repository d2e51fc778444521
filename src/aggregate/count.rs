//! Counts by key (`rprobe stat --count comm,filename`): a table of the most frequent keys.
//!
//! Output (stable, documented in the README): a header of `COUNT` and the key names, then one
//! row per key, the largest count first and ties in key order, `--top N` rows at most, and a
//! last line with the total and how many keys were left out:
//!
//! ```text
//!    COUNT  comm  filename
//!       12  bash  /etc/passwd
//!        3  sshd  /etc/hosts
//! total 15 in 2 keys
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write};

/// One part of a key: an event field's value, a comm, a pid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    /// A signed number.
    Int(i64),
    /// An unsigned number.
    UInt(u64),
    /// A number shown in hex (pointers, `x64` probe args).
    Hex(u64),
    /// Text (comm, strings, symbols).
    Str(String),
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Int(v) => write!(f, "{v}"),
            KeyPart::UInt(v) => write!(f, "{v}"),
            KeyPart::Hex(v) => write!(f, "{v:#x}"),
            KeyPart::Str(s) => f.write_str(s),
        }
    }
}

/// Counts per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    map: HashMap<Vec<KeyPart>, u64>,
    total: u64,
}

impl Counts {
    /// Counts one event with this key.
    pub fn add(&mut self, key: Vec<KeyPart>) {
        self.add_n(key, 1);
    }

    /// Counts `n` events with this key.
    pub fn add_n(&mut self, key: Vec<KeyPart>, n: u64) {
        let slot = self.map.entry(key).or_insert(0);
        *slot = slot.saturating_add(n);
        self.total = self.total.saturating_add(n);
    }

    /// Events counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The count of one key.
    pub fn get(&self, key: &[KeyPart]) -> u64 {
        self.map.get(key).copied().unwrap_or(0)
    }

    /// Keys with their counts, the largest count first, ties in key order.
    pub fn sorted(&self) -> Vec<(&[KeyPart], u64)> {
        let mut rows: Vec<(&[KeyPart], u64)> =
            self.map.iter().map(|(k, v)| (k.as_slice(), *v)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        rows
    }

    /// The table described in the module docs. `names` are the key columns' headers.
    pub fn render(&self, names: &[&str], top: Option<usize>) -> String {
        let rows = self.sorted();
        let shown = top.map_or(rows.len(), |t| t.min(rows.len()));
        let cells: Vec<Vec<String>> = rows[..shown]
            .iter()
            .map(|(k, _)| k.iter().map(KeyPart::to_string).collect())
            .collect();
        let mut widths: Vec<usize> = names.iter().map(|n| n.len()).collect();
        for row in &cells {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.len());
                }
            }
        }
        let count_w = rows
            .first()
            .map_or(0, |(_, c)| c.to_string().len())
            .max("COUNT".len())
            .max(8);
        let mut out = String::new();
        let line = |out: &mut String, first: &str, rest: &[&str]| {
            let mut l = format!("{first:>count_w$}");
            for (i, c) in rest.iter().enumerate() {
                let last = i + 1 == rest.len();
                let w = widths.get(i).copied().unwrap_or(0);
                if last {
                    let _ = write!(l, "  {c}");
                } else {
                    let _ = write!(l, "  {c:<w$}");
                }
            }
            out.push_str(&l);
            out.push('\n');
        };
        line(&mut out, "COUNT", names);
        for (row, (_, count)) in cells.iter().zip(rows.iter()) {
            let rest: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&mut out, &count.to_string(), &rest);
        }
        let plural = if rows.len() == 1 { "" } else { "s" };
        let _ = write!(out, "total {} in {} key{plural}", self.total, rows.len());
        if shown < rows.len() {
            let _ = write!(out, " ({} not shown)", rows.len() - shown);
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(comm: &str, file: &str) -> Vec<KeyPart> {
        vec![KeyPart::Str(comm.into()), KeyPart::Str(file.into())]
    }

    #[test]
    fn largest_first_ties_in_key_order() {
        let mut c = Counts::default();
        c.add_n(key("sshd", "/etc/hosts"), 3);
        c.add_n(key("bash", "/etc/passwd"), 12);
        c.add_n(key("bash", "/etc/group"), 3);
        let text = c.render(&["comm", "filename"], None);
        assert_eq!(
            text,
            "   COUNT  comm  filename
      12  bash  /etc/passwd
       3  bash  /etc/group
       3  sshd  /etc/hosts
total 18 in 3 keys
"
        );
        assert_eq!(c.get(&key("bash", "/etc/group")), 3);
        assert_eq!(c.get(&key("init", "/")), 0);
    }

    #[test]
    fn top_n_says_what_it_left_out() {
        let mut c = Counts::default();
        for i in 0..5u64 {
            c.add_n(vec![KeyPart::UInt(i)], i + 1);
        }
        let text = c.render(&["size"], Some(2));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "       5  4");
        assert_eq!(lines[3], "total 15 in 5 keys (3 not shown)");
    }

    #[test]
    fn key_parts_print_as_their_kind() {
        assert_eq!(KeyPart::Hex(255).to_string(), "0xff");
        assert_eq!(KeyPart::Int(-2).to_string(), "-2");
        let empty = Counts::default();
        assert_eq!(
            empty.render(&["comm"], None),
            "   COUNT  comm\ntotal 0 in 0 keys\n"
        );
    }
}

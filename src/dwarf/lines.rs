//! Line tables: the rows of each unit's line program (read once per unit and kept), source
//! line → addresses for `SRC:LINE` and `FUNC:RLN` probes, and the file names behind
//! `DW_AT_decl_file` / `DW_AT_call_file` indexes.
//!
//! File indexes are 1-based in DWARF ≤ 4 (0 is the unit's primary file only by convention)
//! and 0-based in DWARF 5; gimli's `LineProgramHeader::file` hides the difference.

use std::path::Path;

use super::error::DwarfError;
use super::Dwarf;

/// One row of a line program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) addr: u64,
    pub(crate) file: u64,
    pub(crate) line: u64,
    pub(crate) is_stmt: bool,
    pub(crate) prologue_end: bool,
    pub(crate) end_sequence: bool,
}

/// The line table of one unit.
#[derive(Debug, Default)]
pub(crate) struct UnitLines {
    /// Rows in program order.
    pub(crate) rows: Vec<Row>,
    /// Full paths by raw file index (`None` for an index the header does not define).
    pub(crate) files: Vec<Option<String>>,
}

impl UnitLines {
    pub(crate) fn file(&self, index: u64) -> Option<&str> {
        self.files.get(usize::try_from(index).ok()?)?.as_deref()
    }
}

/// Whether `path` ends with `suffix` at a path component boundary (`foo.c` matches
/// `/src/foo.c` but not `/src/barfoo.c`).
pub fn path_matches(path: &str, suffix: &str) -> bool {
    let suffix = suffix.trim_start_matches("./");
    if suffix.is_empty() {
        return false;
    }
    match path.strip_suffix(suffix) {
        Some(head) => head.is_empty() || head.ends_with('/') || suffix.starts_with('/'),
        None => false,
    }
}

impl<'a> Dwarf<'a> {
    /// The line table of unit `idx`, read on first use.
    pub(crate) fn unit_lines(&self, idx: usize) -> Result<&UnitLines, DwarfError> {
        let slot = self.units.get(idx).ok_or(DwarfError::NoDie(0))?;
        slot.lines
            .get_or_init(|| self.read_lines(idx, slot.offset))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn read_lines(&self, idx: usize, unit_off: u64) -> Result<UnitLines, DwarfError> {
        let unit = self.unit(idx)?;
        let Some(program) = unit.line_program.clone() else {
            return Ok(UnitLines::default());
        };
        let err = |source| DwarfError::Line {
            unit: unit_off,
            source,
        };
        let header = program.header();
        let string = |v| {
            self.dwarf.attr_string(unit, v).ok().and_then(|s| {
                gimli::Reader::to_string_lossy(&s)
                    .ok()
                    .map(|s| s.into_owned())
            })
        };
        let comp_dir = unit.comp_dir.as_ref().and_then(|d| {
            gimli::Reader::to_string_lossy(d)
                .ok()
                .map(|s| s.into_owned())
        });
        let count = header.file_names().len() as u64 + u64::from(header.version() <= 4);
        let mut files = Vec::new();
        for i in 0..count.min(1 << 20) {
            files.push(header.file(i).and_then(|f| {
                let name = string(f.path_name())?;
                let dir = f.directory(header).and_then(string);
                let mut path = std::path::PathBuf::new();
                if let Some(c) = &comp_dir {
                    path.push(c);
                }
                if let Some(d) = dir {
                    path.push(d);
                }
                path.push(&name);
                Some(normalize(&path))
            }));
        }
        let mut rows = Vec::new();
        let mut iter = program.rows();
        while let Some((_, row)) = iter.next_row().map_err(err)? {
            rows.push(Row {
                addr: row.address(),
                file: row.file_index(),
                line: row.line().map_or(0, |l| l.get()),
                is_stmt: row.is_stmt(),
                prologue_end: row.prologue_end(),
                end_sequence: row.end_sequence(),
            });
        }
        Ok(UnitLines { rows, files })
    }

    /// Addresses of the `is_stmt` rows for `line` of every file whose path ends with
    /// `file_suffix` (at a `/` boundary), over all units, sorted and deduplicated. Units
    /// whose line program cannot be read are skipped.
    pub fn lines_for(&self, file_suffix: &str, line: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for idx in 0..self.units.len() {
            let Ok(lines) = self.unit_lines(idx) else {
                continue;
            };
            let wanted: Vec<bool> = lines
                .files
                .iter()
                .map(|f| f.as_deref().is_some_and(|p| path_matches(p, file_suffix)))
                .collect();
            if !wanted.contains(&true) {
                continue;
            }
            for r in &lines.rows {
                let file_ok = usize::try_from(r.file)
                    .ok()
                    .and_then(|i| wanted.get(i).copied())
                    .unwrap_or(false);
                if file_ok && r.line == line && r.is_stmt && !r.end_sequence {
                    out.push(r.addr);
                }
            }
            out.extend(self.call_sites(idx, &|p| path_matches(p, file_suffix), line));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `a/./b/../c` → `a/c`, textually (no filesystem access).
fn normalize(path: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    parts
        .iter()
        .collect::<std::path::PathBuf>()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_whole_components() {
        assert!(path_matches("/src/glibc/malloc/malloc.c", "malloc.c"));
        assert!(path_matches(
            "/src/glibc/malloc/malloc.c",
            "malloc/malloc.c"
        ));
        assert!(path_matches(
            "/src/glibc/malloc/malloc.c",
            "./malloc/malloc.c"
        ));
        assert!(path_matches(
            "/src/glibc/malloc/malloc.c",
            "/src/glibc/malloc/malloc.c"
        ));
        assert!(!path_matches("/src/glibc/malloc/tmalloc.c", "malloc.c"));
        assert!(!path_matches("/src/a.c", ""));
    }

    #[test]
    fn normalize_is_textual() {
        assert_eq!(normalize(Path::new("/a/./b/../c.c")), "/a/c.c");
        assert_eq!(normalize(Path::new("./csu/../sysdeps/x.c")), "sysdeps/x.c");
        assert_eq!(normalize(Path::new("../x.c")), "../x.c");
    }
}

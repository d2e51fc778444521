//! Where the DWARF of a binary may be, in the order gdb and perf look: the binary itself,
//! the build-id path, then the `.gnu_debuglink` name next to the binary, in its `.debug/`
//! subdirectory and under `/usr/lib/debug/<dir>/` (gdb's "Separate Debug Files" rules).
//! Nothing is opened: the caller tries each candidate in order, and should check that a
//! debuglink candidate's CRC32 or build id matches before trusting it.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// The global debug directory (gdb's `debug-file-directory` default on Debian).
const DEBUG_DIR: &str = "/usr/lib/debug";

/// Candidate files holding the DWARF of the ELF file `elf`, which was read from `path`.
///
/// `path` should be canonical (symlinks resolved): `/lib/x86_64-linux-gnu/libc.so.6` has its
/// debuglink copy, if any, under `/usr/lib/debug/usr/lib/x86_64-linux-gnu/`, not under
/// `/usr/lib/debug/lib/...`. Bytes that are not ELF give an empty list.
pub fn debug_candidates(elf: &[u8], path: &Path) -> Vec<PathBuf> {
    let Ok(file) = object::File::parse(elf) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData)
    {
        out.push(path.to_path_buf());
    }
    if let Ok(Some(id)) = file.build_id() {
        if let Some((first, rest)) = id.split_first() {
            if !rest.is_empty() {
                let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
                out.push(
                    Path::new(DEBUG_DIR)
                        .join(".build-id")
                        .join(format!("{first:02x}"))
                        .join(format!("{hex}.debug")),
                );
            }
        }
    }
    if let Ok(Some((name, _crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name);
        // A debuglink is a file name; anything with a directory in it is not trusted.
        if !name.is_empty() && !name.contains('/') {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let rel = dir.strip_prefix("/").unwrap_or(dir);
            for cand in [
                dir.join(&*name),
                dir.join(".debug").join(&*name),
                Path::new(DEBUG_DIR).join(rel).join(&*name),
            ] {
                if cand != path && !out.contains(&cand) {
                    out.push(cand);
                }
            }
        }
    }
    out
}

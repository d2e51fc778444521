//! DSOs (the files that maps point into) and where their symbols come from.
//!
//! perf 6.1 (`util/symbol.c: dso__load`) takes symbols from the first of these files that has
//! a `.symtab`, checking the build id when it knows one: the `.gnu_debuglink` target (next to
//! the binary, in its `.debug/`, under `/usr/lib/debug/<dir>/`), its build-id cache
//! (`~/.debug/.build-id/xx/rest`, a copy of the binary), `/usr/lib/debug/<path>.debug`,
//! `/usr/lib/debug/<path>`, `/usr/lib/debug/.build-id/xx/rest.debug`; when none has one,
//! the binary's `.dynsym`. Debian's `libc6-dbg` is found through the build id, so libc frames
//! show local names such as `__GI___libc_write`. Program headers always come from the binary.
//!
//! Files are read through [`FileSource`], so this module does no I/O of its own and tests can
//! hand it bytes. Each DSO is loaded once, on the first address that needs it.

use super::symbols::{self, SymbolMap};
use std::sync::Arc;

/// A file's bytes as a [`FileSource`] gives them (a mapping, a vector); shareable between
/// threads, so symbol tables that keep them can be built on another thread.
pub type FileData = dyn AsRef<[u8]> + Send + Sync;

/// Reads whole files for symbol loading; the CLI maps them.
pub trait FileSource {
    /// The bytes of `path`, or None when it cannot be read.
    fn read(&self, path: &str) -> Option<Box<FileData>>;
}

/// A [`FileSource`] that finds nothing (symbols stay unknown).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl FileSource for NoFiles {
    fn read(&self, _path: &str) -> Option<Box<FileData>> {
        None
    }
}

/// What kind of object a DSO is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsoKind {
    /// `[kernel.kallsyms]`.
    Kernel,
    /// A file mapped by a process.
    User,
    /// `[vdso]`: symbols from perf's build-id cache when the file lists its build id.
    Vdso,
    /// Anonymous or special memory (`//anon`, `[heap]`, JIT): no file, identity addresses.
    Anon,
}

/// One DSO.
#[derive(Debug)]
pub struct Dso {
    /// The name perf prints in `(...)`.
    pub name: Box<str>,
    /// What it is.
    pub kind: DsoKind,
    /// Build id from the file's BUILD_ID feature, if listed.
    pub build_id: Option<Vec<u8>>,
    symbols: Option<SymbolMap>,
}

impl Dso {
    /// A DSO named `name` whose symbols are loaded on first use.
    pub fn new(name: &str, kind: DsoKind, build_id: Option<Vec<u8>>) -> Dso {
        Dso {
            name: name.into(),
            kind,
            build_id,
            symbols: None,
        }
    }

    /// A DSO with these symbols already.
    pub fn with_symbols(name: &str, kind: DsoKind, symbols: SymbolMap) -> Dso {
        Dso {
            name: name.into(),
            kind,
            build_id: None,
            symbols: Some(symbols),
        }
    }

    /// Replace the symbols (the kernel's, when they arrive).
    pub fn set_symbols(&mut self, symbols: SymbolMap) {
        self.symbols = Some(symbols);
    }

    /// The symbols for one lookup, as perf's `map__find_symbol`: None for the lookup that
    /// loads a table whose load failed.
    pub fn symbols_for_lookup(
        &mut self,
        files: &dyn FileSource,
        home: Option<&str>,
    ) -> Option<&SymbolMap> {
        let first = self.symbols.is_none();
        let m = self.symbols(files, home);
        if first && m.load_failed {
            return None;
        }
        Some(m)
    }

    /// The path of the file this user DSO's symbols come from (perf's `symsrc_filename`):
    /// the binary, or its debug file.
    pub fn symbol_file(&self, files: &dyn FileSource, home: Option<&str>) -> Option<String> {
        if self.kind != DsoKind::User {
            return None;
        }
        let binary = files.read(&self.name)?;
        symbol_source(
            &self.name,
            self.build_id.as_deref(),
            (*binary).as_ref(),
            files,
            home,
        )
        .map(|(p, _)| p)
    }

    /// The symbols if they are loaded already.
    pub fn loaded_symbols(&self) -> Option<&SymbolMap> {
        self.symbols.as_ref()
    }

    /// The symbols, loading them through `files` the first time.
    pub fn symbols(&mut self, files: &dyn FileSource, home: Option<&str>) -> &SymbolMap {
        if self.symbols.is_none() {
            let m = match self.kind {
                DsoKind::User => load_user(&self.name, self.build_id.as_deref(), files, home),
                DsoKind::Vdso => load_vdso(self.build_id.as_deref(), files, home),
                DsoKind::Kernel | DsoKind::Anon => None,
            };
            self.symbols = Some(m.unwrap_or_default());
        }
        self.symbols.get_or_insert_with(SymbolMap::default)
    }
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_vdso(
    build_id: Option<&[u8]>,
    files: &dyn FileSource,
    home: Option<&str>,
) -> Option<SymbolMap> {
    let id = hex(build_id?);
    let path = format!("{}/.debug/[vdso]/{id}/vdso", home?);
    let data = files.read(&path)?;
    let d = (*data).as_ref();
    SymbolMap::from_elf(d, d)
}

/// The candidate symbol files for `path`, in perf's order (the binary itself last).
fn candidates(
    path: &str,
    build_id: &[u8],
    debuglink: Option<&str>,
    home: Option<&str>,
) -> Vec<String> {
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let mut v = Vec::new();
    if let Some(link) = debuglink {
        v.push(format!("{dir}/{link}"));
        v.push(format!("{dir}/.debug/{link}"));
        v.push(format!("/usr/lib/debug{dir}/{link}"));
    }
    let id = hex(build_id);
    if let (Some(home), Some((a, b))) = (home, (id.len() > 2).then(|| id.split_at(2))) {
        v.push(format!("{home}/.debug/.build-id/{a}/{b}/elf"));
    }
    v.push(format!("/usr/lib/debug{path}.debug"));
    v.push(format!("/usr/lib/debug{path}"));
    if let Some((a, b)) = (id.len() > 2).then(|| id.split_at(2)) {
        v.push(format!("/usr/lib/debug/.build-id/{a}/{b}.debug"));
    }
    v
}

fn load_user(
    path: &str,
    known_id: Option<&[u8]>,
    files: &dyn FileSource,
    home: Option<&str>,
) -> Option<SymbolMap> {
    // Shared: the table keeps the file mapped and reads its names in place.
    let binary: Arc<FileData> = Arc::from(files.read(path)?);
    let bin = (*binary).as_ref();
    match symbol_source(path, known_id, bin, files, home)? {
        (_, Some(data)) => SymbolMap::from_elf_shared(Arc::from(data), bin),
        (_, None) => SymbolMap::from_elf_shared(binary.clone(), bin),
    }
}

/// A file's bytes from a [`FileSource`].
type FileBytes = Box<FileData>;

/// The file a user DSO's symbols come from (perf's `symsrc_filename`) and its bytes (None:
/// the binary `bin` itself); None when the binary no longer matches the recorded build id.
fn symbol_source(
    path: &str,
    known_id: Option<&[u8]>,
    bin: &[u8],
    files: &dyn FileSource,
    home: Option<&str>,
) -> Option<(String, Option<FileBytes>)> {
    let own_id = symbols::build_id(bin);
    if let (Some(k), Some(o)) = (known_id, own_id.as_deref()) {
        if k != o {
            // The file changed since the recording: its symbols would lie.
            return None;
        }
    }
    let id = known_id.map(<[u8]>::to_vec).or(own_id).unwrap_or_default();
    if symbols::has_symtab(bin) {
        return Some((path.to_string(), None));
    }
    let link = symbols::debuglink(bin);
    for cand in candidates(path, &id, link.as_deref(), home) {
        let Some(data) = files.read(&cand) else {
            continue;
        };
        let d = (*data).as_ref();
        if !symbols::has_symtab(d) {
            continue;
        }
        if !id.is_empty() && symbols::build_id(d).is_some_and(|b| b != id) {
            continue;
        }
        return Some((cand, Some(data)));
    }
    Some((path.to_string(), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Mem(HashMap<String, Vec<u8>>);
    impl FileSource for Mem {
        fn read(&self, path: &str) -> Option<Box<FileData>> {
            self.0
                .get(path)
                .map(|v| Box::new(v.clone()) as Box<FileData>)
        }
    }

    #[test]
    fn candidate_order() {
        let c = candidates(
            "/usr/lib/libc.so.6",
            &[0x93, 0xac, 0x61],
            Some("x.debug"),
            Some("/root"),
        );
        assert_eq!(
            c,
            vec![
                "/usr/lib/x.debug",
                "/usr/lib/.debug/x.debug",
                "/usr/lib/debug/usr/lib/x.debug",
                "/root/.debug/.build-id/93/ac61/elf",
                "/usr/lib/debug/usr/lib/libc.so.6.debug",
                "/usr/lib/debug/usr/lib/libc.so.6",
                "/usr/lib/debug/.build-id/93/ac61.debug",
            ]
        );
    }

    #[test]
    fn a_binary_with_symtab_is_its_own_source_and_a_changed_one_has_none() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let files = Mem(HashMap::from([("/bin/x".to_string(), exe.clone())]));
        let mut d = Dso::new("/bin/x", DsoKind::User, None);
        assert!(d.symbols(&files, None).len() > 100);
        let mut d = Dso::new("/bin/x", DsoKind::User, Some(vec![1, 2, 3]));
        if symbols::build_id(&exe).is_some() {
            assert!(d.symbols(&files, None).is_empty());
        }
        let mut d = Dso::new("/bin/missing", DsoKind::User, None);
        assert!(d.symbols(&files, None).is_empty());
    }
}

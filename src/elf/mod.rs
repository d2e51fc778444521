//! ELF and kernel symbol tables: function symbols with their file offsets, kallsyms, and
//! demangling.
//!
//! Everything here is pure over bytes or text; the caller reads (or maps) the file.

pub mod demangle;
pub mod kallsyms;
pub mod symbols;

pub use symbols::{parse_functions, ElfError, FuncSymbol, SymbolTable};

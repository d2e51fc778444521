//! C spellings of BTF types, as pahole and perf print them: `struct file *`, `const char *`,
//! `char[16]`, `void (*)(struct sk_buff *)`, typedef names kept (`size_t`).
//!
//! C declarators read inside out, so a type is spelled by carrying the declarator built so far
//! (`*`, `(*)[4]`) down to the base type: a pointer adds `*` on the left, an array `[N]` and a
//! function `(params)` on the right, with parentheses when a pointer precedes them.

use super::raw::{Entry, Kind, Layer};
use super::{Btf, MAX_HOPS};
use crate::debuginfo::TypeId;

/// How many types one spelling may visit: a function pointer whose parameters are function
/// pointers nests, and corrupt BTF could make that exponential.
const SPELL_BUDGET: usize = 4096;

/// Longer declarators or parameter lists are cut to `...` (only corrupt BTF gets there).
const MAX_SPELLING: usize = 4096;

/// The kernel's longest symbol name; longer names are corrupt and read `?`.
const KSYM_NAME_LEN: usize = 512;

/// `base` followed by the declarator `decl`, with the space C style puts between them.
fn join(base: &str, decl: &str) -> String {
    if decl.is_empty() {
        base.to_string()
    } else if decl.starts_with('[') {
        format!("{base}{decl}")
    } else {
        format!("{base} {decl}")
    }
}

/// `decl` wrapped in parentheses if a pointer would otherwise bind to an array or function.
fn group(decl: &str) -> String {
    if decl.starts_with('*') {
        format!("({decl})")
    } else {
        decl.to_string()
    }
}

impl Btf {
    /// The C spelling of `ty` (see [`crate::debuginfo::TypeSource::type_name`]). Never fails:
    /// an unreadable type reads `<bad type N>`, a chain too deep `...`.
    pub(super) fn spell(&self, ty: TypeId) -> String {
        let mut budget = SPELL_BUDGET;
        self.spell_with(ty.0, "", 0, &mut budget)
    }

    /// The C declaration of `name` with type `ty`: `char comm[16]`, `struct file *file`,
    /// `void (*destructor)(struct sk_buff *)`. An empty `name` gives the type's spelling.
    pub fn declaration(&self, ty: TypeId, name: &str) -> String {
        let mut budget = SPELL_BUDGET;
        self.spell_with(ty.0, name, 0, &mut budget)
    }

    fn spell_with(&self, id: u64, decl: &str, depth: usize, budget: &mut usize) -> String {
        if depth > MAX_HOPS || *budget == 0 || decl.len() > MAX_SPELLING {
            return join("...", decl);
        }
        *budget -= 1;
        if id == 0 {
            return join("void", decl);
        }
        let Ok((layer, e, id32)) = self.entry(id) else {
            return join(&format!("<bad type {id}>"), decl);
        };
        let name = match self.name_of(&e, id32) {
            Ok(n) if n.len() <= KSYM_NAME_LEN => n,
            _ => "?",
        };
        let target = u64::from(e.size_type);
        let tagged = |keyword: &str| {
            if name.is_empty() {
                format!("{keyword} {{...}}")
            } else {
                format!("{keyword} {name}")
            }
        };
        match e.kind {
            Kind::Int | Kind::Float | Kind::Typedef => join(name, decl),
            Kind::Struct => join(&tagged("struct"), decl),
            Kind::Union => join(&tagged("union"), decl),
            Kind::Enum | Kind::Enum64 => join(&tagged("enum"), decl),
            Kind::Fwd => join(&tagged(if e.kflag { "union" } else { "struct" }), decl),
            Kind::Ptr => self.spell_with(target, &format!("*{decl}"), depth + 1, budget),
            Kind::Const | Kind::Volatile | Kind::Restrict => {
                let q = match e.kind {
                    Kind::Const => "const",
                    Kind::Volatile => "volatile",
                    _ => "restrict",
                };
                let on_pointer = matches!(self.entry(target), Ok((_, t, _)) if t.kind == Kind::Ptr);
                if on_pointer {
                    // `char *const p`: the qualifier belongs to the pointer, right of its `*`.
                    self.spell_with(target, &join(q, decl), depth + 1, budget)
                } else {
                    format!("{q} {}", self.spell_with(target, decl, depth + 1, budget))
                }
            }
            Kind::TypeTag | Kind::DeclTag | Kind::Var => {
                let decl = if e.kind == Kind::Var {
                    join(name, decl)
                } else {
                    decl.to_string()
                };
                self.spell_with(target, &decl, depth + 1, budget)
            }
            Kind::Array => {
                let elem = layer.tail_u32(&e, 0).unwrap_or(0);
                let n = layer.tail_u32(&e, 2).unwrap_or(0);
                let decl = format!("{}[{n}]", group(decl));
                self.spell_with(u64::from(elem), &decl, depth + 1, budget)
            }
            Kind::FuncProto => {
                let params = self.spell_params(layer, &e, depth, budget);
                let decl = format!("{}({params})", group(decl));
                self.spell_with(target, &decl, depth + 1, budget)
            }
            Kind::Func => self.spell_with(target, &join(name, decl), depth + 1, budget),
            Kind::Datasec => join(&format!("SEC(\"{name}\")"), decl),
        }
    }

    fn spell_params(&self, layer: &Layer, e: &Entry, depth: usize, budget: &mut usize) -> String {
        let mut params = Vec::with_capacity(usize::from(e.vlen));
        for i in 0..usize::from(e.vlen) {
            let name_off = layer.tail_u32(e, 2 * i).unwrap_or(0);
            let ty = layer.tail_u32(e, 2 * i + 1).unwrap_or(0);
            if params.iter().map(String::len).sum::<usize>() > MAX_SPELLING {
                params.push("...".to_string());
                break;
            }
            if ty == 0 && name_off == 0 {
                params.push("...".to_string());
            } else {
                params.push(self.spell_with(u64::from(ty), "", depth + 1, budget));
            }
        }
        if params.is_empty() {
            "void".to_string()
        } else {
            params.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::btf::testutil::{sample, BtfBuilder};
    use crate::btf::Btf;
    use crate::debuginfo::{TypeId, TypeSource};

    #[test]
    fn c_spellings() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        let name = |id: u32| btf.type_name(TypeId(u64::from(id)));
        let cases = [
            (0, "void"),
            (s.int, "int"),
            (s.uint, "unsigned int"),
            (s.char_ptr, "char *"),
            (s.const_char, "const char"),
            (s.const_char_ptr, "const char *"),
            (s.const_ptr, "char *const"),
            (s.size_t, "size_t"),
            (s.sz2, "sz2"),
            (s.volatile, "volatile size_t"),
            (s.char16, "char[16]"),
            (s.char4x16, "char[4][16]"),
            (s.qstr, "struct qstr"),
            (s.qstr_ptr, "struct qstr *"),
            (s.union_u, "union u"),
            (s.big, "enum big"),
            (s.fwd, "struct fwdstruct"),
            (s.double, "double"),
            (s.user_ptr, "char *"),
            (s.read_proto, "size_t (struct qstr *, char *, size_t)"),
            (s.fn_ptr, "size_t (*)(struct qstr *, char *, size_t)"),
            (s.vfs_read, "size_t vfs_read(struct qstr *, char *, size_t)"),
            (s.void_proto, "void (void)"),
            (s.printk, "int printk(const char *, ...)"),
        ];
        for (id, want) in cases {
            assert_eq!(name(id), want, "type id {id}");
        }
        assert_eq!(name(99_999), "<bad type 99999>");
        let decl = |id: u32, n: &str| btf.declaration(TypeId(u64::from(id)), n);
        assert_eq!(decl(s.char16, "comm"), "char comm[16]");
        assert_eq!(decl(s.qstr_ptr, "q"), "struct qstr *q");
        assert_eq!(decl(s.const_ptr, "p"), "char *const p");
        assert_eq!(
            decl(s.fn_ptr, "f"),
            "size_t (*f)(struct qstr *, char *, size_t)"
        );
        assert_eq!(decl(s.int, ""), "int");
    }

    #[test]
    fn pointers_to_arrays_and_anonymous_types() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, true);
        let arr = b.array(int, int, 4);
        let parr = b.ptr(arr);
        let p1 = b.ptr(int);
        let pp = b.ptr(p1);
        let anon = b.strukt("", 4, false, &[("i", int, 0)]);
        let panon = b.ptr(anon);
        let btf = Btf::parse(&b.build()).unwrap();
        let name = |id: u32| btf.type_name(TypeId(u64::from(id)));
        assert_eq!(name(parr), "int (*)[4]");
        assert_eq!(name(pp), "int **");
        assert_eq!(name(panon), "struct {...} *");
    }

    #[test]
    fn cycles_end_in_an_ellipsis() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        // Typedef names are not expanded, so a typedef cycle spells fine.
        assert_eq!(btf.type_name(TypeId(u64::from(s.loop_const))), "const loop");
        // A pointer to itself.
        let mut b = BtfBuilder::new();
        let p = b.ptr(1);
        let btf = Btf::parse(&b.build()).unwrap();
        let n = btf.type_name(TypeId(u64::from(p)));
        assert!(n.starts_with("... *"), "{n}");
    }
}

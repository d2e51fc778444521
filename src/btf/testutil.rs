//! A small BTF writer for tests: types and strings in, a valid blob out.

/// Builds a BTF blob. Type ids are handed out from 1 (or from `first_id` for split BTF).
pub(crate) struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    str_base: u32,
    big_endian: bool,
}

impl BtfBuilder {
    pub fn new() -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            str_base: 0,
            big_endian: false,
        }
    }

    /// Split BTF on a base whose last id is `first_id - 1` and whose strings take `str_base`.
    pub fn split(first_id: u32, str_base: u32) -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: Vec::new(),
            next_id: first_id,
            str_base,
            big_endian: false,
        }
    }

    pub fn big_endian(mut self) -> BtfBuilder {
        self.big_endian = true;
        self
    }

    fn word(&mut self, w: u32) {
        let b = if self.big_endian {
            w.to_be_bytes()
        } else {
            w.to_le_bytes()
        };
        self.types.extend_from_slice(&b);
    }

    /// Add a string (empty: offset 0, or for split BTF whatever the caller passes).
    pub fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// A raw record: name, kind, vlen, kflag, size/type, and tail words.
    pub fn raw(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kflag: bool,
        st: u32,
        tail: &[u32],
    ) -> u32 {
        let name_off = self.str(name);
        self.word(name_off);
        self.word((u32::from(kflag) << 31) | (kind << 24) | vlen);
        self.word(st);
        for &w in tail {
            self.word(w);
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// INT with `size` bytes, encoding flags (1 signed, 2 char, 4 bool), `bits` and bit `offset`.
    pub fn int_enc(&mut self, name: &str, size: u32, flags: u32, offset: u32, bits: u32) -> u32 {
        self.raw(
            name,
            1,
            0,
            false,
            size,
            &[(flags << 24) | (offset << 16) | bits],
        )
    }

    pub fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        self.int_enc(name, size, u32::from(signed), 0, size * 8)
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.raw("", 2, 0, false, to, &[])
    }

    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        self.raw("", 3, 0, false, 0, &[elem, index, n])
    }

    /// STRUCT (or UNION) with members `(name, type, offset word)`.
    pub fn composite(
        &mut self,
        union: bool,
        name: &str,
        size: u32,
        kflag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let mut tail = Vec::new();
        for &(n, ty, off) in members {
            tail.extend_from_slice(&[self.str(n), ty, off]);
        }
        self.raw(
            name,
            if union { 5 } else { 4 },
            members.len() as u32,
            kflag,
            size,
            &tail,
        )
    }

    pub fn strukt(
        &mut self,
        name: &str,
        size: u32,
        kflag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        self.composite(false, name, size, kflag, members)
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.raw(name, 8, 0, false, to, &[])
    }

    pub fn modifier(&mut self, kind: u32, to: u32) -> u32 {
        self.raw("", kind, 0, false, to, &[])
    }

    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let mut tail = Vec::new();
        for &(n, ty) in params {
            tail.extend_from_slice(&[self.str(n), ty]);
        }
        self.raw("", 13, params.len() as u32, false, ret, &tail)
    }

    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.raw(name, 12, 1, false, proto, &[])
    }

    pub fn enum64(&mut self, name: &str, signed: bool, values: &[(&str, i64)]) -> u32 {
        let mut tail = Vec::new();
        for &(n, v) in values {
            let v = v as u64;
            tail.extend_from_slice(&[self.str(n), v as u32, (v >> 32) as u32]);
        }
        self.raw(name, 19, values.len() as u32, signed, 8, &tail)
    }

    /// The blob: header, types, strings.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let w = |out: &mut Vec<u8>, v: u32| {
            out.extend_from_slice(&if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let magic: u16 = 0xeb9f;
        out.extend_from_slice(&if self.big_endian {
            magic.to_be_bytes()
        } else {
            magic.to_le_bytes()
        });
        out.push(1);
        out.push(0);
        w(&mut out, 24);
        w(&mut out, 0);
        w(&mut out, self.types.len() as u32);
        w(&mut out, self.types.len() as u32);
        w(&mut out, self.strings.len() as u32);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A minimal little-endian ELF64 relocatable file with one `.BTF` section holding `btf`.
pub(crate) fn elf_with_btf(btf: &[u8]) -> Vec<u8> {
    let shstrtab = b"\0.BTF\0.shstrtab\0";
    let btf_off = 64u64;
    let shstr_off = btf_off + btf.len() as u64;
    let sh_off = (shstr_off + shstrtab.len() as u64).next_multiple_of(8);
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, ELFDATA2LSB, EV_CURRENT, SYSV
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&sh_off.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&3u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&2u16.to_le_bytes()); // e_shstrndx
    out.extend_from_slice(btf);
    out.extend_from_slice(shstrtab);
    out.resize(sh_off as usize, 0);
    let section = |out: &mut Vec<u8>, name: u32, ty: u32, off: u64, size: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // addr
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // link
        out.extend_from_slice(&0u32.to_le_bytes()); // info
        out.extend_from_slice(&1u64.to_le_bytes()); // addralign
        out.extend_from_slice(&0u64.to_le_bytes()); // entsize
    };
    section(&mut out, 0, 0, 0, 0);
    section(&mut out, 1, 1, btf_off, btf.len() as u64); // SHT_PROGBITS
    section(&mut out, 6, 3, shstr_off, shstrtab.len() as u64); // SHT_STRTAB
    out
}

/// The ids of [`sample`]'s types.
#[allow(dead_code)]
pub(crate) struct Sample {
    pub int: u32,
    pub char_: u32,
    pub uint: u32,
    pub char_ptr: u32,
    pub const_char: u32,
    pub const_char_ptr: u32,
    pub size_t: u32,
    pub ulong: u32,
    pub sz2: u32,
    pub volatile: u32,
    pub char16: u32,
    pub qstr: u32,
    pub bf3: u32,
    pub bf5at2: u32,
    pub old: u32,
    pub qstr_ptr: u32,
    pub read_proto: u32,
    pub vfs_read: u32,
    pub big: u32,
    pub void_proto: u32,
    pub noargs: u32,
    pub fn_ptr: u32,
    pub union_u: u32,
    pub loop_td: u32,
    pub loop_const: u32,
    pub user_tag: u32,
    pub user_ptr: u32,
    pub char4x16: u32,
    pub fwd: u32,
    pub double: u32,
    pub decl_tag: u32,
    pub printk_proto: u32,
    pub printk: u32,
    pub const_ptr: u32,
}

/// A blob with one of each interesting shape, in the byte order asked for.
pub(crate) fn sample(big_endian: bool) -> (Vec<u8>, Sample) {
    let mut b = BtfBuilder::new();
    if big_endian {
        b = b.big_endian();
    }
    let int = b.int("int", 4, true);
    let char_ = b.int_enc("char", 1, 1 | 2, 0, 8);
    let uint = b.int("unsigned int", 4, false);
    let char_ptr = b.ptr(char_);
    let const_char = b.modifier(10, char_);
    let const_char_ptr = b.ptr(const_char);
    let size_t = b.typedef("size_t", 8);
    let ulong = b.int("long unsigned int", 8, false);
    let sz2 = b.typedef("sz2", 10);
    let volatile = b.modifier(9, size_t);
    let char16 = b.array(char_, uint, 16);
    // struct qstr { const char *name; u32 len:20; u32 hash:12; char buf[16]; } with kind_flag.
    let qstr = b.strukt(
        "qstr",
        32,
        true,
        &[
            ("name", const_char_ptr, 0),
            ("len", uint, (20 << 24) | 64),
            ("hash", uint, (12 << 24) | 84),
            ("buf", char16, 128),
        ],
    );
    let bf3 = b.int_enc("unsigned int", 4, 0, 0, 3);
    let bf5at2 = b.int_enc("unsigned int", 4, 0, 2, 5);
    // The same idea without kind_flag: widths in the members' INT encodings.
    let old = b.strukt(
        "old",
        12,
        false,
        &[
            ("a", uint, 0),
            ("b", bf3, 32),
            ("c", bf5at2, 32),
            ("d", int, 64),
        ],
    );
    let qstr_ptr = b.ptr(qstr);
    let read_proto = b.func_proto(
        size_t,
        &[("file", qstr_ptr), ("buf", char_ptr), ("count", size_t)],
    );
    let vfs_read = b.func("vfs_read", read_proto);
    let big = b.enum64("big", true, &[("BIG_NEG", -1), ("BIG_HUGE", 1 << 40)]);
    let void_proto = b.func_proto(0, &[]);
    let noargs = b.func("noargs", void_proto);
    let fn_ptr = b.ptr(read_proto);
    let union_u = b.composite(true, "u", 8, false, &[("x", int, 0), ("y", ulong, 0)]);
    let loop_td = b.typedef("loop", loop_td_target(&b));
    let loop_const = b.modifier(10, loop_td);
    let user_tag = b.raw("user", 18, 0, false, char_, &[]);
    let user_ptr = b.ptr(user_tag);
    let char4x16 = b.array(char16, uint, 4);
    let fwd = b.raw("fwdstruct", 7, 0, false, 0, &[]);
    let double = b.raw("double", 16, 0, false, 8, &[]);
    let decl_tag = b.raw("tag", 17, 0, false, vfs_read, &[u32::MAX]);
    let printk_proto = b.func_proto(int, &[("fmt", const_char_ptr), ("", 0)]);
    let printk = b.func("printk", printk_proto);
    let const_ptr = b.modifier(10, char_ptr);
    let s = Sample {
        int,
        char_,
        uint,
        char_ptr,
        const_char,
        const_char_ptr,
        size_t,
        ulong,
        sz2,
        volatile,
        char16,
        qstr,
        bf3,
        bf5at2,
        old,
        qstr_ptr,
        read_proto,
        vfs_read,
        big,
        void_proto,
        noargs,
        fn_ptr,
        union_u,
        loop_td,
        loop_const,
        user_tag,
        user_ptr,
        char4x16,
        fwd,
        double,
        decl_tag,
        printk_proto,
        printk,
        const_ptr,
    };
    (b.build(), s)
}

/// The typedef `loop` points at the CONST right after it, which points back: a cycle.
fn loop_td_target(b: &BtfBuilder) -> u32 {
    b.next_id + 1
}

/// `blob` with its type section cut to `len` bytes (header fixed up, strings kept).
pub(crate) fn cut_types(blob: &[u8], len: u32) -> Vec<u8> {
    let word = |off: usize| u32::from_le_bytes(blob[off..off + 4].try_into().unwrap());
    let (type_len, str_off, str_len) = (word(12), word(16), word(20));
    let types = &blob[24..24 + len as usize];
    let strs = &blob[24 + str_off as usize..24 + (str_off + str_len) as usize];
    let _ = type_len;
    let mut out = blob[..24].to_vec();
    out[12..16].copy_from_slice(&len.to_le_bytes());
    out[16..20].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(types);
    out.extend_from_slice(strs);
    out
}

//! The part of glibc's printf that libtraceevent hands conversions to: `%d %i %u %x %X %o`
//! with `hh h l ll L z` and `%s`, flags `- 0 #` (and ` +`, which libtraceevent never passes
//! through), widths and precisions, `*` from an argument. `%05s` pads with blanks, as glibc does.
//! Widths and precisions are capped at [`MAX_WIDTH`]: a corrupt `%*s` width of 4 billion makes
//! perf print 4 GB of blanks, here 4 KiB.

/// The largest width or precision honoured.
pub(crate) const MAX_WIDTH: usize = 4096;

/// How many bytes or digits: written in the spec, or taken from an argument (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Fixed(usize),
    Star,
}

/// One parsed conversion, e.g. `%-08.3llx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    left: bool,
    zero: bool,
    alt: bool,
    plus: bool,
    space: bool,
    width: Option<Count>,
    prec: Option<Count>,
    /// Bits printf reads for an integer: 8 (`hh`), 16 (`h`), 32, 64 (`l`, `ll`, `L`, `z`).
    bits: u32,
    /// The conversion letter.
    pub(crate) conv: u8,
}

impl Spec {
    /// `%X` with no flags, width or precision, reading `bits` bits.
    const fn plain(conv: u8, bits: u32) -> Spec {
        Spec {
            left: false,
            zero: false,
            alt: false,
            plus: false,
            space: false,
            width: None,
            prec: None,
            bits,
            conv,
        }
    }

    /// Parse `%...X`; lenient about order, as only libtraceevent-accepted specs reach here.
    pub(crate) fn parse(text: &str) -> Spec {
        let bytes = text.as_bytes();
        let mut i = usize::from(bytes.first() == Some(&b'%'));
        let mut spec = Spec::plain(bytes.last().copied().unwrap_or(b's'), 32);
        while let Some(&b) = bytes.get(i) {
            match b {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'#' => spec.alt = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize| -> Option<Count> {
            if bytes.get(*i) == Some(&b'*') {
                *i += 1;
                return Some(Count::Star);
            }
            let start = *i;
            let mut n = 0usize;
            while let Some(&d) = bytes.get(*i).filter(|d| d.is_ascii_digit()) {
                n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                *i += 1;
            }
            (*i > start).then_some(Count::Fixed(n))
        };
        spec.width = number(&mut i);
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            spec.prec = Some(number(&mut i).unwrap_or(Count::Fixed(0)));
        }
        let mut h = 0;
        let mut long = false;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'h' => h += 1,
                b'l' | b'L' | b'z' | b'Z' | b'j' | b't' | b'q' => long = true,
                _ => break,
            }
            i += 1;
        }
        spec.bits = if long {
            64
        } else if h >= 2 {
            8
        } else if h == 1 {
            16
        } else {
            32
        };
        spec
    }

    /// Width and precision, with a `*` resolved from `star` (the first `*` takes it).
    fn counts(&self, star: Option<i64>) -> (usize, bool, Option<usize>) {
        let mut left = self.left;
        let mut star = star;
        let width = match self.width {
            Some(Count::Fixed(n)) => n.min(MAX_WIDTH),
            Some(Count::Star) => {
                let v = star.take().unwrap_or(0);
                if v < 0 {
                    left = true;
                }
                usize::try_from(v.unsigned_abs())
                    .unwrap_or(usize::MAX)
                    .min(MAX_WIDTH)
            }
            None => 0,
        };
        let prec = match self.prec {
            Some(Count::Fixed(n)) => Some(n.min(MAX_WIDTH)),
            Some(Count::Star) => {
                let v = star.take().unwrap_or(0);
                usize::try_from(v).ok().map(|n| n.min(MAX_WIDTH))
            }
            None => None,
        };
        (width, left, prec)
    }
}

fn pad(out: &mut Vec<u8>, byte: u8, n: usize) {
    out.resize(out.len() + n, byte);
}

/// `%s`: the bytes up to a NUL, cut to the precision, padded to the width.
pub(crate) fn string(out: &mut Vec<u8>, spec: &Spec, star: Option<i64>, bytes: &[u8]) {
    let bytes = super::raw::c_str(bytes);
    let (width, left, prec) = spec.counts(star);
    let bytes = match prec {
        Some(p) if p < bytes.len() => &bytes[..p],
        _ => bytes,
    };
    let fill = width.saturating_sub(bytes.len());
    if !left {
        pad(out, b' ', fill);
    }
    out.extend_from_slice(bytes);
    if left {
        pad(out, b' ', fill);
    }
}

/// An integer conversion of `passed`, the 64-bit register printf reads its argument from.
pub(crate) fn int(out: &mut Vec<u8>, spec: &Spec, star: Option<i64>, passed: u64) {
    let (width, left, prec) = spec.counts(star);
    let bits = spec.bits;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let raw = passed & mask;
    let (negative, magnitude) = match spec.conv {
        b'd' | b'i' => {
            let shift = 64 - bits;
            let v = ((raw << shift) as i64) >> shift;
            (v < 0, v.unsigned_abs())
        }
        _ => (false, raw),
    };
    let (base, upper) = match spec.conv {
        b'x' => (16, false),
        b'X' => (16, true),
        b'o' => (8, false),
        _ => (10, false),
    };
    // Digits fill `buf` from the end: `buf[24 - n..]` is the number, most significant first.
    let mut buf = [0u8; 24];
    let n = match base {
        16 => radix_digits::<16>(magnitude, upper, &mut buf),
        8 => radix_digits::<8>(magnitude, false, &mut buf),
        _ => radix_digits::<10>(magnitude, false, &mut buf),
    };
    let digits = &buf[24 - n..];
    // Precision is a minimum digit count; 0 with precision 0 prints no digits.
    let min_digits = prec.unwrap_or(1);
    let mut zeros = min_digits.saturating_sub(n);
    if spec.alt && base == 8 && zeros == 0 && (n == 0 || digits[0] != b'0') {
        zeros = 1;
    }
    let prefix: &[u8] = if negative {
        b"-"
    } else if spec.plus && base == 10 {
        b"+"
    } else if spec.space && base == 10 {
        b" "
    } else if spec.alt && magnitude != 0 && base == 16 {
        if upper {
            b"0X"
        } else {
            b"0x"
        }
    } else {
        b""
    };
    let len = prefix.len() + zeros + n;
    let fill = width.saturating_sub(len);
    let zero_fill = !left && spec.zero && prec.is_none();
    if !left && !zero_fill {
        pad(out, b' ', fill);
    }
    out.extend_from_slice(prefix);
    if zero_fill {
        pad(out, b'0', fill);
    }
    pad(out, b'0', zeros);
    out.extend_from_slice(digits);
    if left {
        pad(out, b' ', fill);
    }
}

/// The digits of `v` in `BASE` (a constant, so the division compiles to a multiplication or
/// a shift: this is the hottest loop of a replay), right-aligned in `buf`; returns how many.
/// Zero has no digits (printf's precision rules add them).
fn radix_digits<const BASE: u64>(mut v: u64, upper: bool, buf: &mut [u8; 24]) -> usize {
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = table[(v % BASE) as usize];
        v /= BASE;
    }
    buf.len() - i
}

/// `%llx`.
pub(crate) fn hex(out: &mut Vec<u8>, v: u64) {
    int(out, &HEX64, None, v);
}

/// `%02x` of a byte.
pub(crate) fn hex2(out: &mut Vec<u8>, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(DIGITS[usize::from(b >> 4)]);
    out.push(DIGITS[usize::from(b & 15)]);
}

/// `%llu`.
pub(crate) fn dec(out: &mut Vec<u8>, v: u64) {
    int(out, &DEC64, None, v);
}

/// `%lld`.
pub(crate) fn dec_signed(out: &mut Vec<u8>, v: i64) {
    dec_signed_width(out, v, 0);
}

/// `%Nd`.
pub(crate) fn dec_signed_width(out: &mut Vec<u8>, v: i64, width: usize) {
    let spec = Spec {
        width: Some(Count::Fixed(width)),
        conv: b'd',
        ..DEC64
    };
    int(out, &spec, None, v as u64);
}

const HEX64: Spec = Spec::plain(b'x', 64);

const DEC64: Spec = Spec::plain(b'u', 64);

#[cfg(test)]
mod tests {
    use super::*;

    fn i(spec: &str, v: i64) -> String {
        let mut out = Vec::new();
        int(&mut out, &Spec::parse(spec), None, v as u64);
        String::from_utf8(out).unwrap()
    }

    fn s(spec: &str, star: Option<i64>, v: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, &Spec::parse(spec), star, v.as_bytes());
        String::from_utf8(out).unwrap()
    }

    // Expected strings are glibc's output for the same printf calls.
    #[test]
    fn integers_like_glibc() {
        assert_eq!(i("%-05d", 12), "12   ");
        assert_eq!(i("%#o", 0), "0");
        assert_eq!(i("%#x", 0), "0");
        assert_eq!(i("%.0d", 0), "");
        assert_eq!(i("%#.3x", 5), "0x005");
        assert_eq!(i("%5.3d", -7), " -007");
        assert_eq!(i("%-#8x", 255), "0xff    ");
        assert_eq!(i("%08.3d", -5), "    -005");
        assert_eq!(i("%#05x", 1), "0x001");
        assert_eq!(i("%03d", 0), "000");
        assert_eq!(i("%d", -1), "-1");
        assert_eq!(i("%u", -1), "4294967295");
        assert_eq!(i("%lu", -1), "18446744073709551615");
        assert_eq!(i("%hhd", 0xff), "-1");
        assert_eq!(i("%hx", 0x12345), "2345");
        assert_eq!(i("%llX", 0xabc), "ABC");
        assert_eq!(i("%Lu", 472), "472");
    }

    #[test]
    fn strings_like_glibc() {
        assert_eq!(s("%05s", None, "ab"), "   ab");
        assert_eq!(s("%.3s", None, "abcdef"), "abc");
        assert_eq!(s("%-16s", None, "perf"), "perf            ");
        assert_eq!(s("%*s", Some(-4), "a"), "a   ");
        assert_eq!(s("%.*s", Some(2), "abc"), "ab");
    }
}

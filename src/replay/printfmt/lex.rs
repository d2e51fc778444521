//! The tokenizer libtraceevent uses for `print fmt:` (`__read_token()` in `event-parse.c`).
//!
//! Its quirks are kept on purpose, because they decide how a format parses: `->`, `--`, `++`,
//! `<<`, `>>`, `&&`, `||` and a trailing `=` (`<=`, `!=`, `<<=`) make one operator token;
//! every other punctuation byte is a one-byte operator; `(`, `)` and `,` are delimiters;
//! adjacent double-quoted strings are joined into one token (the quotes are dropped and the
//! backslashes kept, so `\"` reaches the format parser as two bytes); a byte that is not
//! printable ASCII ends the input. Unlike libtraceevent, an unterminated string is an error
//! instead of an endless loop.

/// What kind of token was read (`enum tep_event_type`, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A parse error (never produced by the tokenizer itself except for an open string).
    Error,
    /// End of input, or a byte that is not printable.
    None,
    /// Blanks (skipped by the readers).
    Space,
    /// `\n`.
    Newline,
    /// Punctuation: `->`, `<<`, `*`, `?`, `[` ...
    Op,
    /// `(`, `)`, `,`.
    Delim,
    /// Letters, digits and `_`.
    Item,
    /// A double-quoted string, without the quotes.
    Dquote,
    /// A single-quoted string, without the quotes.
    Squote,
}

impl Kind {
    /// `event_item_type()`: a token that can start an operand.
    pub(crate) fn is_item(self) -> bool {
        matches!(self, Kind::Item | Kind::Dquote | Kind::Squote)
    }
}

fn kind_of(ch: Option<u8>) -> Kind {
    let Some(ch) = ch else {
        return Kind::None;
    };
    match ch {
        b'\n' => Kind::Newline,
        b' ' | b'\t' | 0x0b | 0x0c | b'\r' => Kind::Space,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => Kind::Item,
        b'\'' => Kind::Squote,
        b'"' => Kind::Dquote,
        b'(' | b')' | b',' => Kind::Delim,
        0x21..=0x7e => Kind::Op,
        _ => Kind::None,
    }
}

fn is_c_space(ch: Option<u8>) -> bool {
    matches!(ch, Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
}

/// A cursor over the print fmt text.
pub(crate) struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Lexer<'a> {
        Lexer {
            input: input.as_bytes(),
            pos: 0,
        }
    }

    fn read_char(&mut self) -> Option<u8> {
        let ch = self.input.get(self.pos).copied();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// `__read_token()`: one token, spaces included.
    fn raw_token(&mut self) -> (Kind, String) {
        let Some(first) = self.read_char() else {
            return (Kind::None, String::new());
        };
        let kind = kind_of(Some(first));
        if kind == Kind::None {
            return (kind, String::new());
        }
        let mut buf = vec![first];
        match kind {
            Kind::Newline | Kind::Delim => {}
            Kind::Op => {
                let mut test_equal = false;
                match first {
                    b'-' if self.peek() == Some(b'>') => {
                        buf.extend(self.read_char());
                    }
                    b'-' | b'+' | b'|' | b'&' | b'>' | b'<' => {
                        if self.peek() == Some(first) {
                            buf.extend(self.read_char());
                            test_equal = matches!(first, b'>' | b'<');
                        } else {
                            test_equal = true;
                        }
                    }
                    b'!' | b'=' => test_equal = true,
                    _ => {}
                }
                if test_equal && self.peek() == Some(b'=') {
                    buf.extend(self.read_char());
                }
            }
            Kind::Dquote | Kind::Squote => {
                buf.clear();
                let quote = first;
                let mut ch = first;
                loop {
                    // The do-while of __read_token: `\\` cancels only for one byte, since
                    // last_ch is reloaded from ch at the top of each turn.
                    let mut last = ch;
                    let Some(next) = self.read_char() else {
                        return (Kind::Error, String::new());
                    };
                    ch = next;
                    buf.push(ch);
                    if ch == b'\\' && last == b'\\' {
                        last = 0;
                    }
                    if ch == quote && last != b'\\' {
                        buf.pop();
                        if kind == Kind::Dquote {
                            let save = self.pos;
                            let mut c = self.read_char();
                            while is_c_space(c) {
                                c = self.read_char();
                            }
                            if c == Some(b'"') {
                                ch = b'"';
                                continue;
                            }
                            self.pos = save;
                        }
                        break;
                    }
                }
            }
            _ => {
                while kind_of(self.peek()) == kind {
                    buf.extend(self.read_char());
                }
            }
        }
        (kind, String::from_utf8_lossy(&buf).into_owned())
    }

    /// `read_token()`: skips blanks, not newlines.
    pub(crate) fn token(&mut self) -> (Kind, String) {
        loop {
            let (kind, text) = self.raw_token();
            if kind != Kind::Space {
                return (kind, text);
            }
        }
    }

    /// `read_token_item()`: skips blanks and newlines.
    pub(crate) fn token_item(&mut self) -> (Kind, String) {
        loop {
            let (kind, text) = self.raw_token();
            if kind != Kind::Space && kind != Kind::Newline {
                return (kind, text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<(Kind, String)> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let token = lexer.token_item();
            if matches!(token.0, Kind::None | Kind::Error) {
                out.push(token);
                return out;
            }
            out.push(token);
        }
    }

    fn texts(text: &str) -> Vec<String> {
        all(text).into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn operators_join_as_libtraceevent_does() {
        assert_eq!(
            texts("REC->a<<=2 >= b && c || !d != e -- f ->g ~h"),
            [
                "REC", "->", "a", "<<=", "2", ">=", "b", "&&", "c", "||", "!", "d", "!=", "e",
                "--", "f", "->", "g", "~", "h", ""
            ]
        );
        assert_eq!(texts("a-=b"), ["a", "-=", "b", ""]);
        assert_eq!(texts("x[3]"), ["x", "[", "3", "]", ""]);
    }

    #[test]
    fn strings_join_and_keep_backslashes() {
        let tokens = all(r#""a=\"%s\"" "b" , 'c'"#);
        assert_eq!(tokens[0], (Kind::Dquote, r#"a=\"%s\"b"#.to_owned()));
        assert_eq!(tokens[1], (Kind::Delim, ",".to_owned()));
        assert_eq!(tokens[2], (Kind::Squote, "c".to_owned()));
        assert_eq!(all("\"open").last().map(|t| t.0), Some(Kind::Error));
    }

    #[test]
    fn unprintable_byte_ends_input() {
        assert_eq!(texts("a \u{e9} b"), ["a", ""]);
    }
}

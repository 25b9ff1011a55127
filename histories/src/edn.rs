//! A small EDN reader: enough of the format for Jepsen histories (nil,
//! booleans, integers, floats, strings, characters, keywords, symbols,
//! vectors, lists, maps, sets, tagged values, `;` comments and `#_` discards).
//! It keeps line numbers so import errors can point at the offending line.

use crate::error::HistoryError;

/// A parsed EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    /// Without the leading colon: `:invoke` is `Keyword("invoke")`.
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    List(Vec<Edn>),
    Set(Vec<Edn>),
    /// Entries in source order (histories have a handful of keys, so a vector
    /// beats a map).
    Map(Vec<(Edn, Edn)>),
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// Looks up a keyword key in a map.
    pub fn get(&self, keyword: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == keyword))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A cursor over EDN text.
pub struct Reader<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
        )
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader {
            src: text.as_bytes(),
            text,
            pos: 0,
            line: 1,
        }
    }

    /// The current 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    fn err(&self, message: impl Into<String>) -> HistoryError {
        HistoryError::new(self.line, message)
    }

    /// Skips whitespace, commas and comments; returns the next byte, if any.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.src.get(self.pos) {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b';' => {
                    while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ if b.is_ascii_whitespace() || b == b',' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    /// Consumes `b` if it is the next significant byte.
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace, comments and `#_` discarded forms, so that
    /// [`Reader::line`] is the line of the next value that counts.
    pub fn skip_ignored(&mut self) -> Result<(), HistoryError> {
        while self.peek() == Some(b'#') && self.src.get(self.pos + 1) == Some(&b'_') {
            self.pos += 2;
            self.value()?;
        }
        Ok(())
    }

    /// Reads the next value; `None` at the end of the input.
    pub fn next_value(&mut self) -> Result<Option<Edn>, HistoryError> {
        self.skip_ignored()?;
        if self.peek().is_none() {
            return Ok(None);
        }
        self.value().map(Some)
    }

    /// Reads one value, which must be there.
    pub fn value(&mut self) -> Result<Edn, HistoryError> {
        let Some(b) = self.peek() else {
            return Err(self.err("unexpected end of input (truncated?)"));
        };
        match b {
            b'[' => self.seq(b']').map(Edn::Vector),
            b'(' => self.seq(b')').map(Edn::List),
            b'{' => self.map(),
            b'"' => self.string(),
            b'\\' => self.character(),
            b'#' => self.dispatch(),
            b']' | b')' | b'}' => Err(self.err(format!("unexpected '{}'", b as char))),
            _ => self.atom(),
        }
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Edn>, HistoryError> {
        let start = self.line;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.err(format!(
                        "unexpected end of input in a collection opened on line {start}"
                    )));
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => {
                    if let Some(v) = self.next_value()? {
                        items.push(v);
                    }
                }
            }
        }
    }

    fn map(&mut self) -> Result<Edn, HistoryError> {
        let start = self.line;
        let items = self.seq(b'}')?;
        if items.len() % 2 != 0 {
            return Err(HistoryError::new(start, "map with an odd number of forms"));
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn string(&mut self) -> Result<Edn, HistoryError> {
        let start = self.line;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find(['"', '\\', '\n']) else {
                return Err(HistoryError::new(start, "unterminated string (truncated?)"));
            };
            out.push_str(&rest[..i]);
            self.pos += i;
            match self.src[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(Edn::Str(out));
                }
                b'\n' => {
                    out.push('\n');
                    self.line += 1;
                    self.pos += 1;
                }
                _ => {
                    let esc = self.src.get(self.pos + 1).copied();
                    self.pos += 2;
                    match esc {
                        Some(b'n') => out.push('\n'),
                        Some(b't') => out.push('\t'),
                        Some(b'r') => out.push('\r'),
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'u') => {
                            let hex = self
                                .text
                                .get(self.pos..self.pos + 4)
                                .ok_or_else(|| self.err("bad \\u escape"))?;
                            let c = u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("bad \\u escape"))?;
                            out.push(c);
                            self.pos += 4;
                        }
                        _ => return Err(self.err("bad escape in string")),
                    }
                }
            }
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        self.pos += 1;
        while self.src.get(self.pos).is_some_and(|&b| !is_delimiter(b)) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn character(&mut self) -> Result<Edn, HistoryError> {
        let tok = &self.token()[1..];
        let c = match tok {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            _ => {
                let mut chars = tok.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => return Err(self.err(format!("bad character literal \\{tok}"))),
                }
            }
        };
        Ok(Edn::Char(c))
    }

    fn dispatch(&mut self) -> Result<Edn, HistoryError> {
        match self.src.get(self.pos + 1) {
            Some(b'{') => {
                self.pos += 1;
                self.seq(b'}').map(Edn::Set)
            }
            _ => {
                let tag = self.token()[1..].to_owned();
                if tag.is_empty() {
                    return Err(self.err("bad '#' dispatch"));
                }
                let v = self.value()?;
                Ok(Edn::Tagged(tag, Box::new(v)))
            }
        }
    }

    fn atom(&mut self) -> Result<Edn, HistoryError> {
        let tok = self.token();
        if let Some(name) = tok.strip_prefix(':') {
            return Ok(Edn::Keyword(name.to_owned()));
        }
        match tok {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let first = tok.as_bytes()[0];
        let numeric = first.is_ascii_digit()
            || ((first == b'-' || first == b'+')
                && tok.len() > 1
                && tok.as_bytes()[1].is_ascii_digit());
        if !numeric {
            return Ok(Edn::Symbol(tok.to_owned()));
        }
        let digits = tok.strip_suffix('N').unwrap_or(tok);
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(Edn::Int(i));
        }
        let float = tok.strip_suffix('M').unwrap_or(tok);
        float
            .parse::<f64>()
            .map(Edn::Float)
            .map_err(|_| self.err(format!("bad number {tok}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Edn {
        Reader::new(text).next_value().unwrap().unwrap()
    }

    #[test]
    fn scalars_and_collections() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("-12"), Edn::Int(-12));
        assert_eq!(one("1.5"), Edn::Float(1.5));
        assert_eq!(one(":cas"), Edn::Keyword("cas".into()));
        assert_eq!(one("\"a\\\"b\\n\""), Edn::Str("a\"b\n".into()));
        assert_eq!(one("[1 4]"), Edn::Vector(vec![Edn::Int(1), Edn::Int(4)]));
        assert_eq!(one("#{1}"), Edn::Set(vec![Edn::Int(1)]));
        assert_eq!(
            one("(a, #_ignored b)"),
            Edn::List(vec![Edn::Symbol("a".into()), Edn::Symbol("b".into())])
        );
        let m = one("{:process 3, ; comment\n :type :ok}");
        assert_eq!(m.get("type"), Some(&Edn::Keyword("ok".into())));
        assert!(matches!(one("#inst \"2020\""), Edn::Tagged(t, _) if t == "inst"));
    }

    #[test]
    fn truncation_names_a_line() {
        let err = Reader::new("\n{:process 3\n :type")
            .next_value()
            .unwrap_err();
        assert_eq!(err.line, 3);
        let err = Reader::new("\"abc").next_value().unwrap_err();
        assert!(err.message.contains("unterminated"));
        assert!(Reader::new("{:a}").next_value().is_err());
    }
}

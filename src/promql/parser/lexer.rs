//! The PromQL lexer: turns a query string into tokens on demand.
//!
//! It follows Prometheus 2.42's state machine (`promql/parser/lex.go`) closely,
//! because the exact token boundaries decide which error message a malformed
//! query gets. It knows nothing of the grammar beyond bracket and brace state.

use crate::model::gofmt::{go_quote, go_quote_rune, go_unicode_point};

/// The kind of a token. The groups mirror Prometheus's item types, because the
/// group decides how a token is described in an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Eof,
    Error,
    Identifier,
    MetricIdentifier,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Comma,
    /// A single `=`.
    Eql,
    Colon,
    String,
    Number,
    Duration,
    // Operators.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    /// `==`.
    Eqlc,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    EqlRegex,
    NeqRegex,
    Land,
    Lor,
    Lunless,
    At,
    // Aggregators.
    Avg,
    Count,
    Sum,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    // Keywords.
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Ignoring,
    Offset,
    On,
    Without,
    // Preprocessors.
    Start,
    End,
}

impl Kind {
    pub(crate) fn is_operator(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Add | Sub
                | Mul
                | Div
                | Mod
                | Pow
                | Atan2
                | Eqlc
                | Neq
                | Lte
                | Lss
                | Gte
                | Gtr
                | EqlRegex
                | NeqRegex
                | Land
                | Lor
                | Lunless
                | At
        )
    }

    pub(crate) fn is_aggregator(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Avg | Count
                | Sum
                | Min
                | Max
                | Group
                | Stddev
                | Stdvar
                | Topk
                | Bottomk
                | CountValues
                | Quantile
        )
    }

    pub(crate) fn is_keyword(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Bool | By | GroupLeft | GroupRight | Ignoring | Offset | On | Without
        )
    }

    /// Whether Prometheus has a fixed spelling for this kind (`ItemTypeStr`),
    /// which changes how the token is described.
    fn has_fixed_spelling(self) -> bool {
        use Kind::*;
        self.is_operator()
            || self.is_aggregator()
            || self.is_keyword()
            || matches!(
                self,
                LeftParen
                    | RightParen
                    | LeftBrace
                    | RightBrace
                    | LeftBracket
                    | RightBracket
                    | Comma
                    | Eql
                    | Colon
                    | Start
                    | End
            )
    }
}

/// One token: a kind and a byte range of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub(crate) fn text<'a>(&self, input: &'a str) -> &'a str {
        input.get(self.start..self.end).unwrap_or("")
    }

    /// Describes the token the way Prometheus's `Item.desc()` does, for
    /// "unexpected ..." messages.
    pub(crate) fn describe(&self, input: &str) -> String {
        let val = self.text(input);
        match self.kind {
            Kind::Eof => "end of input".to_string(),
            Kind::Identifier => format!("identifier {}", go_quote(val)),
            Kind::MetricIdentifier => {
                format!("metric identifier {}", go_quote(val))
            }
            Kind::String => format!("string {}", item_string(val)),
            Kind::Number => format!("number {}", item_string(val)),
            Kind::Duration => format!("duration {}", item_string(val)),
            k if k.has_fixed_spelling() => {
                if k.is_keyword() {
                    format!("<{val}>")
                } else if k.is_operator() {
                    format!("<op:{val}>")
                } else if k.is_aggregator() {
                    format!("<aggr:{val}>")
                } else {
                    item_string(val)
                }
            }
            _ => item_string(val),
        }
    }
}

/// Go's `%q` for an item value, cut to ten runes with `...` when longer.
fn item_string(val: &str) -> String {
    if val.chars().count() > 10 {
        let cut: String = val.chars().take(10).collect();
        format!("{}...", go_quote(&cut))
    } else {
        go_quote(val)
    }
}

/// What the lexer does on its next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Statements,
    /// Right after `[`: a duration must follow.
    Duration,
    Done,
}

pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    state: State,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    string_open: char,
    /// The message of the last error token.
    pub error: String,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: Option<char>) -> bool {
    matches!(c, Some(c) if is_alpha(c) || c.is_ascii_digit())
}

/// Whether `s` is a valid label name.
pub(crate) fn is_label(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_alpha(c) => chars.all(|c| is_alpha(c) || c.is_ascii_digit()),
        _ => false,
    }
}

fn keyword(word: &str) -> Option<Kind> {
    use Kind::*;
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "and" => Land,
        "or" => Lor,
        "unless" => Lunless,
        "atan2" => Atan2,
        "sum" => Sum,
        "avg" => Avg,
        "count" => Count,
        "min" => Min,
        "max" => Max,
        "group" => Group,
        "stddev" => Stddev,
        "stdvar" => Stdvar,
        "topk" => Topk,
        "bottomk" => Bottomk,
        "count_values" => CountValues,
        "quantile" => Quantile,
        "offset" => Offset,
        "by" => By,
        "without" => Without,
        "on" => On,
        "ignoring" => Ignoring,
        "group_left" => GroupLeft,
        "group_right" => GroupRight,
        "bool" => Bool,
        "start" => Start,
        "end" => End,
        "inf" | "nan" => Number,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Lexer<'a> {
        Lexer {
            input,
            pos: 0,
            start: 0,
            width: 0,
            state: State::Statements,
            paren_depth: 0,
            brace_open: false,
            bracket_open: false,
            got_colon: false,
            string_open: '"',
            error: String::new(),
        }
    }

    fn next(&mut self) -> Option<char> {
        match self.input.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        let c = self.next();
        self.backup();
        c
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while matches!(self.next(), Some(c) if valid.contains(c)) {}
        self.backup();
    }

    fn emit(&mut self, kind: Kind) -> Token {
        let t = Token {
            kind,
            start: self.start,
            end: self.pos,
        };
        self.start = self.pos;
        t
    }

    fn errorf(&mut self, msg: String) -> Token {
        self.error = msg;
        self.state = State::Done;
        Token {
            kind: Kind::Error,
            start: self.start,
            end: self.input.len(),
        }
    }

    /// Returns the next token. After an error or the end of input it keeps
    /// returning end of input.
    pub(crate) fn next_token(&mut self) -> Token {
        match self.state {
            State::Done => {
                self.start = self.pos;
                Token {
                    kind: Kind::Eof,
                    start: self.pos,
                    end: self.pos,
                }
            }
            State::Duration => {
                self.state = State::Statements;
                self.lex_duration()
            }
            State::Statements => loop {
                if let Some(t) = self.lex_statement() {
                    return t;
                }
            },
        }
    }

    /// One step of the statement state; `None` means "nothing emitted yet".
    fn lex_statement(&mut self) -> Option<Token> {
        if self.input[self.pos..].starts_with('#') {
            self.skip_comment();
            return None;
        }
        if self.brace_open {
            return self.lex_inside_braces();
        }
        let Some(r) = self.next() else {
            if self.paren_depth != 0 {
                return Some(self.errorf("unclosed left parenthesis".into()));
            }
            if self.bracket_open {
                return Some(self.errorf("unclosed left bracket".into()));
            }
            let t = self.emit(Kind::Eof);
            self.state = State::Done;
            return Some(t);
        };
        let kind = match r {
            ',' => Kind::Comma,
            c if is_space(c) => {
                self.skip_spaces();
                return None;
            }
            '*' => Kind::Mul,
            '/' => Kind::Div,
            '%' => Kind::Mod,
            '+' => Kind::Add,
            '-' => Kind::Sub,
            '^' => Kind::Pow,
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    Kind::Eqlc
                }
                Some('~') => {
                    return Some(self.errorf("unexpected character after '=': '~'".into()));
                }
                _ => Kind::Eql,
            },
            '!' => match self.next() {
                Some('=') => Kind::Neq,
                t => {
                    let msg = format!(
                        "unexpected character after '!': {}",
                        go_quote_rune(t.unwrap_or('\u{FFFD}'))
                    );
                    return Some(self.errorf(msg));
                }
            },
            '<' => {
                if self.peek() == Some('=') {
                    self.next();
                    Kind::Lte
                } else {
                    Kind::Lss
                }
            }
            '>' => {
                if self.peek() == Some('=') {
                    self.next();
                    Kind::Gte
                } else {
                    Kind::Gtr
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && matches!(self.peek(), Some(d) if d.is_ascii_digit())) =>
            {
                self.backup();
                return Some(self.lex_number_or_duration());
            }
            '"' | '\'' => {
                self.string_open = r;
                return Some(self.lex_string());
            }
            '`' => {
                self.string_open = r;
                return Some(self.lex_raw_string());
            }
            c if is_alpha(c) || c == ':' => {
                if !self.bracket_open {
                    self.backup();
                    return Some(self.lex_keyword_or_identifier());
                }
                // Prometheus 2.42 emits any letter or colon inside brackets as
                // the subquery colon; keep that quirk for identical errors.
                if self.got_colon {
                    let msg = format!("unexpected colon {}", go_quote_rune(c));
                    return Some(self.errorf(msg));
                }
                self.got_colon = true;
                Kind::Colon
            }
            '(' => {
                self.paren_depth += 1;
                Kind::LeftParen
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // The right parenthesis is emitted and then overwritten by
                    // the error, so the error starts after it.
                    self.start = self.pos;
                    return Some(self.errorf("unexpected right parenthesis ')'".into()));
                }
                Kind::RightParen
            }
            '{' => {
                self.brace_open = true;
                Kind::LeftBrace
            }
            '[' => {
                if self.bracket_open {
                    return Some(self.errorf("unexpected left bracket '['".into()));
                }
                self.got_colon = false;
                let t = self.emit(Kind::LeftBracket);
                self.skip_spaces();
                self.bracket_open = true;
                self.state = State::Duration;
                return Some(t);
            }
            ']' => {
                if !self.bracket_open {
                    return Some(self.errorf("unexpected right bracket ']'".into()));
                }
                self.bracket_open = false;
                Kind::RightBracket
            }
            '@' => Kind::At,
            c => {
                let msg = format!("unexpected character: {}", go_quote_rune(c));
                return Some(self.errorf(msg));
            }
        };
        Some(self.emit(kind))
    }

    fn lex_inside_braces(&mut self) -> Option<Token> {
        let Some(r) = self.next() else {
            return Some(self.errorf("unexpected end of input inside braces".into()));
        };
        let kind = match r {
            c if is_space(c) => {
                self.skip_spaces();
                return None;
            }
            c if is_alpha(c) => {
                while is_alnum(self.next()) {}
                self.backup();
                Kind::Identifier
            }
            ',' => Kind::Comma,
            '"' | '\'' => {
                self.string_open = r;
                return Some(self.lex_string());
            }
            '`' => {
                self.string_open = r;
                return Some(self.lex_raw_string());
            }
            '=' => {
                if self.next() == Some('~') {
                    Kind::EqlRegex
                } else {
                    self.backup();
                    Kind::Eql
                }
            }
            '!' => match self.next() {
                Some('~') => Kind::NeqRegex,
                Some('=') => Kind::Neq,
                nr => {
                    let msg = format!(
                        "unexpected character after '!' inside braces: {}",
                        go_quote_rune(nr.unwrap_or('\u{FFFD}'))
                    );
                    return Some(self.errorf(msg));
                }
            },
            '{' => return Some(self.errorf("unexpected left brace '{'".into())),
            '}' => {
                self.brace_open = false;
                Kind::RightBrace
            }
            c => {
                let msg = format!("unexpected character inside braces: {}", go_quote_rune(c));
                return Some(self.errorf(msg));
            }
        };
        Some(self.emit(kind))
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(c) if is_space(c)) {
            self.next();
        }
        self.start = self.pos;
    }

    fn skip_comment(&mut self) {
        self.pos += 1;
        while let Some(c) = self.next() {
            if c == '\r' || c == '\n' {
                break;
            }
        }
        self.backup();
        self.start = self.pos;
    }

    /// Scans a number; false when it runs into an alphanumeric character.
    fn scan_number(&mut self) -> bool {
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            digits = "0123456789abcdefABCDEF";
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789");
        }
        let next = self.peek();
        !is_alnum(next)
    }

    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            while self.accept("0123456789") {}
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        let next = self.next();
        !is_alnum(next)
    }

    fn lex_number_or_duration(&mut self) -> Token {
        if self.scan_number() {
            return self.emit(Kind::Number);
        }
        if self.accept_remaining_duration() {
            self.backup();
            return self.emit(Kind::Duration);
        }
        let msg = format!(
            "bad number or duration syntax: {}",
            go_quote(&self.input[self.start..self.pos])
        );
        self.errorf(msg)
    }

    fn lex_duration(&mut self) -> Token {
        if self.scan_number() {
            return self.errorf("missing unit character in duration".into());
        }
        if !self.accept_remaining_duration() {
            let msg = format!(
                "bad duration syntax: {}",
                go_quote(&self.input[self.start..self.pos])
            );
            return self.errorf(msg);
        }
        self.backup();
        self.emit(Kind::Duration)
    }

    fn lex_keyword_or_identifier(&mut self) -> Token {
        while matches!(self.next(), Some(c) if is_alpha(c) || c.is_ascii_digit() || c == ':') {}
        self.backup();
        let word = &self.input[self.start..self.pos];
        let kind = match keyword(word) {
            Some(k) => k,
            None if word.contains(':') => Kind::MetricIdentifier,
            None => Kind::Identifier,
        };
        self.emit(kind)
    }

    fn lex_string(&mut self) -> Token {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Some(msg) = self.lex_escape() {
                        return self.errorf(msg);
                    }
                }
                // Go decodes invalid UTF-8 as U+FFFD; a literal U+FFFD is
                // rejected the same way.
                Some('\u{FFFD}') => return self.errorf("invalid UTF-8 rune".into()),
                None | Some('\n') => return self.errorf("unterminated quoted string".into()),
                Some(c) if c == self.string_open => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String)
    }

    fn lex_raw_string(&mut self) -> Token {
        loop {
            match self.next() {
                Some('\u{FFFD}') => return self.errorf("invalid UTF-8 rune".into()),
                None => return self.errorf("unterminated raw string".into()),
                Some(c) if c == self.string_open => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String)
    }

    /// Checks one escape sequence after a backslash; returns an error message.
    fn lex_escape(&mut self) -> Option<String> {
        let mut ch = self.next();
        let (mut n, base, max): (u32, u32, u32) = match ch {
            Some(c) if "abfnrtv\\".contains(c) || c == self.string_open => return None,
            Some('0'..='7') => (3, 8, 255),
            Some('x') => {
                ch = self.next();
                (2, 16, 255)
            }
            Some('u') => {
                ch = self.next();
                (4, 16, 0x10FFFF)
            }
            Some('U') => {
                ch = self.next();
                (8, 16, 0x10FFFF)
            }
            None => return Some("escape sequence not terminated".into()),
            Some(c) => return Some(format!("unknown escape sequence {}", go_unicode_point(c))),
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                return Some(match ch {
                    None => "escape sequence not terminated".into(),
                    Some(c) => format!(
                        "illegal character {} in escape sequence",
                        go_unicode_point(c)
                    ),
                });
            }
            x = x.saturating_mul(base).saturating_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Some("escape sequence is an invalid Unicode code point".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Kind> {
        let mut l = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            let t = l.next_token();
            out.push(t.kind);
            if matches!(t.kind, Kind::Eof | Kind::Error) {
                return out;
            }
        }
    }

    #[test]
    fn durations_and_numbers() {
        use Kind::*;
        assert_eq!(
            kinds("foo[5m:1m] offset -1h30m @ 0x1F"),
            vec![
                Identifier,
                LeftBracket,
                Duration,
                Colon,
                Duration,
                RightBracket,
                Offset,
                Sub,
                Duration,
                At,
                Number,
                Eof
            ]
        );
        assert_eq!(
            kinds("1e3 .5 Inf NaN"),
            vec![Number, Number, Number, Number, Eof]
        );
    }

    #[test]
    fn keywords_are_identifiers_inside_braces() {
        use Kind::*;
        assert_eq!(
            kinds("sum{by=\"x\", on!~'y',}"),
            vec![
                Sum, LeftBrace, Identifier, Eql, String, Comma, Identifier, NeqRegex, String,
                Comma, RightBrace, Eof
            ]
        );
    }

    #[test]
    fn errors_carry_messages() {
        let mut l = Lexer::new("0deadbeef");
        assert_eq!(l.next_token().kind, Kind::Error);
        assert_eq!(l.error, "bad number or duration syntax: \"0de\"");
        let mut l = Lexer::new("\"\\c\"");
        assert_eq!(l.next_token().kind, Kind::Error);
        assert_eq!(l.error, "unknown escape sequence U+0063 'c'");
    }
}

//! Decoding of a sample's label pairs and of escaped text. The parser has
//! already checked the label text; this only walks it again, so it never
//! fails and never allocates unless a value holds an escape.

use std::borrow::Cow;

use super::scan::{label_name_end, quoted_end};

/// The label pairs of one sample, in body order: `(name, value)`.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    rest: &'a str,
}

impl<'a> LabelIter<'a> {
    /// `text` is what lies between the braces of a sample the parser accepted.
    pub(super) fn new(text: &'a str) -> LabelIter<'a> {
        LabelIter { rest: text }
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest.as_bytes();
        // Separators: the text format allows blanks around every token and
        // optional commas.
        let mut i = 0;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= b.len() {
            self.rest = "";
            return None;
        }
        let name_start = i;
        let name_end = label_name_end(b, i);
        // Blanks and `=` up to the opening quote.
        let open = name_end + b.get(name_end..)?.iter().position(|&c| c == b'"')?;
        let Ok(q) = quoted_end(b, open + 1, true) else {
            self.rest = "";
            return None;
        };
        let name = self.rest.get(name_start..name_end)?;
        let raw = self.rest.get(open + 1..q.end)?;
        self.rest = self.rest.get(q.end + 1..)?;
        let value = if q.escaped {
            Cow::Owned(unescape(raw, true))
        } else {
            Cow::Borrowed(raw)
        };
        Some((name, value))
    }
}

/// Undoes `\\`, `\n` and (when `quotes`) `\"`. Any other escape is kept as
/// written, backslash included, as Prometheus's `strings.Replacer` does.
pub(super) fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `text` unescaped only if it holds a backslash.
pub(super) fn unescape_cow(text: &str, quotes: bool) -> Cow<'_, str> {
    if text.as_bytes().contains(&b'\\') {
        Cow::Owned(unescape(text, quotes))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        LabelIter::new(text)
            .map(|(n, v)| (n.to_string(), v.into_owned()))
            .collect()
    }

    #[test]
    fn walks_both_formats_spellings() {
        assert_eq!(pairs(""), vec![]);
        assert_eq!(
            pairs(r#"a="1",b="x,y=}""#),
            vec![("a".into(), "1".into()), ("b".into(), "x,y=}".into())]
        );
        assert_eq!(
            pairs(" a = \"1\" ,\tb=\"2\" c=\"\", "),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "".into())
            ]
        );
    }

    #[test]
    fn values_are_borrowed_unless_escaped() {
        let mut it = LabelIter::new(r#"a="plain",b="q\"uote\\d\nx\t""#);
        let (_, a) = it.next().unwrap();
        assert!(matches!(a, Cow::Borrowed("plain")));
        let (_, b) = it.next().unwrap();
        assert!(matches!(b, Cow::Owned(_)));
        assert_eq!(b, "q\"uote\\d\nx\\t");
        assert!(it.next().is_none());
    }

    #[test]
    fn help_escapes_keep_quotes_in_the_text_format() {
        assert_eq!(unescape_cow(r#"a\\b\nc\"d"#, false), "a\\b\nc\\\"d");
        assert_eq!(unescape_cow(r#"a\\b\nc\"d"#, true), "a\\b\nc\"d");
        assert!(matches!(
            unescape_cow("plain", true),
            Cow::Borrowed("plain")
        ));
    }
}

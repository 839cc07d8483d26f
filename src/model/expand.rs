//! Go's `Regexp.ExpandString`: the `$1`, `${name}` templates of relabeling's
//! `replacement` and PromQL's `label_replace`, which must expand the same way.

/// Expands `$1`, `${1}`, `$name` and `$$` in `template` as Go's
/// `Regexp.ExpandString` does, appending to `dst`.
///
/// A name is the longest run of letters, digits and `_`, so `$1x` refers to the
/// group named `1x`; unknown or unmatched groups expand to nothing, and a `$`
/// not followed by a name is kept literally.
pub fn expand(template: &str, caps: &regex::Captures<'_>, re: &regex::Regex, dst: &mut String) {
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        dst.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            dst.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            dst.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .enumerate()
                .find(|(i, n)| *n == Some(name) && caps.get(*i).is_some())
                .and_then(|(i, _)| caps.get(i)),
        };
        if let Some(m) = group {
            dst.push_str(m.as_str());
        }
    }
    dst.push_str(rest);
}

/// Splits a `name` or `{name}` reference off the front of `s`.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

/// A group reference is numeric when all ASCII digits, without a leading
/// zero, and below Go's 1e8 cut-off.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse::<usize>().ok().filter(|n| *n < 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps_expand(re: &str, input: &str, template: &str) -> String {
        let re = regex::Regex::new(re).unwrap();
        let caps = re.captures(input).unwrap();
        let mut out = String::new();
        expand(template, &caps, &re, &mut out);
        out
    }

    #[test]
    fn expand_matches_go() {
        let re = r"(?P<first>a+)(b+)";
        assert_eq!(caps_expand(re, "aabb", "$1"), "aa");
        assert_eq!(caps_expand(re, "aabb", "${2}x"), "bbx");
        assert_eq!(caps_expand(re, "aabb", "$2x"), "");
        assert_eq!(caps_expand(re, "aabb", "$first-$2"), "aa-bb");
        assert_eq!(caps_expand(re, "aabb", "$$1"), "$1");
        assert_eq!(caps_expand(re, "aabb", "a$"), "a$");
        assert_eq!(caps_expand(re, "aabb", "$-"), "$-");
        assert_eq!(caps_expand(re, "aabb", "${1"), "${1");
        assert_eq!(caps_expand(re, "aabb", "$9"), "");
        assert_eq!(caps_expand(re, "aabb", "$01"), "");
        assert_eq!(caps_expand(re, "aabb", "$0"), "aabb");
    }
}

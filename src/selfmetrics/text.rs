//! A writer for the text exposition format 0.0.4: `# HELP`, `# TYPE` and
//! sample lines, with label values and help text escaped as Prometheus's
//! `expfmt` escapes them. Knows nothing of which metrics exist.

use std::fmt::Write as _;

pub(crate) struct Writer {
    out: String,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Writer {
        Writer {
            out: String::with_capacity(n),
        }
    }

    pub(crate) fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (n, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(n);
                self.out.push_str("=\"");
                for c in val.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, v);
        self.out.push('\n');
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` shape, as client_golang
/// writes values: shortest digits, an exponent outside `1e-4..1e21`.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v != 0.0 && !(1e-4..1e21).contains(&v.abs()) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        let mut w = Writer::with_capacity(0);
        w.family("x", "a \\ b\nc", "gauge");
        w.sample("x", &[("l", "q\"\\\n")], 1.5);
        w.sample("x", &[], f64::NAN);
        w.sample("x", &[], 1.7e9);
        w.sample("x", &[], 1e22);
        assert_eq!(
            w.finish(),
            "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{l=\"q\\\"\\\\\\n\"} 1.5\nx NaN\nx 1700000000\nx 1e22\n"
        );
    }
}

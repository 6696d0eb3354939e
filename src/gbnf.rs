//! GBNF (llama.cpp's grammar format) rewritten as llguidance's Lark dialect, so a page
//! can bring the grammars written for llama.cpp. Both are context-free grammars over
//! characters (llguidance lexes dynamically, like GBNF), so the rewrite is syntax only:
//! `name ::= …` becomes `name: …`, `root` becomes `start`, `[a-z]` and `.` become regexes.

use crate::bail;
use crate::error::{Code, Result};
use std::collections::HashMap;

/// The Lark text of a GBNF grammar, or an `invalid_argument` error naming the place.
pub fn to_lark(gbnf: &str) -> Result<String> {
    let mut p = Parser {
        chars: gbnf.chars().collect(),
        at: 0,
    };
    let mut rules: Vec<(String, Vec<String>)> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    loop {
        p.skip_space();
        let Some(c) = p.peek() else { break };
        if is_word(c) {
            let word = p.word();
            let save = p.at;
            p.skip_space();
            if p.eat("::=") {
                let name = lark_name(&word, &mut names)?;
                rules.push((name, Vec::new()));
                continue;
            }
            p.at = save;
            let name = lark_name(&word, &mut names)?;
            p.push(&mut rules, name)?;
            continue;
        }
        let item = match c {
            '"' => p.string()?,
            '[' => p.class()?,
            '.' => {
                p.at += 1;
                "/(?s:.)/".to_string()
            }
            '|' | '(' | ')' | '*' | '+' | '?' => {
                p.at += 1;
                c.to_string()
            }
            '{' => p.braces()?,
            _ => return Err(p.error(&format!("unexpected character {c:?}"))),
        };
        p.push(&mut rules, item)?;
    }
    if !rules.iter().any(|(n, _)| n == "start") {
        bail!(
            Code::InvalidArgument,
            "the GBNF grammar has no root rule (root ::= …)"
        );
    }
    Ok(rules
        .iter()
        .map(|(n, body)| format!("{n}: {}\n", body.join(" ")))
        .collect())
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Lark rule names are lower case (upper case names are terminals): `root` is `start`,
/// the others keep their name under an `r-` prefix, lower-cased.
fn lark_name(gbnf: &str, seen: &mut HashMap<String, String>) -> Result<String> {
    let name = if gbnf == "root" {
        "start".to_string()
    } else {
        format!("r-{}", gbnf.to_ascii_lowercase())
    };
    match seen.insert(name.clone(), gbnf.to_string()) {
        Some(other) if other != gbnf => bail!(
            Code::InvalidArgument,
            "the GBNF rule names {other} and {gbnf} differ only in case, which this engine cannot tell apart"
        ),
        _ => Ok(name),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.at + n
            && self.chars[self.at..self.at + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.at += n;
            return true;
        }
        false
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.at += 1;
                }
            } else if c.is_whitespace() {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> String {
        let from = self.at;
        while self.peek().is_some_and(is_word) {
            self.at += 1;
        }
        self.chars[from..self.at].iter().collect()
    }

    fn push(&self, rules: &mut [(String, Vec<String>)], item: String) -> Result<()> {
        match rules.last_mut() {
            Some((_, body)) => {
                body.push(item);
                Ok(())
            }
            None => Err(self.error("expected a rule (name ::= …)")),
        }
    }

    fn error(&self, what: &str) -> crate::Error {
        let line = self.chars[..self.at.min(self.chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count()
            + 1;
        crate::Error::new(
            Code::InvalidArgument,
            format!("the GBNF grammar cannot be read at line {line}: {what}"),
        )
    }

    /// One character of a string or class, its escapes read.
    fn char(&mut self, end: char) -> Result<char> {
        let Some(c) = self.peek() else {
            return Err(self.error(&format!("{end} is missing at the end")));
        };
        self.at += 1;
        if c != '\\' {
            return Ok(c);
        }
        let Some(e) = self.peek() else {
            return Err(self.error("an escape is cut off"));
        };
        self.at += 1;
        let hex = |p: &mut Parser, n: usize| -> Result<char> {
            let digits: String = p.chars.get(p.at..p.at + n).unwrap_or(&[]).iter().collect();
            p.at += n;
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| p.error(&format!("bad escape \\{e}{digits}")))
        };
        Ok(match e {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            other => other,
        })
    }

    /// `"…"` as a JSON string, the form llguidance's Lark reads.
    fn string(&mut self) -> Result<String> {
        self.at += 1;
        let mut text = String::new();
        while self.peek() != Some('"') {
            text.push(self.char('"')?);
        }
        self.at += 1;
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        Ok(out)
    }

    /// `[^a-z_]` as a regex, every character written as `\x{…}` so nothing in it can
    /// read as regex syntax.
    fn class(&mut self) -> Result<String> {
        self.at += 1;
        let mut out = String::from("/[");
        if self.peek() == Some('^') {
            self.at += 1;
            out.push('^');
        }
        while self.peek() != Some(']') {
            let lo = self.char(']')?;
            out.push_str(&format!("\\x{{{:x}}}", lo as u32));
            if self.peek() == Some('-') && self.chars.get(self.at + 1) != Some(&']') {
                self.at += 1;
                let hi = self.char(']')?;
                out.push_str(&format!("-\\x{{{:x}}}", hi as u32));
            }
        }
        self.at += 1;
        out.push_str("]/");
        Ok(out)
    }

    /// `{m}`, `{m,}`, `{,n}`, `{m,n}`: the same in Lark.
    fn braces(&mut self) -> Result<String> {
        let from = self.at;
        while self.peek().is_some_and(|c| c != '}') {
            self.at += 1;
        }
        self.at += 1;
        let inner: String = self.chars[from + 1..self.at - 1].iter().collect();
        let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_digit() || c == ',') {
            return Err(self.error(&format!("bad repetition {{{inner}}}")));
        }
        Ok(format!("{{{inner}}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::to_lark;

    #[test]
    fn rules_classes_strings_and_repetition() {
        let lark = to_lark(
            "# a date\nroot ::= year \"-\" Month\nyear ::= [0-9]{4}\nMonth ::=\n  \"0\" [1-9] | \"1\" [0-2]\n",
        )
        .unwrap();
        assert_eq!(
            lark,
            "start: r-year \"-\" r-month\nr-year: /[\\x{30}-\\x{39}]/ {4}\nr-month: \"0\" /[\\x{31}-\\x{39}]/ | \"1\" /[\\x{30}-\\x{32}]/\n"
        );
    }

    #[test]
    fn bad_grammars_name_the_problem() {
        assert!(to_lark("root ::= \"a")
            .unwrap_err()
            .to_string()
            .contains("missing"));
        assert!(to_lark("a ::= \"x\"")
            .unwrap_err()
            .to_string()
            .contains("root"));
        assert!(to_lark("root ::= <|tok|>")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(to_lark("root ::= x{a}")
            .unwrap_err()
            .to_string()
            .contains("repetition"));
    }
}

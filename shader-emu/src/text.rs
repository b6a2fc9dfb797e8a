//! Small text utilities shared by the parsers: comment stripping, balanced brackets,
//! integer expressions.

use std::collections::BTreeMap;

/// `text` with every `//` and `/* */` comment replaced by spaces (newlines kept, so line
/// numbers still hold); string and character literals are left alone.
pub fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(text.len(), |e| i + e);
            out.extend(std::iter::repeat_n(' ', end - i));
            i = end;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let end = body.find("*/").map_or(text.len(), |e| i + 2 + e + 2);
            out.extend(
                text[i..end]
                    .chars()
                    .map(|c| if c == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else if bytes[i] == b'"' || bytes[i] == b'\'' {
            let quote = bytes[i];
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != quote && bytes[j] != b'\n' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(bytes.len());
            out.push_str(&text[i..end]);
            i = end;
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The text between the `(` at byte `open` and its matching `)`, and the index after it.
pub fn balanced(text: &str, open: usize) -> Option<(&str, usize)> {
    debug_assert_eq!(text.as_bytes().get(open), Some(&b'('));
    let mut depth = 0usize;
    for (offset, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&text[open + 1..open + offset], open + offset + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at commas that are not inside brackets.
pub fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '<' | '{' => depth += 1,
            ')' | ']' | '>' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    parts
}

/// 1-based line number of byte `offset`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Whether `c` can be part of a C identifier.
pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Evaluates an integer expression of literals (a `u`/`U` suffix allowed), names found in
/// `names`, `+ - * / %` and parentheses. Anything else is an error that says what.
pub fn eval(expr: &str, names: &BTreeMap<String, String>) -> Result<i64, String> {
    eval_nested(expr, names, 0)
}

fn tokenize(expr: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if "+-*/%()".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else {
            return Err(format!(
                "`{c}` is not allowed in the integer expression `{expr}`"
            ));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<String>,
    pos: usize,
    names: &'a BTreeMap<String, String>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn sum(&mut self) -> Result<i64, String> {
        let mut value = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            let add = op == "+";
            self.pos += 1;
            let rhs = self.product()?;
            value = if add {
                value.checked_add(rhs)
            } else {
                value.checked_sub(rhs)
            }
            .ok_or("integer overflow")?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<i64, String> {
        let mut value = self.atom()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            let op = op.to_string();
            self.pos += 1;
            let rhs = self.atom()?;
            value = match op.as_str() {
                "*" => value.checked_mul(rhs),
                "/" => value.checked_div(rhs),
                _ => value.checked_rem(rhs),
            }
            .ok_or("integer overflow or division by zero")?;
        }
        Ok(value)
    }

    fn atom(&mut self) -> Result<i64, String> {
        let token = self.peek().ok_or("the expression ends early")?.to_string();
        self.pos += 1;
        if token == "(" {
            let value = self.sum()?;
            if self.peek() != Some(")") {
                return Err("a `(` is not closed".into());
            }
            self.pos += 1;
            return Ok(value);
        }
        if token == "-" {
            return Ok(-self.atom()?);
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            let digits = token.trim_end_matches(['u', 'U']);
            return digits
                .parse()
                .map_err(|_| format!("`{token}` is not an integer literal"));
        }
        let Some(definition) = self.names.get(&token) else {
            return Err(format!("`{token}` is not defined in matmul_geometry.h"));
        };
        self.depth += 1;
        if self.depth > 32 {
            return Err(format!("`{token}` is defined in terms of itself"));
        }
        let value = eval_nested(definition, self.names, self.depth)?;
        self.depth -= 1;
        Ok(value)
    }
}

fn eval_nested(expr: &str, names: &BTreeMap<String, String>, depth: usize) -> Result<i64, String> {
    let mut parser = Parser {
        tokens: tokenize(expr)?,
        pos: 0,
        names,
        depth,
    };
    let value = parser.sum()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "unexpected `{}` in `{expr}`",
            parser.tokens[parser.pos]
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comments_but_not_strings() {
        let text = "a // x\nb /* y\nz */ c \"//s\" @\"k\"";
        assert_eq!(
            strip_comments(text),
            "a     \nb     \n     c \"//s\" @\"k\""
        );
    }

    #[test]
    fn evaluates_macros() {
        let mut names = BTreeMap::new();
        names.insert("G".to_string(), "4".to_string());
        names.insert("T".to_string(), "(G * 32u)".to_string());
        assert_eq!(eval("T / 2 + 1", &names), Ok(65));
        assert!(eval("T + X", &names).unwrap_err().contains("`X`"));
        names.insert("L".to_string(), "L + 1".to_string());
        assert!(eval("L", &names).is_err());
    }

    #[test]
    fn splits_and_balances() {
        assert_eq!(
            split_top_level("a(b, c), d<e, f>, g"),
            ["a(b, c)", "d<e, f>", "g"]
        );
        let text = "f(a(b), c) d";
        assert_eq!(balanced(text, 1), Some(("a(b), c", 10)));
    }
}

//! Go `text/template` lexer: text and actions between delimiters, with trim markers
//! (`{{- ` and ` -}}` remove the white space next to them), comments (`{{/* */}}`), and the
//! tokens inside actions. Spaces inside an action are tokens too: they separate a command's
//! operands, while a field right after an operand (no space) continues a chain.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    /// `.Name` (without the dot).
    Field(String),
    /// `$name` (with the `$`; `$` alone is the root).
    Var(String),
    Dot,
    Ident(String),
    /// An interpreted or raw string, already unquoted; the source text for messages.
    Str(String, String),
    Char(i64, String),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Assign,
    Declare,
    Comma,
    Keyword(&'static str),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the source, for `NAME:LINE:COL` in messages.
    pub pos: usize,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The line of byte offset `pos` (Go's `ErrorContext`).
pub fn line_of(src: &str, pos: usize) -> usize {
    1 + src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Go's `strconv.Unquote` of an interpreted string literal (without the quotes).
fn unquote(body: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("invalid syntax")?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Result<u32, String> {
            let s: String = chars.take(n).collect();
            if s.len() != n {
                return Err("invalid syntax".into());
            }
            u32::from_str_radix(&s, 16).map_err(|_| "invalid syntax".to_owned())
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or("invalid syntax")?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or("invalid syntax")?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or("invalid syntax")?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let n = u32::from_str_radix(&format!("{e}{rest}"), 8)
                    .map_err(|_| "invalid syntax".to_owned())?;
                out.push(char::from_u32(n).ok_or("invalid syntax")?);
            }
            _ => return Err("invalid syntax".into()),
        }
    }
    Ok(out)
}

/// Splits `src` into tokens; an error carries the byte offset and Go's message.
pub fn lex(src: &str, left: &str, right: &str) -> Result<Vec<Token>, (usize, String)> {
    let b = src.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos < src.len() {
        // Text up to the next action.
        let next = src[pos..].find(left).map_or(src.len(), |i| pos + i);
        let mut text = &src[pos..next];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next = false;
        }
        let trim_left = next < src.len()
            && b.get(next + left.len()) == Some(&b'-')
            && b.get(next + left.len() + 1).is_some_and(|&c| is_space(c));
        if trim_left {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        if !text.is_empty() {
            toks.push(Token {
                tok: Tok::Text(text.to_owned()),
                pos,
            });
        }
        if next >= src.len() {
            break;
        }
        let start = next;
        pos = next + left.len();
        if trim_left {
            pos += 2;
        }
        // A comment fills the whole action.
        if src[pos..].starts_with("/*") {
            let Some(end) = src[pos..].find("*/") else {
                return Err((start, "unclosed comment".into()));
            };
            pos += end + 2;
            if src[pos..].starts_with(" -") && src[pos + 2..].starts_with(right) {
                pos += 2 + right.len();
                trim_next = true;
            } else if src[pos..].starts_with(right) {
                pos += right.len();
            } else {
                return Err((start, "comment ends before closing delimiter".into()));
            }
            continue;
        }
        toks.push(Token {
            tok: Tok::Left,
            pos: start,
        });
        let mut depth = 0usize;
        loop {
            if pos >= src.len() {
                return Err((start, "unclosed action".into()));
            }
            let rest = &src[pos..];
            if rest.starts_with(right) {
                if depth > 0 {
                    return Err((pos, "unclosed left paren".into()));
                }
                toks.push(Token {
                    tok: Tok::Right,
                    pos,
                });
                pos += right.len();
                break;
            }
            let c = b[pos];
            let t0 = pos;
            if is_space(c) {
                let n = rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
                let after = &rest[n..];
                if after.starts_with('-') && after[1..].starts_with(right) {
                    toks.push(Token {
                        tok: Tok::Right,
                        pos: pos + n,
                    });
                    pos += n + 1 + right.len();
                    trim_next = true;
                    if depth > 0 {
                        return Err((pos, "unclosed left paren".into()));
                    }
                    break;
                }
                toks.push(Token {
                    tok: Tok::Space,
                    pos,
                });
                pos += n;
                continue;
            }
            let tok = match c {
                b'|' => {
                    pos += 1;
                    Tok::Pipe
                }
                b'(' => {
                    pos += 1;
                    depth += 1;
                    Tok::LParen
                }
                b')' => {
                    if depth == 0 {
                        return Err((pos, "unexpected right paren".into()));
                    }
                    depth -= 1;
                    pos += 1;
                    Tok::RParen
                }
                b',' => {
                    pos += 1;
                    Tok::Comma
                }
                b'=' => {
                    pos += 1;
                    Tok::Assign
                }
                b':' => {
                    if b.get(pos + 1) != Some(&b'=') {
                        return Err((pos, "expected :=".into()));
                    }
                    pos += 2;
                    Tok::Declare
                }
                b'"' => {
                    let mut i = pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err((pos, "unterminated quoted string".into()))
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &src[pos..=i];
                    let s = unquote(&src[pos + 1..i]).map_err(|e| (pos, e))?;
                    pos = i + 1;
                    Tok::Str(s, raw.to_owned())
                }
                b'`' => {
                    let Some(end) = src[pos + 1..].find('`') else {
                        return Err((pos, "unterminated raw quoted string".into()));
                    };
                    let raw = &src[pos..pos + end + 2];
                    pos += end + 2;
                    Tok::Str(raw[1..raw.len() - 1].to_owned(), raw.to_owned())
                }
                b'\'' => {
                    let mut i = pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err((pos, "unterminated character constant".into()))
                            }
                            Some(b'\\') => i += 2,
                            Some(b'\'') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &src[pos..=i];
                    let s = unquote(&src[pos + 1..i]).map_err(|e| (pos, e))?;
                    let mut cs = s.chars();
                    let (Some(ch), None) = (cs.next(), cs.next()) else {
                        return Err((pos, format!("malformed character constant: {raw}")));
                    };
                    pos = i + 1;
                    Tok::Char(ch as i64, raw.to_owned())
                }
                b'.' if b.get(pos + 1).is_some_and(u8::is_ascii_digit) => number(src, &mut pos),
                b'.' => {
                    let name: String = src[pos + 1..]
                        .chars()
                        .take_while(|&c| is_alnum(c))
                        .collect();
                    pos += 1 + name.len();
                    if name.is_empty() {
                        Tok::Dot
                    } else {
                        Tok::Field(name)
                    }
                }
                b'$' => {
                    let name: String = src[pos + 1..]
                        .chars()
                        .take_while(|&c| is_alnum(c))
                        .collect();
                    pos += 1 + name.len();
                    Tok::Var(format!("${name}"))
                }
                b'0'..=b'9' | b'+' | b'-' => number(src, &mut pos),
                _ => {
                    let word: String = rest.chars().take_while(|&c| is_alnum(c)).collect();
                    if word.is_empty() {
                        let ch = rest.chars().next().unwrap_or(' ');
                        return Err((pos, format!("unrecognized character in action: {ch:?}")));
                    }
                    pos += word.len();
                    match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(word),
                        },
                    }
                }
            };
            toks.push(Token { tok, pos: t0 });
        }
    }
    Ok(toks)
}

fn number(src: &str, pos: &mut usize) -> Tok {
    let start = *pos;
    let b = src.as_bytes();
    let mut i = start;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    while i < b.len() {
        let c = b[i];
        let exp_sign = matches!(c, b'+' | b'-')
            && i > start
            && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P')
            && !src[start..i].contains(['x', 'X']);
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exp_sign {
            i += 1;
        } else {
            break;
        }
    }
    *pos = i;
    Tok::Number(src[start..i].to_owned())
}

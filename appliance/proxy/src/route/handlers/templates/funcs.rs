//! The template functions: Go's builtins, the sprig text functions Caddy adds (the common,
//! deterministic ones; sprig's win where both define a name, as `slice`), and Caddy's own
//! (`include`, `import`, `readFile`, `placeholder`/`ph`, `env`, `stripHTML`, `splitFrontMatter`,
//! `listFiles`,
//! `fileExists`, `fileStat`, `httpError`, `humanize`, `pathEscape`, `maybe`).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::exec::{Exec, Fail};
use super::value::{equal, go_quote, less, sprint, sprintf, sprintln, Val};
use crate::http1::date::civil_from_days;

type R = Result<Val, Fail>;

/// Strings and lists a function builds stay below this size (Go would run out of memory).
const MAX_BUILT: usize = 64 << 20;

fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Msg(msg.into()))
}

fn want(name: &str, args: &[Val], n: usize) -> Result<(), Fail> {
    if args.len() != n {
        return fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string_arg(args: &[Val], i: usize) -> Result<String, Fail> {
    match args.get(i) {
        Some(Val::Str(s)) => Ok(s.to_string()),
        Some(other) => fail(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
        None => fail("missing argument"),
    }
}

fn int_arg(args: &[Val], i: usize) -> Result<i64, Fail> {
    match args.get(i) {
        Some(Val::Int(n)) => Ok(*n),
        Some(other) => fail(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
        None => fail("missing argument"),
    }
}

/// sprig's `strval`/`toString`: a string as it is, anything else through `%v`.
fn strval(v: &Val) -> String {
    match v {
        Val::Missing | Val::Nil => "<nil>".into(),
        other => other.to_text(),
    }
}

/// sprig's `toInt64`.
fn to_int(v: &Val) -> i64 {
    match v {
        Val::Int(i) => *i,
        Val::Float(f) => *f as i64,
        Val::Bool(b) => *b as i64,
        Val::Str(s) => s
            .parse::<i64>()
            .or_else(|_| s.parse::<f64>().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

fn to_float(v: &Val) -> f64 {
    match v {
        Val::Int(i) => *i as f64,
        Val::Float(f) => *f,
        Val::Bool(b) => *b as i64 as f64,
        Val::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `empty`.
fn empty(v: &Val) -> bool {
    !v.truth()
}

fn list_of(v: &Val) -> Result<Vec<Val>, Fail> {
    match v {
        Val::List(l) => Ok(l.to_vec()),
        other => fail(format!("Cannot find first on type {}", other.type_name())),
    }
}

/// The argument text of `html`, `js`, `urlquery`: one string as it is, else `fmt.Sprint`.
fn eval_args(args: &[Val]) -> String {
    match args {
        [Val::Str(s)] => s.to_string(),
        _ => sprint(args),
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// dustin/go-humanize `Bytes` (SI units).
fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor();
    let val = ((n as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

/// Go's `strings.Split`-like splitting used by sprig's `split`/`splitList`.
fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(String::from).collect();
    }
    s.split(sep).map(str::to_owned).collect()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `time.Time.Format` in UTC for the layout elements in common use.
pub fn format_time(secs: i64, nanos: u32, layout: &str) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let wday = (days + 4).rem_euclid(7) as usize;
    let yday = days - {
        // days of Jan 1 of year y
        let mut lo = days - 366;
        while civil_from_days(lo).0 < y {
            lo += 1;
        }
        lo
    } + 1;
    let mut out = String::new();
    let mut rest = layout;
    let tokens: &[&str] = &[
        "January", "Monday", "2006", "-07:00", "Z07:00", "-0700", "Z0700", "002", "Jan", "Mon",
        "MST", "01", "02", "03", "04", "05", "06", "15", "_2", "PM", "pm", "1", "2", "3", "4", "5",
    ];
    'outer: while !rest.is_empty() {
        // Fractional seconds: .000 / .999 (and , forms).
        if rest.len() >= 2
            && (rest.starts_with('.') || rest.starts_with(','))
            && (rest[1..].starts_with('0') || rest[1..].starts_with('9'))
        {
            let digit = rest.as_bytes()[1];
            let n = rest[1..].bytes().take_while(|&b| b == digit).count();
            let after = rest.as_bytes().get(1 + n);
            if !after.is_some_and(u8::is_ascii_digit) {
                let frac = format!("{nanos:09}");
                let mut f = frac[..n.min(9)].to_owned();
                if digit == b'9' {
                    f = f.trim_end_matches('0').to_owned();
                }
                if !f.is_empty() {
                    out.push(rest.as_bytes()[0] as char);
                    out.push_str(&f);
                }
                rest = &rest[1 + n..];
                continue;
            }
        }
        for t in tokens {
            if let Some(r) = rest.strip_prefix(t) {
                let piece = match *t {
                    "January" => MONTHS[mo as usize - 1].to_owned(),
                    "Jan" => MONTHS[mo as usize - 1][..3].to_owned(),
                    "Monday" => DAYS[wday].to_owned(),
                    "Mon" => DAYS[wday][..3].to_owned(),
                    "2006" => format!("{y:04}"),
                    "06" => format!("{:02}", y % 100),
                    "01" => format!("{mo:02}"),
                    "1" => mo.to_string(),
                    "02" => format!("{d:02}"),
                    "2" => d.to_string(),
                    "_2" => format!("{d:>2}"),
                    "002" => format!("{yday:03}"),
                    "15" => format!("{h:02}"),
                    "03" => format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
                    "3" => (if h % 12 == 0 { 12 } else { h % 12 }).to_string(),
                    "04" => format!("{mi:02}"),
                    "4" => mi.to_string(),
                    "05" => format!("{s:02}"),
                    "5" => s.to_string(),
                    "PM" => (if h >= 12 { "PM" } else { "AM" }).to_owned(),
                    "pm" => (if h >= 12 { "pm" } else { "am" }).to_owned(),
                    "MST" => "UTC".to_owned(),
                    "-07:00" => "+00:00".to_owned(),
                    "-0700" => "+0000".to_owned(),
                    "Z07:00" | "Z0700" => "Z".to_owned(),
                    _ => String::new(),
                };
                out.push_str(&piece);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn now() -> Val {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Val::Time(d.as_secs() as i64, d.subsec_nanos())
}

fn time_of(v: &Val) -> (i64, u32) {
    match v {
        Val::Time(s, n) => (*s, *n),
        other => (to_int(other), 0),
    }
}

/// Caddy's `funcStripHTML`.
fn strip_html(s: &str) -> String {
    let mut out = String::new();
    let (mut in_tag, mut in_quotes) = (false, false);
    let mut tag_start = 0;
    for (i, ch) in s.char_indices() {
        if in_tag {
            if ch == '>' && !in_quotes {
                in_tag = false;
            } else if ch == '<' && !in_quotes {
                out.push_str(&s[tag_start..i]);
                tag_start = i;
            } else if ch == '"' {
                in_quotes = !in_quotes;
            }
            continue;
        }
        if ch == '<' {
            in_tag = true;
            tag_start = i;
            continue;
        }
        out.push(ch);
    }
    if in_tag {
        out.push_str(&s[tag_start..]);
    }
    out
}

fn slice_of(args: &[Val]) -> R {
    let l = list_of(args.first().unwrap_or(&Val::Missing))?;
    let (start, end) = match args.len() {
        1 => (0, l.len() as i64),
        2 => (to_int(&args[1]), l.len() as i64),
        _ => (to_int(&args[1]), to_int(&args[2])),
    };
    if start < 0 || end < start || end as usize > l.len() {
        return fail(format!("slice bounds out of range [{start}:{end}]"));
    }
    Ok(Val::list(l[start as usize..end as usize].to_vec()))
}

fn index(args: &[Val]) -> R {
    let mut v = args.first().cloned().unwrap_or(Val::Missing);
    for key in args.iter().skip(1) {
        v = match (&v, key) {
            (Val::List(l), Val::Int(i)) => match l.get(*i as usize).filter(|_| *i >= 0) {
                Some(x) => x.clone(),
                None => return fail(format!("error calling index: index out of range: {i}")),
            },
            (Val::Map(m), Val::Str(k)) => m.get(&**k).cloned().unwrap_or(Val::Missing),
            (Val::Obj(o), Val::Str(k)) => o.index(k).unwrap_or(Val::Nil),
            (Val::Str(s), Val::Int(i)) => match s.as_bytes().get(*i as usize) {
                Some(b) => Val::Int(i64::from(*b)),
                None => return fail(format!("error calling index: index out of range: {i}")),
            },
            (Val::Missing | Val::Nil, _) => {
                return fail("error calling index: index of untyped nil")
            }
            (c, _) => {
                return fail(format!(
                    "error calling index: can't index item of type {}",
                    c.type_name()
                ))
            }
        };
    }
    Ok(v)
}

fn compare(name: &str, args: &[Val]) -> R {
    if name == "eq" {
        if args.len() < 2 {
            return fail("missing argument for comparison");
        }
        for b in &args[1..] {
            if equal(&args[0], b).or_else(fail)? {
                return Ok(Val::Bool(true));
            }
        }
        return Ok(Val::Bool(false));
    }
    want(name, args, 2)?;
    let (a, b) = (&args[0], &args[1]);
    let r = match name {
        "ne" => !equal(a, b).or_else(fail)?,
        "lt" => less(a, b).or_else(fail)?,
        "le" => less(a, b).or_else(fail)? || equal(a, b).or_else(fail)?,
        "gt" => !(less(a, b).or_else(fail)? || equal(a, b).or_else(fail)?),
        _ => !less(a, b).or_else(fail)?,
    };
    Ok(Val::Bool(r))
}

/// Go's `url.PathEscape`.
fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-_.~$&+:=@".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Calls the function `name`; `None` when no such function exists.
pub fn call(ex: &mut Exec<'_>, name: &str, args: Vec<Val>) -> Option<R> {
    let a = args.as_slice();
    let s = |i: usize| string_arg(a, i);
    let arg = |i: usize| a.get(i).cloned().unwrap_or(Val::Missing);
    let result = (|| -> R {
        Ok(match name {
            // Go's builtins.
            "not" => {
                want(name, a, 1)?;
                Val::Bool(!arg(0).truth())
            }
            "len" => {
                want(name, a, 1)?;
                Val::Int(match &arg(0) {
                    Val::Str(x) => x.len(),
                    Val::List(l) => l.len(),
                    Val::Map(m) => m.len(),
                    other => return fail(format!("len of type {}", other.type_name())),
                } as i64)
            }
            "index" => index(a)?,
            "print" => Val::from(sprint(a)),
            "println" => Val::from(sprintln(a)),
            "printf" => {
                let f = s(0)?;
                Val::from(sprintf(&f, &a[1..]))
            }
            "html" => Val::from(html_escape(&eval_args(a))),
            "js" => Val::from(js_escape(&eval_args(a))),
            "urlquery" => Val::from(crate::route::ctx::query_escape(&eval_args(a))),
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, a)?,
            // sprig: strings.
            "upper" => Val::from(s(0)?.to_uppercase()),
            "lower" => Val::from(s(0)?.to_lowercase()),
            "title" => Val::from(title(&s(0)?)),
            "trim" => Val::from(s(0)?.trim().to_owned()),
            "trimAll" => Val::from(
                s(1)?
                    .trim_matches(|c| s(0).unwrap_or_default().contains(c))
                    .to_owned(),
            ),
            "trimPrefix" => Val::from(
                s(1)?
                    .strip_prefix(&*s(0)?)
                    .map(str::to_owned)
                    .unwrap_or(s(1)?),
            ),
            "trimSuffix" => Val::from(
                s(1)?
                    .strip_suffix(&*s(0)?)
                    .map(str::to_owned)
                    .unwrap_or(s(1)?),
            ),
            "replace" => Val::from(s(2)?.replace(&*s(0)?, &s(1)?)),
            "repeat" => {
                let (n, x) = (int_arg(a, 0)?.max(0) as usize, s(1)?);
                if n.saturating_mul(x.len()) > MAX_BUILT {
                    return fail("strings: Repeat output length overflow");
                }
                Val::from(x.repeat(n))
            }
            "contains" => Val::Bool(s(1)?.contains(&*s(0)?)),
            "hasPrefix" => Val::Bool(s(1)?.starts_with(&*s(0)?)),
            "hasSuffix" => Val::Bool(s(1)?.ends_with(&*s(0)?)),
            "nospace" => Val::from(
                s(0)?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            ),
            "trunc" => {
                let (n, x) = (int_arg(a, 0)?, s(1)?);
                let t = if n < 0 {
                    let k = (-n) as usize;
                    if x.len() > k {
                        let mut at = x.len() - k;
                        while !x.is_char_boundary(at) {
                            at += 1;
                        }
                        x[at..].to_owned()
                    } else {
                        x
                    }
                } else if x.len() > n as usize {
                    let mut at = n as usize;
                    while !x.is_char_boundary(at) {
                        at -= 1;
                    }
                    x[..at].to_owned()
                } else {
                    x
                };
                Val::from(t)
            }
            "substr" => {
                let (start, end, x) = (int_arg(a, 0)?, int_arg(a, 1)?, s(2)?);
                let len = x.len() as i64;
                let start = start.clamp(0, len) as usize;
                let end = if end < 0 || end > len {
                    len as usize
                } else {
                    end as usize
                };
                Val::from(x.get(start..end.max(start)).unwrap_or("").to_owned())
            }
            "quote" => Val::from(
                a.iter()
                    .filter(|v| !matches!(v, Val::Missing | Val::Nil))
                    .map(|v| go_quote(&strval(v)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "squote" => Val::from(
                a.iter()
                    .filter(|v| !matches!(v, Val::Missing | Val::Nil))
                    .map(|v| format!("'{}'", strval(v)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "cat" => Val::from(
                a.iter()
                    .filter(|v| !matches!(v, Val::Missing | Val::Nil))
                    .map(Val::to_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "indent" | "nindent" => {
                let pad = " ".repeat(int_arg(a, 0)?.max(0) as usize);
                let body = format!("{pad}{}", s(1)?.replace('\n', &format!("\n{pad}")));
                Val::from(if name == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            "split" => {
                let parts = go_split(&s(1)?, &s(0)?);
                let m: BTreeMap<String, Val> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Val::from(p)))
                    .collect();
                Val::Map(Rc::new(m))
            }
            "splitList" => Val::list(
                go_split(&s(1)?, &s(0)?)
                    .into_iter()
                    .map(Val::from)
                    .collect(),
            ),
            "join" => {
                want(name, a, 2)?;
                let items: Vec<String> = match &arg(1) {
                    Val::List(l) => l
                        .iter()
                        .filter(|v| !matches!(v, Val::Missing | Val::Nil))
                        .map(strval)
                        .collect(),
                    Val::Str(x) => vec![x.to_string()],
                    other => vec![strval(other)],
                };
                Val::from(items.join(&s(0)?))
            }
            "toString" => Val::from(strval(a.first().unwrap_or(&Val::Nil))),
            "plural" => Val::from(if int_arg(a, 2)? == 1 { s(0)? } else { s(1)? }),
            "sortAlpha" => {
                let mut items: Vec<String> = list_of(&arg(0))?.iter().map(strval).collect();
                items.sort();
                Val::list(items.into_iter().map(Val::from).collect())
            }
            "b64enc" => {
                use base64::Engine;
                Val::from(base64::engine::general_purpose::STANDARD.encode(s(0)?))
            }
            "b64dec" => {
                use base64::Engine;
                match base64::engine::general_purpose::STANDARD.decode(s(0)?) {
                    Ok(b) => Val::from(String::from_utf8_lossy(&b).into_owned()),
                    Err(e) => Val::from(e.to_string()),
                }
            }
            "sha256sum" => {
                use sha2::Digest;
                let d = sha2::Sha256::digest(s(0)?.as_bytes());
                Val::from(d.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            // sprig: defaults and logic.
            "default" => {
                let given = a.get(1).cloned().unwrap_or(Val::Missing);
                if empty(&given) {
                    a.first().cloned().unwrap_or(Val::Missing)
                } else {
                    given
                }
            }
            "empty" => Val::Bool(empty(a.first().unwrap_or(&Val::Missing))),
            "coalesce" => a.iter().find(|v| !empty(v)).cloned().unwrap_or(Val::Nil),
            "ternary" => {
                want(name, a, 3)?;
                if arg(2).truth() {
                    arg(0).clone()
                } else {
                    arg(1).clone()
                }
            }
            // sprig: lists and dicts.
            "list" => Val::list(a.to_vec()),
            "first" => list_of(&arg(0))?.first().cloned().unwrap_or(Val::Nil),
            "last" => list_of(&arg(0))?.last().cloned().unwrap_or(Val::Nil),
            "rest" => Val::list(list_of(&arg(0))?.into_iter().skip(1).collect()),
            "initial" => {
                let mut l = list_of(&arg(0))?;
                l.pop();
                Val::list(l)
            }
            "reverse" => Val::list(list_of(&arg(0))?.into_iter().rev().collect()),
            "append" | "push" => {
                let mut l = list_of(&arg(0))?;
                l.push(a.get(1).cloned().unwrap_or(Val::Nil));
                Val::list(l)
            }
            "prepend" => {
                let mut l = list_of(&arg(0))?;
                l.insert(0, a.get(1).cloned().unwrap_or(Val::Nil));
                Val::list(l)
            }
            "has" => Val::Bool(
                list_of(&arg(1))?
                    .iter()
                    .any(|x| equal(x, &arg(0)).unwrap_or(false)),
            ),
            "uniq" => {
                let mut out: Vec<Val> = Vec::new();
                for x in list_of(&arg(0))? {
                    if !out.iter().any(|y| equal(y, &x).unwrap_or(false)) {
                        out.push(x);
                    }
                }
                Val::list(out)
            }
            "slice" => slice_of(a)?,
            "until" => {
                let n = int_arg(a, 0)?;
                if n > MAX_BUILT as i64 {
                    return fail("until: too many elements");
                }
                Val::list((0..n.max(0)).map(Val::Int).collect())
            }
            "dict" => {
                let mut m = BTreeMap::new();
                for pair in a.chunks(2) {
                    m.insert(
                        strval(&pair[0]),
                        pair.get(1).cloned().unwrap_or(Val::from("")),
                    );
                }
                Val::Map(Rc::new(m))
            }
            "get" => match &arg(0) {
                Val::Map(m) => m.get(&s(1)?).cloned().unwrap_or(Val::from("")),
                _ => Val::from(""),
            },
            "hasKey" => match &arg(0) {
                Val::Map(m) => Val::Bool(m.contains_key(&s(1)?)),
                _ => Val::Bool(false),
            },
            "keys" => {
                let mut ks: Vec<Val> = Vec::new();
                for d in a {
                    if let Val::Map(m) = d {
                        ks.extend(m.keys().map(|k| Val::from(k.as_str())));
                    }
                }
                Val::list(ks)
            }
            // sprig: math (integers, as sprig's toInt64).
            "add" => Val::Int(a.iter().map(to_int).sum()),
            "add1" => Val::Int(to_int(&arg(0)) + 1),
            "sub" => Val::Int(to_int(&arg(0)) - to_int(&arg(1))),
            "mul" => Val::Int(a.iter().map(to_int).product()),
            "div" | "mod" => {
                let d = to_int(&arg(1));
                if d == 0 {
                    return fail("runtime error: integer divide by zero");
                }
                Val::Int(if name == "div" {
                    to_int(&arg(0)) / d
                } else {
                    to_int(&arg(0)) % d
                })
            }
            "max" => Val::Int(a.iter().map(to_int).max().unwrap_or(0)),
            "min" => Val::Int(a.iter().map(to_int).min().unwrap_or(0)),
            "int" | "int64" => Val::Int(to_int(&arg(0))),
            "atoi" => Val::Int(s(0)?.parse().unwrap_or(0)),
            "float64" => Val::Float(to_float(&arg(0))),
            // sprig: dates (UTC).
            "now" => now(),
            "date" => {
                let (sec, n) = time_of(&arg(1));
                Val::from(format_time(sec, n, &s(0)?))
            }
            "htmlDate" => {
                let (sec, n) = time_of(&arg(0));
                Val::from(format_time(sec, n, "2006-01-02"))
            }
            "unixEpoch" => Val::from(time_of(&arg(0)).0.to_string()),
            // sprig: reflection.
            "typeOf" => Val::from(arg(0).type_name()),
            "kindOf" => Val::from(match &arg(0) {
                Val::Int(_) => "int",
                Val::Float(_) => "float64",
                Val::Str(_) => "string",
                Val::Bool(_) => "bool",
                Val::List(_) => "slice",
                Val::Map(_) => "map",
                Val::Obj(_) | Val::Time(..) => "struct",
                Val::Missing | Val::Nil => "invalid",
            }),
            // Caddy's functions.
            "import" => {
                super::import(ex, &s(0)?)?;
                Val::from("")
            }
            "readFile" => {
                Val::from(String::from_utf8_lossy(&ex.env.read(&s(0)?).or_else(fail)?).into_owned())
            }
            "placeholder" | "ph" => Val::from(ex.env.placeholder(&s(0)?).unwrap_or_default()),
            "env" => Val::from(std::env::var(s(0)?).unwrap_or_default()),
            "stripHTML" => Val::from(strip_html(&s(0)?)),
            "splitFrontMatter" => {
                let (meta, body) = super::frontmatter::split(&strval(&arg(0))).or_else(fail)?;
                let mut doc = BTreeMap::new();
                doc.insert("Meta".to_owned(), Val::Map(Rc::new(meta)));
                doc.insert("Body".to_owned(), Val::from(body));
                Val::Map(Rc::new(doc))
            }
            "listFiles" => Val::list(
                ex.env
                    .list(&s(0)?)
                    .or_else(fail)?
                    .into_iter()
                    .map(Val::from)
                    .collect(),
            ),
            "fileExists" => Val::Bool(ex.env.read_ok(&s(0)?).or_else(fail)?),
            "fileStat" => ex.env.stat(&s(0)?).or_else(fail)?,
            "httpError" => return Err(Fail::Http(int_arg(a, 0)? as u16)),
            "pathEscape" => Val::from(path_escape(&s(0)?)),
            "humanize" => {
                let (kind, data) = (s(0)?, s(1)?);
                match kind.as_str() {
                    "size" => match data.parse::<u64>() {
                        Ok(n) => Val::from(humanize_bytes(n)),
                        Err(e) => {
                            return fail(format!(
                                "strconv.ParseUint: parsing {}: {}",
                                go_quote(&data),
                                if data.is_empty() {
                                    "invalid syntax".to_owned()
                                } else {
                                    e.to_string()
                                }
                            ))
                        }
                    },
                    _ => return fail(format!("no know function was given: {kind}")),
                }
            }
            // `maybe` calls a function that may not be plugged in; none are, so it's empty.
            "maybe" => Val::from(""),
            _ => return Err(Fail::NoFunc),
        })
    })();
    match result {
        Err(Fail::NoFunc) => None,
        r => Some(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_layouts() {
        // 2026-11-27 07:30:05.123 UTC, a Friday
        let t = 1_795_764_605;
        assert_eq!(
            format_time(
                t,
                123_000_000,
                "2006-01-02 15:04:05.000 Mon Jan _2 3PM MST -0700"
            ),
            "2026-11-27 07:30:05.123 Fri Nov 27 7AM UTC +0000"
        );
        assert_eq!(
            format_time(0, 0, "January 2, 2006 002"),
            "January 1, 1970 001"
        );
    }

    #[test]
    fn humanize_si() {
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(12_345), "12 kB");
    }

    #[test]
    fn strings() {
        assert_eq!(title("hello wide-world"), "Hello Wide-World");
        assert_eq!(strip_html("a<b>c</b> <d"), "ac <d");
        assert_eq!(path_escape("a b/c"), "a%20b%2Fc");
        assert_eq!(js_escape("<'a'>"), "\\u003C\\'a\\'\\u003E");
    }
}

//! Template values: the dynamically typed data a Go template sees (Go's `reflect.Value`
//! reduced to what Caddy's templates hand out), how `fmt` prints them (`%v` and `printf`'s
//! verbs), and Go's truth and comparison rules.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::rc::Rc;

/// A receiver with fields and methods (Caddy's context, the request, its URL, headers...).
pub trait Object: std::fmt::Debug {
    /// Go's type name, for `%T` and error messages.
    fn type_name(&self) -> &'static str;
    /// The field or method `name` called with `args`; `None` when there is no such member.
    fn member(
        &self,
        name: &str,
        args: &[Val],
        env: &mut dyn super::Env,
    ) -> Option<Result<Val, String>>;
    /// What `%v` prints.
    fn display(&self) -> String;
    /// `index OBJ KEY` (a header map's values).
    fn index(&self, _key: &str) -> Option<Val> {
        None
    }
    /// The same template context with other `.Args` (for `include`).
    fn with_args(&self, _args: Val) -> Option<Val> {
        None
    }
}

#[derive(Clone, Debug)]
pub enum Val {
    /// Go's invalid `reflect.Value` (a missing map key, an unset variable): `<no value>`.
    Missing,
    /// A nil interface or pointer: `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<Vec<Val>>),
    /// Go maps print and range in key order.
    Map(Rc<BTreeMap<String, Val>>),
    Obj(Rc<dyn Object>),
    /// A `time.Time` in UTC: seconds and nanoseconds since the epoch.
    Time(i64, u32),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Str(Rc::from(s))
    }
}

impl Val {
    pub fn list(items: Vec<Val>) -> Val {
        Val::List(Rc::new(items))
    }

    /// Go's type name (`%T`, error messages).
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Missing | Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "[]interface {}",
            Val::Map(_) => "map[string]interface {}",
            Val::Obj(o) => o.type_name(),
            Val::Time(..) => "time.Time",
        }
    }

    /// Go's `isTrue`: the zero value of its type is false.
    pub fn truth(&self) -> bool {
        match self {
            Val::Missing | Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Map(m) => !m.is_empty(),
            Val::Obj(_) | Val::Time(..) => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a Go function parameter of type `int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// `fmt.Sprint(v)` of a single value (`%v`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_v(&mut s, false);
        s
    }

    /// `%v` (with `plus`, `%+v`); inside containers nil is `<nil>`.
    fn write_v(&self, out: &mut String, nested: bool) {
        match self {
            Val::Missing if !nested => out.push_str("<no value>"),
            Val::Missing | Val::Nil => out.push_str("<nil>"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => out.push_str(&format_g(*f, None, false)),
            Val::Str(s) => out.push_str(s),
            Val::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_v(out, true);
                }
                out.push(']');
            }
            Val::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_v(out, true);
                }
                out.push(']');
            }
            Val::Obj(o) => out.push_str(&o.display()),
            Val::Time(s, n) => out.push_str(&super::funcs::format_time(
                *s,
                *n,
                "2006-01-02 15:04:05.999999999 -0700 MST",
            )),
        }
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither side is a string.
pub fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        a.write_v(&mut out, true);
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands, then a newline.
pub fn sprintln(args: &[Val]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| {
            let mut s = String::new();
            a.write_v(&mut s, true);
            s
        })
        .collect();
    parts.join(" ") + "\n"
}

/// Go's `strconv.FormatFloat(f, 'g', prec, 64)` as `%v`/`%g` print it (shortest when `prec`
/// is None); `sharp` keeps trailing zeros.
pub fn format_g(f: f64, prec: Option<usize>, sharp: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // The digits and decimal exponent of the shortest (or rounded) representation.
    let sci = match prec {
        None => format!("{f:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let nd = digits.trim_end_matches('0').len().max(1) as i32;
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > nd && nd > exp {
                nd
            } else {
                p
            }
        }
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        let mut rest = digits[1..].to_owned();
        if !sharp {
            while rest.ends_with('0') {
                rest.pop();
            }
        }
        if !rest.is_empty() {
            out.push('.');
            out.push_str(&rest);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
        return out;
    }
    let mut digits = digits;
    if !sharp {
        while digits.len() > 1 && digits.ends_with('0') && (digits.len() as i32) > exp + 1 {
            digits.pop();
        }
    }
    if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        s + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let (sign, digits) = match s.strip_prefix(['-', '+']) {
            Some(rest) => (&s[..1], rest),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else if spec.zero {
        "0".repeat(fill) + &s
    } else {
        " ".repeat(fill) + &s
    }
}

fn bad_verb(verb: char, v: &Val) -> String {
    match v {
        Val::Missing | Val::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", v.type_name(), v.to_text()),
    }
}

fn format_int(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let mag = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => mag.to_string(),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'o' => format!("{mag:o}"),
        'b' => format!("{mag:b}"),
        'c' => return char::from_u32(i as u32).map(String::from),
        'q' => return char::from_u32(i as u32).map(|c| format!("'{c}'")),
        _ => return None,
    };
    if let Some(p) = spec.prec {
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    if spec.sharp {
        digits = match verb {
            'x' => format!("0x{digits}"),
            'X' => format!("0X{digits}"),
            'o' => format!("0{digits}"),
            'b' => format!("0b{digits}"),
            _ => digits,
        };
    }
    let sign = if i < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    Some(format!("{sign}{digits}"))
}

fn format_float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let mut s = match verb {
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f),
        'e' | 'E' => {
            let s = format!("{:.*e}", spec.prec.unwrap_or(6), f);
            let (m, e) = s.split_once('e')?;
            let e: i32 = e.parse().ok()?;
            let s = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'g' | 'v' => format_g(f, spec.prec, spec.sharp),
        'G' => format_g(f, spec.prec, spec.sharp).to_uppercase(),
        _ => return None,
    };
    if f >= 0.0 && spec.plus {
        s.insert(0, '+');
    } else if f >= 0.0 && spec.space {
        s.insert(0, ' ');
    }
    Some(s)
}

fn format_one(verb: char, v: &Val, spec: &Spec) -> String {
    let numeric = matches!(v, Val::Int(_) | Val::Float(_));
    let text = match (verb, v) {
        ('T', _) => Some(v.type_name().to_owned()),
        ('v', Val::Int(_) | Val::Float(_)) | ('d' | 'x' | 'X' | 'o' | 'b' | 'c', Val::Int(_)) => {
            match v {
                Val::Int(i) => format_int(*i, verb, spec),
                Val::Float(f) => format_float(*f, verb, spec),
                _ => None,
            }
        }
        ('q', Val::Int(i)) => format_int(*i, 'q', spec),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Val::Float(f)) => format_float(*f, verb, spec),
        ('t' | 'v', Val::Bool(b)) => Some(b.to_string()),
        ('s' | 'v', Val::Str(s)) => Some(match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }),
        ('q', Val::Str(s)) => Some(go_quote(s)),
        ('x' | 'X', Val::Str(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            Some(if verb == 'X' { hex.to_uppercase() } else { hex })
        }
        ('s' | 'v', Val::List(_) | Val::Map(_) | Val::Obj(_) | Val::Time(..)) => Some(v.to_text()),
        ('v' | 's', Val::Missing | Val::Nil) => Some(if verb == 'v' {
            "<nil>".to_owned()
        } else {
            "%!s(<nil>)".to_owned()
        }),
        _ => None,
    };
    match text {
        Some(t) => pad(t, spec, numeric),
        None => bad_verb(verb, v),
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use.
pub fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = !spec.minus,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                      argi: &mut usize|
         -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let n = args.get(*argi).and_then(Val::as_int);
                *argi += 1;
                return n.map(|n| n.max(0) as usize);
            }
            let mut n = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars, &mut argi);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars, &mut argi).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(argi) {
            Some(v) => out.push_str(&format_one(verb, v, &spec)),
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
        }
        argi += 1;
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.to_text()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// The kinds Go's comparison functions accept.
#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Val) -> Option<Kind> {
    Some(match v {
        Val::Bool(_) => Kind::Bool,
        Val::Int(_) => Kind::Int,
        Val::Float(_) => Kind::Float,
        Val::Str(_) => Kind::Str,
        _ => return None,
    })
}

/// Go's `eq arg1 arg2`.
pub fn equal(a: &Val, b: &Val) -> Result<bool, String> {
    match (a, b) {
        (Val::Missing | Val::Nil, Val::Missing | Val::Nil) => return Ok(true),
        (Val::Missing | Val::Nil, _) | (_, Val::Missing | Val::Nil) => {
            if kind(a).is_some() || kind(b).is_some() {
                return Err("incompatible types for comparison".into());
            }
            return Ok(false);
        }
        _ => {}
    }
    let (Some(ka), Some(kb)) = (kind(a), kind(b)) else {
        return Err("non-comparable types".into());
    };
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => false,
    })
}

/// Go's `lt arg1 arg2`.
pub fn less(a: &Val, b: &Val) -> Result<bool, String> {
    let (Some(ka), Some(kb)) = (kind(a), kind(b)) else {
        return Err("invalid type for comparison".into());
    };
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x < y),
        (Val::Float(x), Val::Float(y)) => Ok(x < y),
        (Val::Str(x), Val::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        for (f, s) in [
            (3.0, "3"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (0.5, "0.5"),
            (0.00001, "1e-05"),
            (1.23456, "1.23456"),
            (1e21, "1e+21"),
            (100.0, "100"),
        ] {
            assert_eq!(format_g(f, None, false), s, "{f}");
        }
    }

    #[test]
    fn printf_verbs() {
        let args = [
            Val::Int(42),
            Val::from("ab"),
            Val::from("q\""),
            Val::Int(255),
            Val::Float(1.23456),
            Val::Bool(true),
        ];
        assert_eq!(
            sprintf("%5d|%-4s|%q|%x|%.2f|%t", &args),
            "   42|ab  |\"q\\\"\"|ff|1.23|true"
        );
        assert_eq!(sprintf("%d %d", &[Val::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(sprintf("%d", &[Val::from("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%05.1f%%", &[Val::Float(-2.25)]), "-02.2%");
        assert_eq!(sprintf("x", &[Val::Int(1)]), "x%!(EXTRA int=1)");
    }

    #[test]
    fn sprint_spaces() {
        let args = [
            Val::Int(1),
            Val::Int(2),
            Val::from("a"),
            Val::from("b"),
            Val::Int(3),
        ];
        assert_eq!(sprint(&args), "1 2ab3");
        assert_eq!(sprintln(&args[..2]), "1 2\n");
    }
}

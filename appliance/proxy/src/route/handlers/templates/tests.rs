//! The interpreter against outputs Go's text/template (with sprig, as Caddy sets it up)
//! gives for the same templates.

use super::value::Val;
use super::{render, Env};
use crate::http1::HeaderMap;

struct TestEnv {
    headers: HeaderMap,
    dir: String,
}

impl Env for TestEnv {
    fn placeholder(&self, key: &str) -> Option<String> {
        (key == "http.request.method").then(|| "GET".to_owned())
    }
    fn resp_headers(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(format!("{}/{name}", self.dir)).map_err(|e| e.to_string())
    }
    fn read_ok(&self, name: &str) -> Result<bool, String> {
        Ok(std::path::Path::new(&format!("{}/{name}", self.dir)).exists())
    }
    fn list(&self, _name: &str) -> Result<Vec<String>, String> {
        Ok(vec!["a".into(), "b".into()])
    }
    fn stat(&self, _name: &str) -> Result<Val, String> {
        Err("no".into())
    }
    fn delims(&self) -> (&str, &str) {
        ("{{", "}}")
    }
}

fn env() -> TestEnv {
    TestEnv {
        headers: HeaderMap::default(),
        dir: std::env::temp_dir().display().to_string(),
    }
}

fn run_with(src: &str, dot: Val) -> String {
    match render(&mut env(), "/t.html", src, dot) {
        Ok(s) => s,
        Err(super::exec::Fail::Msg(m)) => format!("ERR {m}"),
        Err(e) => format!("ERR {e:?}"),
    }
}

fn run(src: &str) -> String {
    run_with(src, Val::Missing)
}

#[test]
fn text_actions_and_trim() {
    assert_eq!(run("a {{ \"b\" }} c"), "a b c");
    assert_eq!(run("a  {{- \"b\" -}}  c"), "abc");
    assert_eq!(run("x{{/* c */}}y{{- /* t */ -}}\n z"), "xyz");
    assert_eq!(run("{{-3}}"), "-3");
    assert_eq!(run("{{`raw\\n`}}"), "raw\\n");
    assert_eq!(
        run("{{3.0}} {{1e6}} {{1234567.0}} {{0x10}} {{'a'}} {{true}}"),
        "3 1e+06 1.234567e+06 16 97 true"
    );
    assert_eq!(run("{{.}}"), "<no value>");
}

#[test]
fn variables_and_control() {
    assert_eq!(run("{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}"), "12");
    assert_eq!(
        run("{{if and 1 0}}T{{else if or 0 \"\"}}E{{else}}F{{end}}"),
        "F"
    );
    assert_eq!(run("{{if 1}}{{$y := 3}}{{$y}}{{end}}"), "3");
    assert_eq!(run("{{with $x := \"w\"}}{{$x}}{{.}}{{end}}"), "ww");
    assert_eq!(run("{{with \"\"}}no{{else}}else{{end}}"), "else");
    assert_eq!(
        run("{{range $i, $v := list \"a\" \"b\"}}{{$i}}={{$v}} {{else}}none{{end}}"),
        "0=a 1=b "
    );
    assert_eq!(run("{{range list}}x{{else}}none{{end}}"), "none");
    assert_eq!(run("{{range (dict \"b\" 2 \"a\" 1)}}{{.}}{{end}}"), "12");
    assert_eq!(
        run("{{range $k, $v := dict \"b\" 2 \"a\" 1}}{{$k}}{{$v}}{{end}}"),
        "a1b2"
    );
    assert_eq!(
        run("{{range 5}}{{if eq . 3}}{{break}}{{end}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}"),
        "02"
    );
    assert_eq!(
        run("{{$n := 0}}{{range list 1 2 3}}{{$n = add $n .}}{{end}}{{$n}}"),
        "6"
    );
}

#[test]
fn templates_and_blocks() {
    assert_eq!(run("{{define \"T1\"}}[{{.}}]{{end}}{{template \"T1\" \"arg\"}}{{block \"B\" 3}}<{{.}}>{{end}}"), "[arg]<3>");
    assert!(
        run("{{template \"nope\"}}").contains("no such template")
            || run("{{template \"nope\"}}").contains("not defined")
    );
}

#[test]
fn builtins() {
    assert_eq!(
        run("{{print 1 2 \"a\" \"b\" 3}}{{println 1 \"x\"}}"),
        "1 2ab31 x\n"
    );
    assert_eq!(
        run("{{len \"héllo\"}} {{index (list 1 2 3) 1}} {{slice (list 1 2 3 4) 1 3}}"),
        "6 2 [2 3]"
    );
    assert_eq!(
        run("{{printf \"%5d|%-4s|%q|%v|%x|%.2f|%t|%T\" 42 \"ab\" \"q\\\"\" (list) 255 1.23456 true 1.5}}"),
        "   42|ab  |\"q\\\"\"|[]|ff|1.23|true|float64"
    );
    assert_eq!(
        run("{{html \"<a href='x'>&</a>\"}}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(
        run("{{urlquery \"a b&c\"}} {{js \"it's\"}}"),
        "a+b%26c it\\'s"
    );
    assert_eq!(
        run("{{eq 1 2 1}} {{ne \"a\" \"b\"}} {{lt 1 2}} {{ge 2.5 2.5}} {{not 0}}"),
        "true true true true true"
    );
    assert_eq!(
        run("{{\"upper\" | upper}} {{\"a\" | printf \"%s-%s\" \"b\"}}"),
        "UPPER b-a"
    );
    assert!(run("{{eq 1 \"a\"}}").contains("incompatible types for comparison"));
    assert!(run("{{nil}}").contains("nil is not a command"));
}

#[test]
fn sprig() {
    assert_eq!(
        run("{{upper \"abc\"}} {{title \"hello world\"}} {{replace \"a\" \"b\" \"banana\"}} {{default \"d\" \"\"}} {{join \",\" (list 1 2)}} {{split \",\" \"a,b\"}} {{quote \"x\" 2}} {{squote \"y\"}} {{cat \"a\" 1 nil \"b\"}} {{indent 2 \"x\\ny\"}} {{nospace \"a b c\"}} {{trunc 3 \"abcdef\"}} {{repeat 3 \"ab\"}}"),
        "ABC Hello World bbnbnb d 1,2 map[_0:a _1:b] \"x\" \"2\" 'y' a 1 b   x\n  y abc abc ababab"
    );
    assert_eq!(
        run("{{humanize \"size\" \"1234567\"}} {{pathEscape \"a b/c\"}} {{maybe \"x\" 1}}|"),
        "1.2 MB a%20b%2Fc |"
    );
    assert_eq!(run("{{contains \"b\" \"abc\"}} {{hasPrefix \"a\" \"abc\"}} {{hasSuffix \"c\" \"abc\"}} {{trim \"  x \"}}"), "true true true x");
    assert_eq!(
        run("{{ph \"http.request.method\"}} {{placeholder \"nope\"}}|"),
        "GET |"
    );
    assert_eq!(
        run("{{date \"2006-01-02\" 0}} {{stripHTML \"<b>bold</b>\"}}"),
        "1970-01-01 bold"
    );
}

#[test]
fn string_limits() {
    assert_eq!(run("{{trunc 2 \"héllo\"}} {{trunc -4 \"héllo\"}}"), "h llo");
    assert!(run("{{repeat 1000000000 \"ab\"}}").contains("overflow"));
}

#[test]
fn errors_read_like_go() {
    assert_eq!(
        run("a\n{{len 3}}"),
        "ERR template: /t.html:2:2: executing \"/t.html\" at <len 3>: error calling len: len of type int"
    );
    assert!(run("{{if}}").starts_with("ERR template: /t.html:1: missing value for if"));
    assert!(run("{{end}}").contains("unexpected {{end}}"));
    assert!(run("{{$u}}").contains("undefined variable \"$u\""));
    assert!(run("{{range 1}}{{end}}{{break}}").contains("{{break}} outside {{range}}"));
}

#[test]
fn include_and_import() {
    let dir = std::env::temp_dir();
    std::fs::write(dir.join("zs_tpl_inc.html"), "[{{upper \"inc\"}}]").unwrap();
    std::fs::write(
        dir.join("zs_tpl_defs.html"),
        "{{define \"d\"}}D{{.}}{{end}}",
    )
    .unwrap();
    assert_eq!(run("{{include \"zs_tpl_inc.html\"}}"), "[INC]");
    assert_eq!(
        run("{{import \"zs_tpl_defs.html\"}}{{template \"d\" 1}}"),
        "D1"
    );
    assert_eq!(
        run("{{fileExists \"zs_tpl_inc.html\"}} {{fileExists \"nope\"}}"),
        "true false"
    );
    assert_eq!(run("{{listFiles \"x\"}}"), "[a b]");
}

#[test]
fn runaway_recursion_fails_within_a_worker_stack() {
    // Worker threads have Rust's default 2 MiB stack; a template calling itself must fail
    // with an error there, not overflow it.
    let t = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| run("{{define \"a\"}}x{{template \"a\" .}}{{end}}{{template \"a\"}}"))
        .unwrap();
    let out = t.join().unwrap();
    assert!(out.contains("exceeded maximum template depth"), "{out}");
    std::fs::write(
        std::env::temp_dir().join("zs_tpl_self.html"),
        "{{include \"zs_tpl_self.html\"}}",
    )
    .unwrap();
    let t = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| run("{{include \"zs_tpl_self.html\"}}"))
        .unwrap();
    let out = t.join().unwrap();
    assert!(out.contains("exceeded maximum template depth"), "{out}");
}

//! Rewrites the folded form of legacy exception handling's `try`
//! (`(try $l? bt* (do instr*) (catch $t instr*)* (catch_all instr*)?)` and
//! `(try ... (do instr*) (delegate $l))`), which the upstream legacy tests
//! use and the `wast` parser no longer reads, into the flat form it does
//! read (`try $l? bt* instr* catch $t instr* ... end`). Everything else is
//! copied unchanged, comments and strings included.

/// One token of the text: a parenthesis, or any other run of text that
/// holds no list boundary (atoms, strings, whitespace and comments).
#[derive(Debug)]
enum Tok<'a> {
    Open,
    Close,
    Text(&'a str),
}

fn tokenize(s: &str) -> Vec<Tok<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b';' if b.get(i + 1) == Some(&b';') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' if b.get(i + 1) == Some(&b';') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'(' && b.get(i + 1) == Some(&b';') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b';' && b.get(i + 1) == Some(&b')') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'(' | b')' => {
                if start < i {
                    out.push(Tok::Text(&s[start..i]));
                }
                out.push(if b[i] == b'(' { Tok::Open } else { Tok::Close });
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len().min(i) {
        out.push(Tok::Text(&s[start..b.len().min(i)]));
    }
    out
}

/// An S-expression: a list, or text between lists.
#[derive(Debug)]
enum Node<'a> {
    List(Vec<Node<'a>>),
    Text(&'a str),
}

fn parse<'a>(toks: &[Tok<'a>], at: &mut usize) -> Vec<Node<'a>> {
    let mut nodes = Vec::new();
    while *at < toks.len() {
        match toks[*at] {
            Tok::Open => {
                *at += 1;
                nodes.push(Node::List(parse(toks, at)));
            }
            Tok::Close => {
                *at += 1;
                return nodes;
            }
            Tok::Text(t) => {
                *at += 1;
                nodes.push(Node::Text(t));
            }
        }
    }
    nodes
}

/// The first word of a list, if it starts with one.
fn head<'n>(items: &'n [Node<'_>]) -> Option<&'n str> {
    match items.first() {
        Some(Node::Text(t)) => t.split_whitespace().next(),
        _ => None,
    }
}

/// Whether a list is a folded legacy `try`: `try` with a `(do ...)` part.
fn is_folded_try(items: &[Node<'_>]) -> bool {
    head(items) == Some("try") && items.iter().any(|n| matches!(n, Node::List(l) if head(l) == Some("do")))
}

fn write(nodes: &[Node<'_>], out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::List(items) if is_folded_try(items) => write_try(items, out),
            Node::List(items) => {
                out.push('(');
                write(items, out);
                out.push(')');
            }
        }
    }
}

/// Writes the body of a clause list `(word rest...)` without its parens
/// and without `word`.
fn write_clause_body(items: &[Node<'_>], out: &mut String) {
    if let Some(Node::Text(t)) = items.first() {
        let t = t.trim_start();
        let word_end = t.find(char::is_whitespace).unwrap_or(t.len());
        out.push(' ');
        out.push_str(&t[word_end..]);
    }
    write(&items[1..], out);
}

fn write_try(items: &[Node<'_>], out: &mut String) {
    out.push(' ');
    let mut delegated = false;
    for n in items {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::List(l) => match head(l) {
                Some("do") => write_clause_body(l, out),
                Some("catch") | Some("catch_all") | Some("delegate") => {
                    let word = head(l).unwrap_or_default();
                    delegated |= word == "delegate";
                    out.push(' ');
                    out.push_str(word);
                    write_clause_body(l, out);
                }
                // Block type annotations: `(result i32)`, `(param ...)`, `(type $t)`.
                _ => {
                    out.push('(');
                    write(l, out);
                    out.push(')');
                }
            },
        }
    }
    if !delegated {
        out.push_str(" end");
    }
    out.push(' ');
}

/// `text` with every folded legacy `try` written in flat form.
pub fn unfold_legacy_try(text: &str) -> String {
    let toks = tokenize(text);
    let nodes = parse(&toks, &mut 0);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    write(&nodes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::unfold_legacy_try;

    #[test]
    fn folded_tries_become_flat_and_the_rest_is_unchanged() {
        let src = r#"(module ;; a (try (do)) in a comment
  (func (result i32) (try $t (result i32) (do (i32.const 1)) (catch $e (i32.const 2)) (catch_all (i32.const 3))))
  (func (try (do (try (do (nop)) (delegate $t)))))
  (data "(try (do))"))"#;
        let out = unfold_legacy_try(src);
        let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("try $t (result i32) (i32.const 1) catch $e (i32.const 2) catch_all (i32.const 3) end"),
            "{out}"
        );
        assert!(words.contains("(func try try (nop) delegate $t end )"), "{out}");
        assert!(out.contains(";; a (try (do)) in a comment") && out.contains(r#"(data "(try (do))")"#), "{out}");
        assert_eq!(unfold_legacy_try("(module (func (block (nop))))"), "(module (func (block (nop))))");
    }
}

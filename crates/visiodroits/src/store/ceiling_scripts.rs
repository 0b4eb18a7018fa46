//! The pgbench scripts of `scripts/bench.d` are the ceilings of the server's transactions: the
//! same statements, in the same order. They are written by hand (pgbench needs expressions where
//! the server binds values), so these tests hold them to the statements the store runs: a change
//! of the server's SQL that is not carried into the scripts fails here, not silently in a
//! benchmark ratio.

use super::{rights, tarification, Role};

/// `script`'s SQL statements as tokens: meta-commands (`\\set`, `\\startpipeline`, …) and comments
/// dropped, statements ended by `;` or `\\gset`.
fn statements(script: &str) -> Vec<Vec<Token>> {
    let sql: String = script
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .filter(|l| !l.trim_start().starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\gset", ";");
    sql.split(';')
        .map(tokens)
        .filter(|t| !t.is_empty())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word (keyword, name, number), upper-cased, or a quoted string, or one other character.
    Text(String),
    /// `$n` of the server's statement.
    Param,
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let word = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
        if c.is_whitespace() {
            continue;
        }
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.next_if(char::is_ascii_digit).is_some() {}
            out.push(Token::Param);
        } else if c == '\'' {
            let mut s = String::from(c);
            while let Some(c) = chars.next() {
                s.push(c);
                if c == '\'' && chars.next_if_eq(&'\'').is_none() {
                    break;
                }
            }
            out.push(Token::Text(s));
        } else if word(&c) {
            let mut s = String::from(c);
            while let Some(c) = chars.next_if(word) {
                s.push(c);
            }
            out.push(Token::Text(s.to_ascii_uppercase()));
        } else {
            out.push(Token::Text(c.to_string()));
        }
    }
    out
}

/// What an expression standing for a parameter may not hold: the words that would make it more
/// than a value (another condition, clause or statement).
const CLAUSES: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "WHERE",
    "FROM",
    "JOIN",
    "ON",
    "SELECT",
    "UNION",
    "ORDER",
    "GROUP",
    "LIMIT",
    "RETURNING",
    "INSERT",
    "UPDATE",
    "DELETE",
    "WITH",
    "VALUES",
    "SET",
];

fn a_value(gap: &[Token]) -> bool {
    !gap.is_empty()
        && gap
            .iter()
            .all(|t| !matches!(t, Token::Text(w) if CLAUSES.contains(&w.as_str())))
}

/// Whether `statement` is the server's `sql` with a value expression in place of each `$n`.
fn runs(statement: &[Token], sql: &str) -> bool {
    let sql = tokens(sql);
    let parts: Vec<&[Token]> = sql.split(|t| *t == Token::Param).collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return statement == first;
    }
    let Some(rest) = statement.strip_prefix(first) else {
        return false;
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    // Each literal part in order, leftmost, with a value between it and the previous one.
    for part in &parts[1..parts.len() - 1] {
        let Some(at) =
            (1..=rest.len().saturating_sub(part.len())).find(|&at| rest[at..].starts_with(part))
        else {
            return false;
        };
        if !a_value(&rest[..at]) {
            return false;
        }
        rest = &rest[at + part.len()..];
    }
    a_value(rest)
}

/// The server's statements: `BEGIN; SET LOCAL ROLE …` as two.
fn server(role: Role, body: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = role.begin().split(';').map(str::to_string).collect();
    all.extend(body.iter().map(|s| s.to_string()));
    all.push("COMMIT".into());
    all
}

fn assert_mirrors(name: &str, script: &str, server: &[String]) {
    let script = statements(script);
    assert_eq!(
        script.len(),
        server.len(),
        "{name}: {} statements, the server runs {}",
        script.len(),
        server.len()
    );
    for (i, (s, sql)) in script.iter().zip(server).enumerate() {
        assert!(
            runs(s, sql),
            "{name}, statement {}: not the server's\n  script: {s:?}\n  server: {sql}",
            i + 1,
        );
    }
}

#[test]
fn the_rights_ceiling_runs_the_rights_exchanges_statements() {
    assert_mirrors(
        "droits.sql",
        include_str!("../../../../scripts/bench.d/droits.sql"),
        &server(
            Role::Rights,
            &[&rights::LOOKUP_BY_NIR, &rights::ISSUE_DOSSIER],
        ),
    );
}

#[test]
fn the_tarification_ceilings_run_the_tarification_statements() {
    let devis = server(
        Role::Tarification,
        &[
            tarification::REQUEST_STATE,
            tarification::CONSUMPTION,
            &tarification::RECORD,
        ],
    );
    assert_mirrors(
        "devis.sql",
        include_str!("../../../../scripts/bench.d/devis.sql"),
        &devis,
    );
    let pec = server(
        Role::Tarification,
        &[
            tarification::REQUEST_STATE,
            tarification::CONSUMPTION_LOCKED,
            &tarification::RECORD,
        ],
    );
    assert_mirrors(
        "pec.sql",
        include_str!("../../../../scripts/bench.d/pec.sql"),
        &pec,
    );
}

#[test]
fn a_statement_that_differs_from_the_servers_is_caught() {
    let sql = "SELECT a FROM t WHERE x = $1 AND y = $2";
    let runs = |script: &str| runs(&tokens(script), sql);
    assert!(runs(
        "select a from t\n WHERE x = :x::int AND y = 'b ''and'' c'"
    ));
    assert!(!runs("SELECT a FROM t WHERE x = :x"), "a condition missing");
    assert!(
        !runs("SELECT a, b FROM t WHERE x = 1 AND y = 2"),
        "a column more"
    );
    assert!(
        !runs("SELECT a FROM t WHERE x = 1 AND y = 2 AND z = 3"),
        "a condition more"
    );
    assert!(
        !runs("SELECT a FROM t WHERE x = 1 AND y = 2 LIMIT 1"),
        "a clause more"
    );
    assert!(
        !runs("SELECT a FROM t WHERE x = AND y = 2"),
        "a value missing"
    );
    assert_eq!(
        statements("\\set i 1\n-- a comment\nBEGIN;\nSELECT 1 \\gset\nCOMMIT;\n"),
        [tokens("BEGIN"), tokens("SELECT 1"), tokens("COMMIT")]
    );
}

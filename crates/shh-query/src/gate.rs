//! The statement gate: what SQL may be run at all. A query (`SELECT`, `WITH … SELECT`, set
//! operations of them) and nothing else; the parser's recursion is bounded so a deeply nested
//! expression is an error, not a stack overflow.

use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

/// A statement the sandbox does not run: the rule and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (rule {rule})")]
pub struct Refused {
    /// The rule's stable name (`sql.one-query`…).
    pub rule: &'static str,
    /// Why.
    pub reason: String,
}

fn refuse(rule: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        rule,
        reason: reason.into(),
    }
}

/// Longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Deepest nesting the parser follows (expressions, subqueries).
pub const MAX_DEPTH: usize = 64;

/// Parses `sql` and returns its one statement if it is a query.
pub fn check_statement(sql: &str) -> Result<Statement, Refused> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(refuse(
            "sql.size",
            format!("the query is longer than {MAX_SQL_BYTES} bytes"),
        ));
    }
    let mut parser = DFParserBuilder::new(sql)
        .with_recursion_limit(MAX_DEPTH)
        .build()
        .map_err(|e| refuse("sql.syntax", e.to_string()))?;
    let mut statements = parser
        .parse_statements()
        .map_err(|e| refuse("sql.syntax", e.to_string()))?;
    if statements.len() != 1 {
        return Err(refuse(
            "sql.one-query",
            format!("one statement is run at a time, {} given", statements.len()),
        ));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(refuse("sql.one-query", "no statement given"));
    };
    match statement {
        DfStatement::Statement(s) => match *s {
            q @ Statement::Query(_) => Ok(q),
            other => Err(refuse(
                "sql.query-only",
                format!("only queries run here, not {}", kind(&other)),
            )),
        },
        DfStatement::CreateExternalTable(_) => Err(refuse(
            "sql.query-only",
            "only queries run here, not CREATE EXTERNAL TABLE",
        )),
        DfStatement::CopyTo(_) => Err(refuse("sql.query-only", "only queries run here, not COPY")),
        DfStatement::Explain(_) => Err(refuse(
            "sql.query-only",
            "only queries run here, not EXPLAIN (a plan shows what the permit's views hide)",
        )),
        DfStatement::Reset(_) => Err(refuse("sql.query-only", "only queries run here, not RESET")),
    }
}

/// The statement's kind, as a user would name it (its first keywords).
fn kind(s: &Statement) -> String {
    if matches!(
        s,
        Statement::Explain { .. } | Statement::ExplainTable { .. }
    ) {
        return "EXPLAIN (a plan shows what the permit's views hide)".into();
    }
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let first = words.first().copied().unwrap_or("this statement");
    match first.to_ascii_uppercase().as_str() {
        "CREATE" | "DROP" | "ALTER" | "SHOW" | "SET" | "COPY" | "INSERT" | "UPDATE" | "DELETE"
        | "MERGE" | "TRUNCATE" | "START" | "COMMIT" | "ROLLBACK" | "PREPARE" | "EXECUTE"
        | "DEALLOCATE" | "ATTACH" | "DETACH" | "INSTALL" | "LOAD" | "USE" | "DESCRIBE"
        | "GRANT" | "REVOKE" | "KILL" | "CALL" => first.to_ascii_uppercase(),
        _ => "this statement".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_query_passes() {
        for ok in [
            "SELECT 1",
            "select BEN_NIR_PSA from ER_PRS_F",
            "WITH c AS (SELECT 1 AS x) SELECT x FROM c",
            "SELECT 1 UNION ALL SELECT 2",
        ] {
            assert!(check_statement(ok).is_ok(), "{ok}");
        }
        for (bad, rule) in [
            ("CREATE TABLE t (a INT)", "sql.query-only"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "sql.query-only",
            ),
            ("COPY (SELECT 1) TO '/tmp/out.csv'", "sql.query-only"),
            ("INSERT INTO t VALUES (1)", "sql.query-only"),
            (
                "SET datafusion.execution.target_partitions = 1",
                "sql.query-only",
            ),
            ("EXPLAIN SELECT 1", "sql.query-only"),
            ("EXPLAIN ANALYZE SELECT 1", "sql.query-only"),
            ("SHOW TABLES", "sql.query-only"),
            ("DROP TABLE t", "sql.query-only"),
            ("RESET datafusion.execution.batch_size", "sql.query-only"),
            ("SELECT 1; SELECT 2", "sql.one-query"),
            ("SELECT 1; DROP TABLE t", "sql.one-query"),
            ("", "sql.one-query"),
            ("SELEC 1", "sql.syntax"),
        ] {
            assert_eq!(
                check_statement(bad).map(|_| ()).map_err(|r| r.rule),
                Err(rule),
                "{bad}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(
            check_statement(&deep).map_err(|r| r.rule).err(),
            Some("sql.syntax")
        );
        let long = format!("SELECT 1 WHERE {}", vec!["1 = 1"; 20_000].join(" OR "));
        assert_eq!(
            check_statement(&long).map_err(|r| r.rule).err(),
            Some("sql.size")
        );
    }
}

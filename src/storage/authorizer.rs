//! What user SQL may touch: Cloudflare's rules for `ctx.storage.sql` as an SQLite authorizer.
//!
//! Internal tables (`_cf_` prefix, any case) are off limits to user SQL, as are ATTACH, TEMP
//! objects, transactions (the JS API owns them), unknown virtual table modules, and functions and
//! PRAGMAs outside allow-lists. The runtime's own statements run with the authorizer bypassed.
//! It also notes what a statement writes, for `rowsWritten` (`sql::WritePlan`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

#[derive(Default)]
pub struct AuthState {
    /// Set while the runtime runs its own statements (KV, savepoints, internal tables).
    pub internal: AtomicBool,
    /// Set when user SQL tried BEGIN/COMMIT/SAVEPOINT/RELEASE, to give the long message.
    pub saw_transaction: AtomicBool,
    /// Set for ALTER TABLE: SQLite does not show the authorizer a RENAME TO's new name, so the
    /// statement's text is checked after it compiles (`renames_to_reserved`).
    pub saw_alter: AtomicBool,
    /// What user SQL compiled since `sql` last took the list: the tables written and columns set,
    /// and schema objects (trigger bodies and foreign key actions included, as SQLite shows them).
    pub writes: Mutex<Vec<Write>>,
}

/// One write the authorizer allowed.
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// `trigger`: in a trigger's body.
    Insert {
        table: String,
        trigger: bool,
    },
    /// One per column in the SET list (`ROWID` for the rowid itself).
    Update {
        table: String,
        column: String,
        trigger: bool,
    },
    Delete {
        table: String,
        trigger: bool,
    },
    CreateTable {
        table: String,
    },
    CreateIndex {
        index: String,
        table: String,
    },
    CreateView {
        view: String,
    },
    CreateTrigger {
        trigger: String,
    },
    CreateVtable {
        table: String,
    },
    AlterTable {
        table: String,
    },
    /// DROP TABLE, INDEX, VIEW, TRIGGER.
    Drop,
}

impl Write {
    /// The write behind an allowed action, if it is one. SQLite's own tables (`sqlite_master`,
    /// written by every CREATE, `sqlite_sequence`, `sqlite_stat1`) are left out: their rows are
    /// counted from the objects created. `accessor`: the trigger (or view) being compiled.
    fn of(action: &AuthAction<'_>, accessor: Option<&str>) -> Option<Write> {
        use AuthAction::*;
        let own = |table: &str| !is_sqlite_table(table);
        let trigger = accessor.is_some();
        Some(match *action {
            Insert { table_name } if own(table_name) => Write::Insert {
                table: table_name.into(),
                trigger,
            },
            Update {
                table_name,
                column_name,
            } if own(table_name) => Write::Update {
                table: table_name.into(),
                column: column_name.into(),
                trigger,
            },
            Delete { table_name } if own(table_name) => Write::Delete {
                table: table_name.into(),
                trigger,
            },
            CreateTable { table_name } if own(table_name) => Write::CreateTable {
                table: table_name.into(),
            },
            CreateIndex {
                index_name,
                table_name,
            } if own(index_name) => Write::CreateIndex {
                index: index_name.into(),
                table: table_name.into(),
            },
            CreateView { view_name } => Write::CreateView {
                view: view_name.into(),
            },
            CreateTrigger { trigger_name, .. } => Write::CreateTrigger {
                trigger: trigger_name.into(),
            },
            CreateVtable { table_name, .. } => Write::CreateVtable {
                table: table_name.into(),
            },
            AlterTable { table_name, .. } => Write::AlterTable {
                table: table_name.into(),
            },
            DropTable { .. }
            | DropIndex { .. }
            | DropView { .. }
            | DropTrigger { .. }
            | DropVtable { .. } => Write::Drop,
            _ => return None,
        })
    }
}

fn is_sqlite_table(name: &str) -> bool {
    name.len() >= 7 && name.as_bytes()[..7].eq_ignore_ascii_case(b"sqlite_")
}

pub fn hook(
    state: Arc<AuthState>,
) -> impl for<'r> FnMut(AuthContext<'r>) -> Authorization + Send + 'static {
    move |ctx| {
        if state.internal.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        if matches!(
            ctx.action,
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. }
        ) {
            state.saw_transaction.store(true, Ordering::Relaxed);
            return Authorization::Deny;
        }
        if matches!(ctx.action, AuthAction::AlterTable { .. }) {
            state.saw_alter.store(true, Ordering::Relaxed);
        }
        // `CREATE TABLE temp.t` reaches here as a plain CREATE in database "temp". (ALTER TABLE
        // itself updates the temp schema, so only creating objects there is refused.)
        let creates = matches!(
            ctx.action,
            AuthAction::CreateTable { .. }
                | AuthAction::CreateIndex { .. }
                | AuthAction::CreateView { .. }
                | AuthAction::CreateTrigger { .. }
                | AuthAction::CreateVtable { .. }
        );
        if creates && ctx.database_name == Some("temp") {
            return Authorization::Deny;
        }

        if !allowed(&ctx.action) {
            return Authorization::Deny;
        }
        if let Some(write) = Write::of(&ctx.action, ctx.accessor) {
            state.writes.lock().push(write);
        }
        Authorization::Allow
    }
}

fn reserved(name: &str) -> bool {
    name.len() >= 4 && name.as_bytes()[..4].eq_ignore_ascii_case(b"_cf_")
}

fn allowed(action: &AuthAction<'_>) -> bool {
    use AuthAction::*;
    match *action {
        Select | Analyze { .. } | Reindex { .. } | Recursive => true,
        CreateTable { table_name } | DropTable { table_name } => !reserved(table_name),
        CreateIndex {
            index_name,
            table_name,
        }
        | DropIndex {
            index_name,
            table_name,
        } => !reserved(index_name) && !reserved(table_name),
        CreateTrigger {
            trigger_name,
            table_name,
        }
        | DropTrigger {
            trigger_name,
            table_name,
        } => !reserved(trigger_name) && !reserved(table_name),
        CreateView { view_name } | DropView { view_name } => !reserved(view_name),
        Read { table_name, .. }
        | Insert { table_name }
        | Update { table_name, .. }
        | Delete { table_name } => !reserved(table_name),
        AlterTable { table_name, .. } => !reserved(table_name),
        CreateVtable {
            table_name,
            module_name,
        }
        | DropVtable {
            table_name,
            module_name,
        } => {
            !reserved(table_name)
                && VTAB_MODULES
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(module_name))
        }
        Function { function_name } => function_allowed(function_name),
        Pragma {
            pragma_name,
            pragma_value,
        } => pragma_allowed(pragma_name, pragma_value),
        CreateTempIndex { .. }
        | CreateTempTable { .. }
        | CreateTempTrigger { .. }
        | CreateTempView { .. }
        | DropTempIndex { .. }
        | DropTempTable { .. }
        | DropTempTrigger { .. }
        | DropTempView { .. }
        | Attach { .. }
        | Detach { .. }
        | Transaction { .. }
        | Savepoint { .. } => false,
        _ => false,
    }
}

const VTAB_MODULES: [&str; 4] = ["fts5", "fts5vocab", "rtree", "rtree_i32"];

const FUNCTIONS: &[&str] = &[
    // core scalar
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "if",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "zeroblob",
    // date and time
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // aggregates
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    // window functions
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // math
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON and JSONB
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "->",
    "->>",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "json_each",
    "json_tree",
    // FTS5 and R*Tree
    "match",
    "highlight",
    "bm25",
    "snippet",
    "fts5",
    "rtreecheck",
];

/// SQLite's internal helpers behind ALTER TABLE RENAME/DROP COLUMN. They reach the authorizer
/// during the rewrite of the schema, but user SQL cannot call them (they are SQLITE_FUNC_INTERNAL).
const ALTER_INTERNALS: [&str; 5] = [
    "sqlite_rename_table",
    "sqlite_rename_column",
    "sqlite_rename_test",
    "sqlite_rename_quotefix",
    "sqlite_drop_column",
];

fn function_allowed(name: &str) -> bool {
    FUNCTIONS
        .iter()
        .chain(ALTER_INTERNALS.iter())
        .any(|f| f.eq_ignore_ascii_case(name))
}

fn pragma_allowed(name: &str, value: Option<&str>) -> bool {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "data_version" | "page_size" => value.is_none(),
        "case_sensitive_like"
        | "foreign_keys"
        | "defer_foreign_keys"
        | "ignore_check_constraints"
        | "legacy_alter_table"
        | "recursive_triggers"
        | "reverse_unordered_selects" => value.is_none_or(is_boolean),
        "foreign_key_check" | "table_list" | "quick_check" => value.is_none_or(not_reserved),
        "foreign_key_list" | "index_info" | "index_list" | "index_xinfo" | "table_info"
        | "table_xinfo" => value.is_some_and(not_reserved),
        "optimize" => value.is_none_or(|v| unquote(v).parse::<i64>().is_ok()),
        _ => false,
    }
}

fn unquote(value: &str) -> &str {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'\'' || bytes[0] == b'"')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

fn is_boolean(value: &str) -> bool {
    ["true", "false", "on", "off", "yes", "no", "1", "0"]
        .iter()
        .any(|b| b.eq_ignore_ascii_case(unquote(value)))
}

fn not_reserved(value: &str) -> bool {
    !reserved(unquote(value))
}

/// Whether an ALTER TABLE statement renames its table to a reserved (`_cf_`) name.
pub fn renames_to_reserved(sql: &str) -> bool {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words.windows(3).any(|w| {
        w[0].eq_ignore_ascii_case("rename")
            && w[1].eq_ignore_ascii_case("to")
            && reserved(w[2].trim_start_matches(['"', '`', '[', '\'']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefix_is_exactly_cf_underscore_in_any_case() {
        assert!(reserved("_cf_KV"));
        assert!(reserved("_CF_y"));
        assert!(reserved("_Cf_test"));
        assert!(!reserved("_cfx"));
        assert!(!reserved("_cf"));
    }

    #[test]
    fn pragmas_follow_the_allow_list() {
        assert!(pragma_allowed("foreign_keys", None));
        assert!(pragma_allowed("FOREIGN_KEYS", Some("'Yes'")));
        assert!(!pragma_allowed("foreign_keys", Some("'abcd'")));
        assert!(pragma_allowed("table_info", Some("t")));
        assert!(!pragma_allowed("table_info", Some("_cf_KV")));
        assert!(!pragma_allowed("table_info", None));
        assert!(pragma_allowed("quick_check", Some("10")));
        assert!(!pragma_allowed("journal_mode", None));
        assert!(!pragma_allowed("page_size", Some("8192")));
        assert!(pragma_allowed("optimize", Some("4")));
        assert!(!pragma_allowed("user_version", None));
    }

    #[test]
    fn rename_to_a_reserved_name_is_spotted_in_any_quoting() {
        assert!(renames_to_reserved("ALTER TABLE t RENAME TO _cf_x"));
        assert!(renames_to_reserved("alter table t rename to \"_CF_x\""));
        assert!(renames_to_reserved("ALTER TABLE t RENAME  TO  [_cf_x]"));
        assert!(!renames_to_reserved("ALTER TABLE t RENAME TO cf_x"));
        assert!(!renames_to_reserved(
            "ALTER TABLE t RENAME COLUMN a TO _cfx"
        ));
    }

    #[test]
    fn writes_to_sqlite_own_tables_are_not_noted() {
        let insert = |table| AuthAction::Insert { table_name: table };
        assert_eq!(Write::of(&insert("sqlite_master"), None), None);
        assert_eq!(Write::of(&insert("SQLITE_SEQUENCE"), None), None);
        assert_eq!(
            Write::of(&insert("users"), Some("log_users")),
            Some(Write::Insert {
                table: "users".into(),
                trigger: true
            })
        );
    }

    #[test]
    fn functions_are_allow_listed_case_insensitively() {
        assert!(function_allowed("UPPER"));
        assert!(function_allowed("->>"));
        assert!(!function_allowed("sqlite_version"));
        assert!(!function_allowed("json_pretty"));
    }
}

//! Environment substitution in string values.
//!
//! Runs on the merged tree, after parsing, so a variable's value can never
//! change the structure of the document (a value holding `\n  admin: true`
//! stays one string), and a variable in a lower layer that a higher layer
//! overrides is never required.
//!
//! Syntax: `${NAME}`, `${NAME:-default}` (the default applies when NAME is
//! unset or empty, as in the shell), and `$$` for a literal `$`. A `$` not
//! followed by `{` or `$` is kept as written. Keys are never substituted.
//! Unlike the shell, an empty variable without a default is an error: an
//! exported-but-empty `RISE_JWT_SECRET=` is a mistake, not a value.

use super::error::{ConfigError, Problem};
use super::yaml::{Kind, Node};

/// Substitutes every scalar in `node`, collecting one error per problem.
pub(crate) fn substitute_tree(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match &mut node.kind {
        Kind::Null => {}
        Kind::Scalar(text) => match substitute(text, env) {
            Ok(new) => *text = new,
            Err(problem) => errors.push(ConfigError::at(node.origin.clone(), path, problem)),
        },
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_tree(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        Kind::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                let child = if path.is_empty() {
                    key.name.clone()
                } else {
                    format!("{path}.{}", key.name)
                };
                substitute_tree(value, &child, env, errors);
            }
        }
    }
}

/// Substitutes one string.
///
/// # Errors
/// An unset variable without a default (the first one found), an unclosed
/// `${`, or a variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
pub fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Problem> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let Some(close) = body_and_tail.find('}') else {
                return Err(Problem {
                    message: format!("unclosed `${{` in `{text}`"),
                    hint: Some("write `$$` for a literal `$`".into()),
                });
            };
            let body = &body_and_tail[..close];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if !is_var_name(name) {
                return Err(Problem {
                    message: format!("`${{{body}}}` does not name a variable"),
                    hint: Some(
                        "use `${NAME}` or `${NAME:-default}`; write `$$` for a literal `$`".into(),
                    ),
                });
            }
            let value = env(name);
            match (value.as_deref(), default) {
                (Some(value), _) if !value.is_empty() => out.push_str(value),
                (_, Some(default)) => out.push_str(default),
                (value, None) => {
                    let state = if value.is_some() { "empty" } else { "not set" };
                    return Err(Problem {
                        message: format!("environment variable `{name}` is {state}"),
                        hint: Some(format!(
                            "set {name}, or give a default with `${{{name}:-value}}`"
                        )),
                    });
                }
            }
            rest = &body_and_tail[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("${PORT}\n  admin: true".into()),
            _ => None,
        }
    }

    fn sub(s: &str) -> Result<String, Problem> {
        substitute(s, &env)
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(sub("${PORT}").unwrap(), "8080");
        assert_eq!(sub("0.0.0.0:${PORT:-3000}").unwrap(), "0.0.0.0:8080");
        assert_eq!(sub("${UNSET:-3000}").unwrap(), "3000");
        assert_eq!(sub("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(sub("${UNSET:-}").unwrap(), "");
        assert_eq!(sub("${UNSET:-a:-b}").unwrap(), "a:-b");
    }

    #[test]
    fn dollars_are_escaped_or_kept() {
        assert_eq!(sub("$$").unwrap(), "$");
        assert_eq!(sub("pa$$${PORT}").unwrap(), "pa$8080");
        assert_eq!(sub("$${PORT}").unwrap(), "${PORT}");
        assert_eq!(sub("cost: 5$ or $HOME").unwrap(), "cost: 5$ or $HOME");
        assert_eq!(sub("trailing $").unwrap(), "trailing $");
    }

    #[test]
    fn substituted_values_are_not_substituted_again() {
        assert_eq!(sub("${TRICKY}").unwrap(), "${PORT}\n  admin: true");
    }

    #[test]
    fn problems_name_the_variable() {
        let p = sub("x${RISE_JWT_SECRET}").unwrap_err();
        assert_eq!(
            p.message,
            "environment variable `RISE_JWT_SECRET` is not set"
        );
        assert_eq!(
            sub("${EMPTY}").unwrap_err().message,
            "environment variable `EMPTY` is empty"
        );
        assert!(sub("${PORT").unwrap_err().message.contains("unclosed"));
        assert!(
            sub("${1X}")
                .unwrap_err()
                .message
                .contains("does not name a variable")
        );
        assert!(sub("${}").is_err());
    }
}

//! Requested scopes and what is granted of them.
//!
//! A scope is `repository:{name}:{actions}` (or `repository(class):…`, or
//! `registry:catalog:*`). Exactly one repository can be granted: the
//! ticket's `{namespace}/{project}`, and of its actions only `pull` and
//! `push`. Everything else is silently not granted: an error for a scope
//! on another repository would tell the caller whether it exists.

use serde::Serialize;

use crate::auth::AccessKind;

/// One entry of a registry token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub actions: Vec<&'static str>,
}

/// Scopes longer than this are not considered (and not granted).
const MAX_SCOPE_BYTES: usize = 512;

/// `(type, name, actions)` of one scope, or `None` when it has no such shape.
/// The name is everything between the first and the last `:`, so a name
/// with a port-like `:` still parses (and simply does not match).
pub fn parse(scope: &str) -> Option<(&str, &str, impl Iterator<Item = &str>)> {
    if scope.len() > MAX_SCOPE_BYTES {
        return None;
    }
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind.is_empty() || name.is_empty() {
        return None;
    }
    Some((kind, name, actions.split(',')))
}

/// What of `scopes` is granted to a holder of `repository` (`namespace/project`)
/// with `kind` access: `push` never for a pull ticket. Repeated scopes
/// merge; actions come out as `pull`, then `push`.
pub fn grant<'a>(
    scopes: impl IntoIterator<Item = &'a str>,
    repository: &str,
    access: AccessKind,
) -> Vec<Access> {
    let (mut pull, mut push) = (false, false);
    for scope in scopes {
        let Some((kind, name, actions)) = parse(scope) else {
            continue;
        };
        // `repository(plugin)` and other classes are not what a push needs.
        if kind != "repository" || name != repository {
            continue;
        }
        for action in actions {
            match action {
                "pull" => pull = true,
                "push" => push = push || access.is_push(),
                _ => {}
            }
        }
    }
    let actions: Vec<&'static str> = [(pull, "pull"), (push, "push")]
        .into_iter()
        .filter_map(|(wanted, a)| wanted.then_some(a))
        .collect();
    if actions.is_empty() {
        return Vec::new();
    }
    vec![Access {
        kind: "repository",
        name: repository.to_string(),
        actions,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "rise-apps/my-app";

    fn actions(scopes: &[&str]) -> Vec<&'static str> {
        grant(scopes.iter().copied(), REPO, AccessKind::Push)
            .into_iter()
            .flat_map(|a| {
                assert_eq!(a.name, REPO);
                a.actions
            })
            .collect()
    }

    #[test]
    fn the_own_repository_gets_pull_and_push_only() {
        assert_eq!(
            actions(&["repository:rise-apps/my-app:pull,push"]),
            ["pull", "push"]
        );
        assert_eq!(
            actions(&["repository:rise-apps/my-app:push,pull,*,delete"]),
            ["pull", "push"]
        );
        assert_eq!(actions(&["repository:rise-apps/my-app:pull"]), ["pull"]);
        assert_eq!(
            actions(&[
                "repository:rise-apps/my-app:pull",
                "repository:rise-apps/my-app:push"
            ]),
            ["pull", "push"],
            "repeated scopes merge"
        );
    }

    #[test]
    fn a_pull_ticket_is_granted_pull_only() {
        for scopes in [
            &["repository:rise-apps/my-app:pull,push"][..],
            &["repository:rise-apps/my-app:push"],
            &[
                "repository:rise-apps/my-app:push",
                "repository:rise-apps/my-app:pull",
            ],
        ] {
            let got: Vec<_> = grant(scopes.iter().copied(), REPO, AccessKind::Pull)
                .into_iter()
                .flat_map(|a| a.actions)
                .collect();
            assert!(!got.contains(&"push"), "{scopes:?}: {got:?}");
        }
        assert!(grant(["repository:rise-apps/my-app:push"], REPO, AccessKind::Pull).is_empty());
    }

    #[test]
    fn every_other_scope_gets_nothing() {
        for scope in [
            "repository:rise-apps/my-app2:pull,push",
            "repository:rise-apps/my-ap:pull,push",
            "repository:rise-apps/my-app/sub:pull,push",
            "repository:other/my-app:pull,push",
            "repository:my-app:pull,push",
            "repository:rise-apps/*:pull,push",
            "repository:RISE-APPS/MY-APP:pull,push",
            "repository(plugin):rise-apps/my-app:pull,push",
            "registry:catalog:*",
            "repository:rise-apps/my-app:*",
            "repository:rise-apps/my-app:",
            "repository:rise-apps/my-app",
            "repository::pull",
            "",
            ":::",
        ] {
            assert!(grant([scope], REPO, AccessKind::Push).is_empty(), "{scope}");
        }
    }

    #[test]
    fn a_grant_survives_other_scopes_in_the_same_request() {
        let got = grant(
            [
                "repository:rise-apps/other-app:pull",
                "repository:rise-apps/my-app:pull,push",
            ],
            REPO,
            AccessKind::Push,
        );
        assert_eq!(
            got,
            [Access {
                kind: "repository",
                name: REPO.into(),
                actions: vec!["pull", "push"]
            }]
        );
    }
}

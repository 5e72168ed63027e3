//! The planner on hand-built observed states: each scenario of the
//! reconcile contract (empty account, no drift, drift, removal, return,
//! unmanaged and adopted repositories, names outside the prefix).

use std::collections::BTreeMap;

use crate::support;

use rise_registry::config::{Config, RegistryConfig};
use rise_registry::reconcile::desired::{DesiredState, desired_state};
use rise_registry::reconcile::plan::{
    Action, ObservedRepository, ObservedState, RegistryScanning, RoleKind, plan,
};
use serde_json::{Value, json};

fn config(extra: &str) -> Config {
    let base = r#"
registry:
  type: ecr
  region: us-east-1
  account_id: "123456789012"
  role_arn: arn:aws:iam::123456789012:role/rise-backend
  push_role_arn: arn:aws:iam::123456789012:role/rise-backend-ecr-push
  tags: {team: platform}
projects: [{name: a}, {name: b}]
auth: {hs256_secret: 0123456789abcdef0123456789abcdef}
"#;
    support::load_config(&[("default.yaml", base), ("local.yaml", extra)], &[]).unwrap()
}

fn desired(extra: &str) -> DesiredState {
    let c = config(extra);
    let RegistryConfig::Ecr(ecr) = &c.registry else {
        unreachable!()
    };
    desired_state(ecr, &c.projects).unwrap()
}

/// What an account looks like after a correct apply of `desired`, with the
/// policies spelled differently (reordered, single values as lists), as
/// AWS may hand them back, and basic registry scanning read.
fn converged(d: &DesiredState) -> ObservedState {
    let respell = |v: &mut Value| {
        if let Some(statements) = v["Statement"].as_array_mut() {
            statements.reverse();
            for st in statements {
                if let Some(a) = st["Action"].as_str() {
                    st["Action"] = json!([a]);
                }
            }
        }
    };
    let mut o = ObservedState::converged(d);
    for role in [o.controller.as_mut(), o.push.as_mut()]
        .into_iter()
        .flatten()
    {
        respell(&mut role.trust);
        role.policies.values_mut().for_each(respell);
    }
    o.registry_scanning = Some(RegistryScanning {
        scan_type: "BASIC".into(),
        rules: 0,
    });
    o
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            serde_json::to_value(a).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn an_empty_account_gets_everything_in_dependency_order() {
    let d = desired("");
    let p = plan(&d, &ObservedState::default());
    assert_eq!(
        kinds(&p.actions),
        [
            "create_role",
            "create_role",
            "put_role_policy",
            "put_role_policy",
            "create_repository",
            "create_repository"
        ]
    );
    let Action::CreateRepository {
        repository,
        tags,
        settings,
    } = &p.actions[4]
    else {
        panic!()
    };
    assert_eq!(repository, "rise/a");
    assert_eq!(tags["rise:managed"], "true");
    assert_eq!(tags["rise:project"], "a");
    assert_eq!(tags["team"], "platform");
    assert_eq!(settings.get("lifecycle_policy"), 100);
    assert_eq!(
        serde_json::to_value(settings).unwrap()["lifecycle_policy"]["rules"][0]["selection"]["countNumber"],
        100
    );
}

#[test]
fn a_converged_account_plans_nothing() {
    let d = desired("");
    let p = plan(&d, &converged(&d));
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert!(p.unmanaged.is_empty());
}

#[test]
fn drift_shows_exactly_what_changed() {
    let d = desired("");
    let mut o = converged(&d);
    let a = o.repositories.get_mut("rise/a").unwrap();
    a.tags.remove("team");
    a.settings.0.set("tag_mutability", "IMMUTABLE");
    a.settings.0.set("lifecycle_policy", Value::Null);
    let controller = o.controller.as_mut().unwrap();
    controller.trust["Statement"][0]["Principal"]["AWS"] = json!("arn:aws:iam::999999999999:root");
    let push = o.push.as_mut().unwrap();
    push.policies.get_mut("rise-push").unwrap()["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "ecr:DeleteRepository", "Resource": "*"}));
    push.policies
        .insert("rise-extra".into(), json!({"Statement": []}));
    push.policies
        .insert("someone-elses".into(), json!({"Statement": []}));

    let p = plan(&d, &o);
    assert_eq!(
        kinds(&p.actions),
        [
            "update_trust",
            "put_role_policy",
            "delete_role_policy",
            "update_repository",
            "set_tags"
        ]
    );
    match &p.actions[0] {
        Action::UpdateTrust { role, .. } => assert_eq!(*role, RoleKind::Controller),
        other => panic!("{other:?}"),
    }
    match &p.actions[2] {
        Action::DeleteRolePolicy { policy, .. } => {
            assert_eq!(policy, "rise-extra", "other policies are left alone")
        }
        other => panic!("{other:?}"),
    }
    match &p.actions[3] {
        Action::UpdateRepository {
            repository,
            changes,
        } => {
            assert_eq!(repository, "rise/a");
            let attrs: Vec<&str> = changes.iter().map(|c| c.attribute()).collect();
            assert_eq!(attrs, ["image_tag_mutability", "lifecycle_policy"]);
        }
        other => panic!("{other:?}"),
    }
    match &p.actions[4] {
        Action::SetTags { set, remove, .. } => {
            assert_eq!(
                set,
                &BTreeMap::from([("team".to_string(), "platform".to_string())])
            );
            assert!(remove.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn removed_projects_are_orphaned_or_with_auto_remove_deleted() {
    let d = desired("");
    let mut o = converged(&d);
    let mut gone = o.repositories["rise/b"].clone();
    gone.tags.insert("rise:project".into(), "c".into());
    o.repositories.insert("rise/c".into(), gone.clone());
    let p = plan(&d, &o);
    assert_eq!(
        p.actions,
        [Action::Orphan {
            repository: "rise/c".into()
        }]
    );

    // Already orphaned: nothing more to do.
    o.repositories
        .get_mut("rise/c")
        .unwrap()
        .tags
        .insert("rise:orphaned".into(), "true".into());
    assert!(plan(&d, &o).is_empty());

    // auto_remove deletes, and does so last.
    let d = desired("registry:\n  auto_remove: true\n");
    let mut o = converged(&d);
    o.repositories.insert("rise/c".into(), gone);
    o.repositories.remove("rise/a");
    let p = plan(&d, &o);
    assert_eq!(
        kinds(&p.actions),
        ["create_repository", "delete_repository"]
    );
    assert_eq!(
        p.actions[1],
        Action::DeleteRepository {
            repository: "rise/c".into()
        }
    );
}

#[test]
fn a_project_that_comes_back_is_unorphaned() {
    let d = desired("");
    let mut o = converged(&d);
    o.repositories
        .get_mut("rise/a")
        .unwrap()
        .tags
        .insert("rise:orphaned".into(), "true".into());
    let p = plan(&d, &o);
    assert_eq!(
        p.actions,
        [Action::Unorphan {
            repository: "rise/a".into()
        }]
    );
}

#[test]
fn unmanaged_repositories_are_reported_or_adopted_never_removed() {
    let d = desired("registry:\n  auto_remove: true\n");
    let mut o = converged(&d);
    let foreign = ObservedRepository::made_elsewhere(BTreeMap::from([(
        "owner".to_string(),
        "someone".to_string(),
    )]));
    o.repositories
        .insert("rise/handmade".into(), foreign.clone());
    o.repositories.insert("other/a".into(), foreign.clone());
    let p = plan(&d, &o);
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert_eq!(
        p.unmanaged,
        ["rise/handmade"],
        "outside the prefix is not even reported"
    );

    // A project claims it: adopted, its own tags kept, settings enforced.
    o.repositories.insert("rise/a".into(), foreign);
    let p = plan(&d, &o);
    assert_eq!(
        kinds(&p.actions),
        ["adopt", "update_repository", "set_tags"]
    );
    match &p.actions[2] {
        Action::SetTags { set, remove, .. } => {
            assert_eq!(set.keys().collect::<Vec<_>>(), ["rise:tag-keys", "team"]);
            assert!(remove.is_empty(), "an adopted repository keeps its tags");
        }
        other => panic!("{other:?}"),
    }
}

/// Only keys in the `rise:tag-keys` record are ever removed: a tag added by
/// hand stays, a config key that was dropped goes, and a repository made
/// before the record existed loses nothing and gets the record.
#[test]
fn only_tags_rise_registry_recorded_are_removed() {
    let d = desired("");
    let mut o = converged(&d);
    let tags = &mut o.repositories.get_mut("rise/a").unwrap().tags;
    tags.insert("owner".into(), "team-x".into());
    assert!(
        plan(&d, &o).is_empty(),
        "a hand-added tag is not planned away"
    );

    // `env` was set by an earlier config (it is in the record), then dropped.
    let tags = &mut o.repositories.get_mut("rise/a").unwrap().tags;
    tags.insert("env".into(), "prod".into());
    tags.insert("rise:tag-keys".into(), "env team".into());
    let p = plan(&d, &o);
    assert_eq!(
        p.actions,
        [Action::SetTags {
            repository: "rise/a".into(),
            set: BTreeMap::from([("rise:tag-keys".into(), "team".into())]),
            remove: vec!["env".into()],
        }]
    );

    // No record (made by an older version): nothing removed, record added.
    let tags = &mut o.repositories.get_mut("rise/a").unwrap().tags;
    tags.remove("rise:tag-keys");
    let p = plan(&d, &o);
    assert_eq!(
        p.actions,
        [Action::SetTags {
            repository: "rise/a".into(),
            set: BTreeMap::from([("rise:tag-keys".into(), "team".into())]),
            remove: vec![],
        }]
    );
}

/// Role tags follow the same rule as repository tags: drift in a
/// configured tag is repaired, a dropped configured key is removed, and a
/// tag someone else put on the role stays.
#[test]
fn role_tags_are_planned_like_repository_tags() {
    let d = desired("");
    let mut o = converged(&d);
    let tags = &mut o.controller.as_mut().unwrap().tags;
    tags.insert("owner".into(), "security".into());
    tags.insert("team".into(), "someone-else".into());
    tags.insert("env".into(), "prod".into());
    tags.insert("rise:tag-keys".into(), "env team".into());
    let p = plan(&d, &o);
    assert_eq!(
        p.actions,
        [Action::SetRoleTags {
            role: RoleKind::Controller,
            name: "rise-backend".into(),
            set: BTreeMap::from([
                ("rise:tag-keys".into(), "team".into()),
                ("team".into(), "platform".into())
            ]),
            remove: vec!["env".into()],
        }]
    );
    assert_eq!(p.actions[0].to_string(), "set role tags rise-backend");
}

/// Where the registry's scanning configuration decides scanning, the
/// repositories' own flag is not planned, and the plan says why in one line.
#[test]
fn registry_scanning_makes_the_repository_flag_moot() {
    let d = desired("");
    let mut o = converged(&d);
    o.repositories
        .get_mut("rise/a")
        .unwrap()
        .settings
        .0
        .set("scan_on_push", false);
    let p = plan(&d, &o);
    assert_eq!(kinds(&p.actions), ["update_repository"], "the flag applies");
    assert_eq!(p.registry_scanning, None);

    for (scan_type, rules) in [("ENHANCED", 0), ("BASIC", 1)] {
        o.registry_scanning = Some(RegistryScanning {
            scan_type: scan_type.into(),
            rules,
        });
        let p = plan(&d, &o);
        assert!(p.is_empty(), "{scan_type}: {:?}", p.actions);
        assert!(
            p.registry_scanning
                .as_deref()
                .is_some_and(|n| n.contains(&format!("({scan_type} scanning"))),
            "{:?}",
            p.registry_scanning
        );
    }
}

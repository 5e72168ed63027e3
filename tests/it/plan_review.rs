//! Plans as a reviewer reads them: the text and Markdown renderings of the
//! planner's output for the changes that most need review (a trusted
//! principal added, a policy gaining and losing an action, a lifecycle
//! change, 900 like tag changes, everything created, an orphan, a delete),
//! snapshot-tested; the Markdown read back by a Markdown parser.

use crate::support;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use rise_registry::config::RegistryConfig;
use rise_registry::reconcile::desired::{DesiredState, desired_state};
use rise_registry::reconcile::meaning::meanings;
use rise_registry::reconcile::plan::{ObservedRepository, ObservedState, Plan, plan};
use rise_registry::reconcile::render::{TextOptions, to_json, to_markdown, to_text};
use serde_json::{Value, json};

const CI_USER: &str = "arn:aws:iam::123456789012:user/ci";

/// The desired state for `projects` and extra `registry:` lines.
fn desired(projects: &[String], registry_extra: &str) -> DesiredState {
    let projects: Vec<String> = projects.iter().map(|p| format!("{{name: {p}}}")).collect();
    let text = format!(
        "{}{registry_extra}\
         projects: [{}]\nauth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n",
        support::ecr_yaml(None),
        projects.join(", ")
    );
    let config = support::load_config(&[("default.yaml", &text)], &[]).unwrap();
    let RegistryConfig::Ecr(ecr) = &config.registry else {
        unreachable!()
    };
    desired_state(ecr, &config.projects).unwrap()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(ToString::to_string).collect()
}

/// An account as a correct apply of `d` leaves it.
fn converged(d: &DesiredState) -> ObservedState {
    ObservedState::converged(d)
}

fn text(p: &Plan) -> String {
    to_text(p, TextOptions::default())
}

fn markdown(p: &Plan) -> String {
    let md = to_markdown(p, TextOptions::default());
    well_formed(p, &md);
    md
}

/// Reads `md` with a CommonMark parser (tables on, as GitHub renders
/// them) and checks what a reviewer's tool would show: one summary table
/// with a header and two rows of four cells; every ```` ```diff ```` fence
/// parsed as a closed `diff` code block whose lines all start with a diff
/// mark; and every meaning of the plan present as text, escapes and all.
fn well_formed(p: &Plan, md: &str) {
    let events: Vec<Event<'_>> = Parser::new_ext(md, Options::ENABLE_TABLES).collect();
    let mut tables = 0;
    let mut rows = 0;
    let mut cells = 0;
    let mut diff_blocks = 0;
    let mut in_diff = false;
    let mut diff_text = String::new();
    let mut prose = String::new();
    for event in &events {
        match event {
            Event::Start(Tag::Table(columns)) => {
                tables += 1;
                assert_eq!(columns.len(), 4);
            }
            Event::Start(Tag::TableRow) => rows += 1,
            Event::Start(Tag::TableCell) => cells += 1,
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang))) => {
                assert_eq!(&**lang, "diff", "{md}");
                diff_blocks += 1;
                in_diff = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                in_diff = false;
                for line in diff_text.lines() {
                    assert!(
                        line.starts_with([' ', '+', '-']),
                        "a diff line without a mark: {line:?}\n{md}"
                    );
                }
                diff_text.clear();
            }
            Event::Text(t) if in_diff => diff_text.push_str(t),
            Event::Text(t) | Event::Code(t) => prose.push_str(t),
            Event::SoftBreak | Event::HardBreak => prose.push('\n'),
            Event::End(TagEnd::Item | TagEnd::Paragraph | TagEnd::Heading(_)) => prose.push('\n'),
            _ => {}
        }
    }
    assert!(!in_diff, "a diff block was left open\n{md}");
    if p.is_empty() {
        return;
    }
    assert_eq!((tables, rows, cells), (1, 2, 12), "{md}");
    assert_eq!(diff_blocks, md.matches("```diff\n").count(), "{md}");
    for action in &p.actions {
        for m in meanings(action) {
            assert!(
                prose.contains(&m.text),
                "meaning {:?} not in the rendered Markdown:\n{prose}",
                m.text
            );
        }
    }
}

#[test]
fn a_trusted_principal_added_reads_as_who_may_now_assume_what() {
    let projects = names(&["a"]);
    let before = desired(&projects, "");
    let after = desired(&projects, &format!("  trusted_principals: [{CI_USER}]\n"));
    let p = plan(&after, &converged(&before));
    let t = text(&p);
    assert!(
        t.contains(&format!(
            "# WIDENS ACCESS: trust: {CI_USER} may now assume rise-backend\n"
        )),
        "{t}"
    );
    snapshot!("plan_review_trust_text", t);
    snapshot!("plan_review_trust_markdown", markdown(&p));
}

#[test]
fn a_policy_gaining_and_losing_an_action_shows_both_in_place() {
    let d = desired(&names(&["a"]), "");
    let mut observed = converged(&d);
    let push = observed.push.as_mut().unwrap();
    let policy = push.policies.get_mut("rise-push").unwrap();
    let statements = policy["Statement"].as_array_mut().unwrap();
    let actions = statements
        .iter_mut()
        .find(|s| s["Sid"] == "PushPullUnderPrefix")
        .unwrap()["Action"]
        .as_array_mut()
        .unwrap();
    actions.retain(|a| a != "ecr:PutImage");
    actions.push(json!("ecr:BatchDeleteImage"));
    let p = plan(&d, &observed);
    let t = text(&p);
    assert!(
        t.contains("# WIDENS ACCESS: policy rise-push: + ecr:PutImage on rise/*\n"),
        "{t}"
    );
    assert!(
        t.contains("# narrows access: policy rise-push: - ecr:BatchDeleteImage on rise/*\n"),
        "{t}"
    );
    snapshot!("plan_review_policy_text", t);
    snapshot!("plan_review_policy_markdown", markdown(&p));
}

#[test]
fn a_lower_image_count_says_how_many_images_expire() {
    let projects = names(&["a", "b"]);
    let before = desired(&projects, "");
    let after = desired(&projects, "  max_image_count: 30\n");
    let p = plan(&after, &converged(&before));
    let t = text(&p);
    assert!(t.contains("# lifecycle: keep the newest 30 images (was 100): up to 70 images per repository will expire\n"), "{t}");
    snapshot!("plan_review_lifecycle_text", t);
    snapshot!("plan_review_lifecycle_markdown", markdown(&p));
}

#[test]
fn nine_hundred_like_tag_changes_are_one_group_and_verbose_names_each() {
    let projects: Vec<String> = (0..900).map(|i| format!("p{i:03}")).collect();
    let before = desired(&projects, "");
    let after = desired(&projects, "  tags: {team: platform}\n");
    let p = plan(&after, &converged(&before));
    let set_tags = p
        .actions
        .iter()
        .filter(|a| a.to_string().starts_with("set tags "))
        .count();
    assert_eq!(set_tags, 900);
    let t = text(&p);
    assert!(
        t.contains("  ~ 900 repositories: tags + rise:tag-keys = team, + team = platform\n"),
        "{t}"
    );
    assert!(t.lines().count() < 15, "{t}");
    snapshot!("plan_review_many_tags_text", t);
    snapshot!("plan_review_many_tags_markdown", markdown(&p));

    let verbose = to_text(
        &p,
        TextOptions {
            colour: false,
            verbose: true,
        },
    );
    for name in ["rise/p000", "rise/p450", "rise/p899"] {
        assert!(verbose.contains(name), "{name}");
    }
    assert!(!verbose.contains("more (`plan --verbose`"));
    // The JSON is never grouped.
    assert_eq!(
        to_json(&p)["actions"].as_array().unwrap().len(),
        p.actions.len()
    );
}

#[test]
fn an_empty_account_gets_everything_created_in_full() {
    let d = desired(&names(&["a", "b"]), "");
    let p = plan(&d, &ObservedState::default());
    let t = text(&p);
    snapshot!("plan_review_create_text", t);
    snapshot!("plan_review_create_markdown", markdown(&p));
}

#[test]
fn a_removed_project_is_orphaned_or_deleted() {
    let d = desired(&names(&["a"]), "");
    let mut observed = converged(&desired(&names(&["a", "old"]), ""));
    observed.repositories.insert(
        "rise/handmade".into(),
        ObservedRepository::made_elsewhere(Default::default()),
    );
    let p = plan(&d, &observed);
    snapshot!("plan_review_orphan_text", text(&p));
    snapshot!("plan_review_orphan_markdown", markdown(&p));

    let d = desired(&names(&["a"]), "  auto_remove: true\n");
    // auto_remove also lets the controller delete repositories.
    let p = plan(&d, &observed);
    snapshot!("plan_review_delete_text", text(&p));
    snapshot!("plan_review_delete_markdown", markdown(&p));
}

#[test]
fn the_json_plan_keeps_format_1_and_adds_each_actions_meanings() {
    let projects = names(&["a"]);
    let before = desired(&projects, "");
    let after = desired(&projects, &format!("  trusted_principals: [{CI_USER}]\n"));
    let p = plan(&after, &converged(&before));
    let v = to_json(&p);
    assert_eq!(v["format_version"], 1);
    let actions = v["actions"].as_array().unwrap();
    let trust = actions
        .iter()
        .find(|a| a["action"] == "update_trust" && a["name"] == "rise-backend")
        .unwrap();
    assert_eq!(
        trust["meanings"],
        json!([{"text": format!("trust: {CI_USER} may now assume rise-backend"), "access": "widens"}])
    );
    // Every action has at least one, and the rest of the action is as saved.
    for (a, saved) in actions.iter().zip(&p.actions) {
        assert!(!a["meanings"].as_array().unwrap().is_empty(), "{a}");
        let mut without: Value = a.clone();
        without.as_object_mut().unwrap().remove("meanings");
        assert_eq!(without, serde_json::to_value(saved).unwrap());
    }
}

#[test]
fn an_empty_plan_says_so_in_markdown() {
    let d = desired(&names(&["a"]), "");
    let p = plan(&d, &converged(&d));
    let md = markdown(&p);
    assert!(md.contains("No changes."), "{md}");
}

/// docs/reconcile.md shows these plans as they are: each example there is
/// a snapshot of this file, verbatim.
#[test]
fn the_example_plans_in_the_docs_are_the_snapshots() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/reconcile.md")).unwrap();
    for name in [
        "trust_text",
        "policy_text",
        "lifecycle_text",
        "many_tags_text",
        "orphan_text",
        "delete_text",
        "create_text",
        "trust_markdown",
    ] {
        let snap = std::fs::read_to_string(root.join(format!("snapshots/plan_review_{name}.snap")))
            .unwrap();
        // The snapshot's body follows its `---`-fenced header.
        let body = snap.splitn(3, "---\n").nth(2).unwrap();
        assert!(
            docs.contains(body),
            "docs/reconcile.md does not show snapshots/plan_review_{name}.snap as it is"
        );
    }
}

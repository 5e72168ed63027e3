//! The Terraform module and example roots, checked without a cloud: every
//! `.tf` file and template parses (hcl-rs), a structural lint, the module
//! README's tables against the code, and proof that the lint catches the
//! mistakes it exists for. `scripts/check-terraform` adds `terraform fmt`,
//! checkov and parliament.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Body, Expression};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The configurations: the module and each example root.
fn configurations() -> Vec<PathBuf> {
    [
        "modules/rise-aws",
        "terraform",
        "terraform/irsa",
        "terraform/iam-user",
    ]
    .iter()
    .map(|d| repo().join(d))
    .collect()
}

fn tf_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// What one configuration declares, and the source text it references from.
#[derive(Default, Debug)]
struct Declared {
    variables: BTreeMap<String, Body>,
    outputs: BTreeMap<String, Body>,
    locals: BTreeSet<String>,
    resources: BTreeSet<String>,
    data: BTreeSet<String>,
    modules: BTreeSet<String>,
}

fn label(block: &hcl::Block, i: usize) -> String {
    block
        .labels()
        .get(i)
        .map(|l| l.as_str().to_string())
        .unwrap_or_default()
}

/// Parses every file of a configuration; returns the declarations and the
/// problems found.
fn lint(files: &[(String, String)]) -> (Declared, Vec<String>) {
    let mut d = Declared::default();
    let mut problems = Vec::new();
    let mut code = String::new();
    for (name, text) in files {
        let body = match hcl::parse(text) {
            Ok(body) => body,
            Err(e) => {
                problems.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        for block in body.blocks() {
            let body = block.body().clone();
            match block.identifier() {
                "variable" => {
                    d.variables.insert(label(block, 0), body);
                }
                "output" => {
                    d.outputs.insert(label(block, 0), body);
                }
                "locals" => d
                    .locals
                    .extend(body.attributes().map(|a| a.key().to_string())),
                "resource" => {
                    d.resources
                        .insert(format!("{}.{}", label(block, 0), label(block, 1)));
                }
                "data" => {
                    d.data
                        .insert(format!("{}.{}", label(block, 0), label(block, 1)));
                }
                "module" => {
                    d.modules.insert(label(block, 0));
                }
                _ => {}
            }
        }
        code.push_str(&expressions_only(text));
        if let Some(pos) = text.find("arn:aws:") {
            let line = text[..pos].lines().count();
            problems.push(format!(
                "{name}:{line}: hard-coded `arn:aws:`; build ARNs from aws_partition"
            ));
        }
    }
    for (name, body) in &d.variables {
        for attr in ["description", "type"] {
            if !body.attributes().any(|a| a.key() == attr) {
                problems.push(format!("variable `{name}` has no {attr}"));
            }
        }
    }
    for (name, body) in &d.outputs {
        if !body.attributes().any(|a| a.key() == "description") {
            problems.push(format!("output `{name}` has no description"));
        }
        let value = body
            .attributes()
            .find(|a| a.key() == "value")
            .map(|a| a.expr().to_string())
            .unwrap_or_default();
        let secret = value.contains("aws_iam_access_key")
            || value.contains("secret_access_key")
            || value.contains(".secret");
        let sensitive = body
            .attributes()
            .any(|a| a.key() == "sensitive" && *a.expr() == Expression::Bool(true));
        if secret && !sensitive {
            problems.push(format!(
                "output `{name}` carries a secret but is not `sensitive = true`"
            ));
        }
    }
    for (kind, name) in references(&code) {
        let known = match kind {
            "var" => d.variables.contains_key(&name),
            "local" => d.locals.contains(&name),
            "module" => d.modules.contains(&name),
            "data" => d.data.contains(&name),
            _ => d.resources.contains(&name),
        };
        if !known {
            problems.push(format!("reference to undeclared {kind} `{name}`"));
        }
    }
    (d, problems)
}

/// The text with comments removed and string literals blanked, except for
/// their `${…}` interpolations: what is left is what Terraform evaluates.
fn expressions_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut in_string, mut depth) = (false, 0usize);
    while let Some(c) = chars.next() {
        if in_string && depth == 0 {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push(' ');
                }
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    depth = 1;
                    out.push(' ');
                }
                '\n' => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(' ');
            }
            '{' if depth > 0 => {
                depth += 1;
                out.push(c);
            }
            '}' if depth > 0 => {
                depth -= 1;
                out.push(if depth == 0 { ' ' } else { c });
            }
            '#' => while chars.next_if(|c| *c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|c| *c != '\n').is_some() {},
            _ => out.push(c),
        }
    }
    out
}

/// `var.x`, `local.x`, `module.x`, `data.t.x` and `aws_t.x` references.
fn references(code: &str) -> BTreeSet<(&'static str, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    };
    let mut refs = BTreeSet::new();
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices(|c: char| c.is_ascii_lowercase()) {
        // Only at the start of an identifier.
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || b"_.-\"".contains(&bytes[i - 1])) {
            continue;
        }
        let rest = &code[i..];
        for (prefix, kind) in [("var.", "var"), ("local.", "local"), ("module.", "module")] {
            if let Some(after) = rest.strip_prefix(prefix) {
                refs.insert((kind, ident(after)));
            }
        }
        if let Some(after) = rest.strip_prefix("data.") {
            let ty = ident(after);
            let name = ident(after[ty.len()..].trim_start_matches('.'));
            refs.insert(("data", format!("{ty}.{name}")));
        } else if rest.starts_with("aws_") {
            let ty = ident(rest);
            if let Some(after) = rest[ty.len()..].strip_prefix('.') {
                refs.insert(("resource", format!("{ty}.{}", ident(after))));
            }
        }
    }
    refs
}

#[test]
fn every_configuration_parses_and_passes_the_lint() {
    for dir in configurations() {
        let files = tf_files(&dir);
        assert!(!files.is_empty(), "{} has no .tf files", dir.display());
        let (_, problems) = lint(&files);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            dir.display(),
            problems.join("\n")
        );
    }
}

#[test]
fn every_policy_template_parses() {
    let dir = repo().join("modules/rise-aws/policies");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        text.parse::<hcl::Template>()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        count += 1;
    }
    assert_eq!(
        count,
        rise_registry::roles::TEMPLATES.len(),
        "every template is rendered by plan/apply"
    );
}

#[test]
fn the_lint_catches_broken_copies() {
    let module = tf_files(&repo().join("modules/rise-aws"));
    let broken = |file: &str, from: &str, to: &str| -> Vec<String> {
        let files: Vec<_> = module
            .iter()
            .map(|(name, text)| {
                let text = if name.ends_with(file) {
                    assert!(text.contains(from), "{file} lacks {from:?}");
                    text.replacen(from, to, 1)
                } else {
                    text.clone()
                };
                (name.clone(), text)
            })
            .collect();
        lint(&files).1
    };
    let syntax = broken(
        "main.tf",
        "resource \"aws_iam_role\" \"push\" {",
        "resource \"aws_iam_role\" \"push\" {{",
    );
    assert!(
        syntax.iter().any(|p| p.contains("does not parse")),
        "{syntax:?}"
    );
    let typo = broken("main.tf", "var.repo_prefix", "var.repo_prefx");
    assert!(
        typo.iter()
            .any(|p| p.contains("undeclared var `repo_prefx`")),
        "{typo:?}"
    );
    let resource = broken("main.tf", "aws_iam_role.push.id", "aws_iam_role.pusher.id");
    assert!(
        resource.iter().any(|p| p.contains("`aws_iam_role.pusher`")),
        "{resource:?}"
    );
    let local = broken("main.tf", "local.push_role_name\n", "local.push_rolename\n");
    assert!(
        local
            .iter()
            .any(|p| p.contains("undeclared local `push_rolename`")),
        "{local:?}"
    );
    let arn = broken("main.tf", "\"arn:${local.partition}:iam", "\"arn:aws:iam");
    assert!(
        arn.iter().any(|p| p.contains("hard-coded `arn:aws:`")),
        "{arn:?}"
    );
    let secret = broken(
        "outputs.tf",
        "  sensitive   = true\n}\n\noutput \"secret_access_key\"",
        "}\n\noutput \"secret_access_key\"",
    );
    assert!(
        secret
            .iter()
            .any(|p| p.contains("`access_key_id` carries a secret")),
        "{secret:?}"
    );
    let undocumented = broken(
        "variables.tf",
        "  description = \"Tags for the roles and the user.\"\n",
        "",
    );
    assert!(
        undocumented
            .iter()
            .any(|p| p.contains("variable `tags` has no description")),
        "{undocumented:?}"
    );
}

/// Rows of the markdown table under `heading`, as cells.
fn table(readme: &str, heading: &str) -> Vec<Vec<String>> {
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has no {heading}"));
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// An attribute as written (`n/a` when absent); strings without quotes.
fn attr(body: &Body, key: &str) -> String {
    match body.attributes().find(|a| a.key() == key).map(|a| a.expr()) {
        Some(Expression::String(s)) => s.clone(),
        Some(expr) => expr.to_string(),
        None => "n/a".into(),
    }
}

/// An attribute's expression as HCL text (strings keep their quotes).
fn written(body: &Body, key: &str) -> String {
    body.attributes()
        .find(|a| a.key() == key)
        .map_or_else(|| "n/a".into(), |a| a.expr().to_string())
}

#[test]
fn the_module_readme_tables_match_the_code() {
    let dir = repo().join("modules/rise-aws");
    let (declared, _) = lint(&tf_files(&dir));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();

    let inputs = table(&readme, "## Inputs");
    let documented: Vec<&str> = inputs.iter().map(|r| r[0].as_str()).collect();
    let code: Vec<&str> = declared.variables.keys().map(String::as_str).collect();
    assert_eq!(
        BTreeSet::from_iter(&documented),
        BTreeSet::from_iter(&code),
        "input names"
    );
    for row in &inputs {
        let body = &declared.variables[&row[0]];
        assert_eq!(
            row[1],
            attr(body, "description"),
            "description of {}",
            row[0]
        );
        assert_eq!(row[2], written(body, "type"), "type of {}", row[0]);
        assert_eq!(row[3], written(body, "default"), "default of {}", row[0]);
    }

    let outputs = table(&readme, "## Outputs");
    let documented: BTreeSet<&str> = outputs.iter().map(|r| r[0].as_str()).collect();
    let code: BTreeSet<&str> = declared.outputs.keys().map(String::as_str).collect();
    assert_eq!(documented, code, "output names");
    for row in &outputs {
        assert_eq!(
            row[1],
            attr(&declared.outputs[&row[0]], "description"),
            "description of output {}",
            row[0]
        );
    }
}

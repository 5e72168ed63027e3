//! The machinery the section readers of [`super::schema`] are written in:
//! reading values out of the located YAML tree while collecting every
//! problem, with the file, line and key path of the value it is about.
//!
//! A map is read through a [`MapReader`], which remembers which keys were
//! asked for. That record is the list of known keys: whatever a reader did
//! not ask for is reported as unknown, with a did-you-mean hint from the
//! keys it did ask for, so no list of keys is kept by hand beside the reads.

use super::error::{ConfigError, Origin, Problem};
use super::model::ConfigPath;
use super::yaml::{Key, Kind, Node};

/// Collects problems while sections are read; every read goes on after a
/// failed one, so a user sees all problems in one run.
#[derive(Default)]
pub(super) struct Reader {
    pub(super) errors: Vec<ConfigError>,
    /// Every key asked of any map, in order: what a reader run on an empty
    /// map reveals of the keys it knows (see `schema::registry_keys`).
    pub(super) asked: Vec<&'static str>,
    /// The config directory: relative file paths in config are resolved
    /// against it ([`Reader::config_path`]).
    pub(super) config_dir: std::path::PathBuf,
    /// Each workload rule's issuer name, where it was written: checked
    /// against `auth` once that is read.
    pub(super) rule_issuers: Vec<(String, Origin, String)>,
    /// Each workload rule read whole, where it was written: whether it
    /// pins a tenant is checked against its issuer once `auth` is read.
    pub(super) rules: Vec<(crate::access::WorkloadRule, Origin, String)>,
}

/// A map being read: tracks which keys were consumed (so the rest can be
/// reported as unknown) and which were asked for (the known keys).
pub(super) struct MapReader<'a> {
    path: String,
    /// Where to report a missing key: the map's own key line.
    pub(super) origin: Origin,
    pub(super) entries: &'a [(Key, Node)],
    used: Vec<bool>,
    asked: Vec<&'static str>,
}

impl<'a> MapReader<'a> {
    pub(super) fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under `key`, or `None` when absent or null. Asking makes
    /// `key` known here, whether or not it is present.
    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        let i = self.entries.iter().position(|(k, _)| k.name == key)?;
        self.used[i] = true;
        let node = &self.entries[i].1;
        (node.kind != Kind::Null).then_some(node)
    }

    /// Whether `key` is present with a value, without reading it.
    pub(super) fn has(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, v)| k.name == key && v.kind != Kind::Null)
    }

    pub(super) fn origin_of(&self, key: &str) -> Origin {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v.origin.clone())
            .unwrap_or_else(|| self.origin.clone())
    }
}

/// `path.key`, or `key` at the top.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The closest known name to `name`, if any is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

impl Reader {
    pub(super) fn push(&mut self, origin: &Origin, path: &str, problem: Problem) {
        self.errors
            .push(ConfigError::at(origin.clone(), path, problem));
    }

    pub(super) fn map<'a>(&mut self, node: &'a Node, path: &str) -> Option<MapReader<'a>> {
        match &node.kind {
            Kind::Map(entries) => Some(MapReader {
                path: path.to_string(),
                origin: node.origin.clone(),
                entries,
                used: vec![false; entries.len()],
                asked: Vec::new(),
            }),
            _ => {
                self.push(
                    &node.origin,
                    path,
                    Problem::new(format!("expected a map, found {}", node.type_name())),
                );
                None
            }
        }
    }

    /// Reports every key of `m` that was not read.
    pub(super) fn finish(&mut self, m: MapReader<'_>) {
        self.finish_with(m, |_| None);
    }

    /// As [`Self::finish`]; `elsewhere` may explain an unknown key as one
    /// that belongs to another section (a hint), before did-you-mean.
    pub(super) fn finish_with(
        &mut self,
        m: MapReader<'_>,
        elsewhere: impl Fn(&str) -> Option<String>,
    ) {
        self.asked.extend(&m.asked);
        for ((key, _), used) in m.entries.iter().zip(&m.used) {
            if *used {
                continue;
            }
            let problem = Problem::new(format!("unknown key `{}`", key.name));
            let problem = if let Some(hint) = elsewhere(&key.name) {
                problem.hint(hint)
            } else if let Some(near) = did_you_mean(&key.name, &m.asked) {
                problem.hint(format!("did you mean `{near}`?"))
            } else {
                problem.hint(format!("known keys here: {}", m.asked.join(", ")))
            };
            self.push(&key.origin, &m.child(&key.name), problem);
        }
    }

    /// A required value; a missing one is reported at the map.
    pub(super) fn required<'a, T>(
        &mut self,
        m: &mut MapReader<'a>,
        key: &'static str,
        read: impl FnOnce(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = m.child(key);
        match m.get(key) {
            Some(node) => read(self, node, &path),
            None => {
                self.push(
                    &m.origin,
                    &path,
                    Problem::new(format!("missing required key `{key}`")),
                );
                None
            }
        }
    }

    /// An optional value; `None` when absent, null, or invalid (reported).
    pub(super) fn optional<'a, T>(
        &mut self,
        m: &mut MapReader<'a>,
        key: &'static str,
        read: impl FnOnce(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = m.child(key);
        m.get(key).and_then(|node| read(self, node, &path))
    }

    /// A single value parsed by `parse`, whose problem is reported here.
    pub(super) fn scalar<T, E: Into<Problem>>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let Kind::Scalar(text) = &node.kind else {
            self.push(
                &node.origin,
                path,
                Problem::new(format!(
                    "expected a single value, found {}",
                    node.type_name()
                )),
            );
            return None;
        };
        match parse(text) {
            Ok(v) => Some(v),
            Err(p) => {
                self.push(&node.origin, path, p.into());
                None
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.scalar(node, path, |s| {
            if s.trim().is_empty() {
                Err(Problem::new("must not be empty"))
            } else {
                Ok(s.to_string())
            }
        })
    }

    /// A file name, resolved against the config directory when relative.
    /// Only the name is read here; whether the file is there and usable is
    /// checked where files are read (`config --check` and serve).
    pub(super) fn config_path(&mut self, node: &Node, path: &str) -> Option<ConfigPath> {
        let written = self.string(node, path)?;
        let written = std::path::Path::new(&written);
        Some(ConfigPath {
            path: if written.is_relative() {
                self.config_dir.join(written)
            } else {
                written.to_path_buf()
            },
            key: path.to_string(),
            origin: node.origin.clone(),
        })
    }

    pub(super) fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        self.scalar(node, path, |s| match s {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err(Problem::new(format!("expected true or false, found `{s}`"))),
        })
    }

    /// A whole number in `min..=max`.
    pub(super) fn uint(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        self.scalar(node, path, |s| match s.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(Problem::new(format!(
                "expected a whole number from {min} to {max}, found `{s}`"
            ))),
        })
    }

    pub(super) fn list<'a, T>(
        &mut self,
        node: &'a Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Kind::Seq(items) = &node.kind else {
            self.push(
                &node.origin,
                path,
                Problem::new(format!("expected a list, found {}", node.type_name())),
            );
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| item(self, n, &format!("{path}[{i}]")))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tree(text: &str) -> Node {
        super::super::yaml::parse(&Arc::from("t.yaml"), text).unwrap()
    }

    #[test]
    fn the_keys_asked_for_are_the_known_keys() {
        let root = tree("listen: x\nlisen: y\nzzz: 1\n");
        let mut r = Reader::default();
        let mut m = r.map(&root, "server").unwrap();
        assert!(m.get("listen").is_some());
        assert!(m.get("tls").is_none(), "asked, absent: still known");
        r.finish(m);
        let messages: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "t.yaml:2: server.lisen: unknown key `lisen`\n  hint: did you mean `listen`?",
                "t.yaml:3: server.zzz: unknown key `zzz`\n  hint: known keys here: listen, tls",
            ]
        );
        assert_eq!(r.asked, ["listen", "tls"]);
    }

    #[test]
    fn a_key_from_elsewhere_is_explained_before_did_you_mean() {
        let root = tree("region: x\n");
        let mut r = Reader::default();
        let m = r.map(&root, "registry").unwrap();
        r.finish_with(m, |k| (k == "region").then(|| "belongs to ecr".to_string()));
        assert_eq!(r.errors[0].hint.as_deref(), Some("belongs to ecr"));
    }
}

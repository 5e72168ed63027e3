//! YAML text → a tree of [`Node`]s that remember the file and line they came
//! from.
//!
//! serde's YAML value type forgets positions, and every configuration error
//! must name file and line, so the loader keeps its own small tree built from
//! the event stream of `yaml-rust2`. Scalars stay text: whether `3000` is a
//! number or a string is decided by the schema that reads it, after
//! environment substitution (so `port: ${PORT:-3000}` fills a number field).

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{ConfigError, Origin};

/// One value of a configuration file, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any scalar, kept as text.
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys in file order; duplicates are rejected while parsing.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub origin: Origin,
}

impl Node {
    pub(crate) fn empty_map(origin: Origin) -> Self {
        Self {
            kind: Kind::Map(Vec::new()),
            origin,
        }
    }

    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short word for the node's type, for "expected X, found Y" errors.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Scalar(_) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// Parses one configuration file. An empty file (or one holding only
/// comments) is an empty map.
///
/// # Errors
/// Syntax errors, several documents in one file, non-scalar or duplicate
/// keys, and unknown aliases, each with file and line.
pub fn parse(file: &Arc<str>, text: &str) -> Result<Node, Vec<ConfigError>> {
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        errors: Vec::new(),
    };
    if let Err(e) = Parser::new_from_str(text).load(&mut builder, true) {
        let origin = Origin::at(file.clone(), e.marker().line());
        return Err(vec![ConfigError::new(
            origin,
            "",
            format!("invalid YAML: {}", e.info()),
        )]);
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    let mut documents = builder.documents;
    match documents.len() {
        0 => Ok(Node::empty_map(Origin::at(file.clone(), 1))),
        1 => {
            let root = documents.pop().expect("one document");
            Ok(match root.kind {
                Kind::Null => Node::empty_map(root.origin),
                _ => root,
            })
        }
        _ => Err(vec![ConfigError::new(
            documents[1].origin.clone(),
            "",
            "a configuration file holds one YAML document; remove the `---` separator",
        )]),
    }
}

/// A collection under construction.
enum Frame {
    Seq {
        anchor: usize,
        node: Node,
    },
    Map {
        anchor: usize,
        node: Node,
        /// The key read but not yet given a value.
        pending_key: Option<Key>,
    },
}

struct Builder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    errors: Vec<ConfigError>,
}

impl Builder {
    fn origin(&self, mark: Marker) -> Origin {
        Origin::at(self.file.clone(), mark.line())
    }

    /// Attaches a finished node to its parent (or makes it a document).
    fn push_value(&mut self, mut node: Node) {
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { node: seq, .. }) => {
                if let Kind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map {
                node: map,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => match node.kind {
                    Kind::Scalar(name) => {
                        *pending_key = Some(Key {
                            name,
                            origin: node.origin,
                        })
                    }
                    Kind::Null => {
                        *pending_key = Some(Key {
                            name: String::new(),
                            origin: node.origin,
                        })
                    }
                    _ => {
                        // Keep the map well formed: remember a placeholder key
                        // so the value that follows is consumed, not misread
                        // as a key.
                        self.errors.push(ConfigError::new(
                            node.origin.clone(),
                            "",
                            "mapping keys must be plain strings",
                        ));
                        *pending_key = Some(Key {
                            name: String::new(),
                            origin: node.origin,
                        });
                    }
                },
                Some(key) => {
                    if let Kind::Map(entries) = &mut map.kind {
                        if entries.iter().any(|(k, _)| k.name == key.name) {
                            self.errors.push(ConfigError::new(
                                key.origin.clone(),
                                "",
                                format!("duplicate key `{}` in the same map", key.name),
                            ));
                            return;
                        }
                        // A nested map or list is best located by the line of
                        // its key (`registry:`), not by its first child.
                        if matches!(node.kind, Kind::Map(_) | Kind::Seq(_)) {
                            node.origin = key.origin.clone();
                        }
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let is_null = style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let node = Node {
                    kind: if is_null {
                        Kind::Null
                    } else {
                        Kind::Scalar(text)
                    },
                    origin: self.origin(mark),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                anchor,
                node: Node {
                    kind: Kind::Seq(Vec::new()),
                    origin: self.origin(mark),
                },
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                anchor,
                node: Node::empty_map(self.origin(mark)),
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, node) = match self.stack.pop() {
                    Some(Frame::Seq { anchor, node }) | Some(Frame::Map { anchor, node, .. }) => {
                        (anchor, node)
                    }
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    node.origin = self.origin(mark);
                    self.push_value(node);
                }
                None => {
                    let origin = self.origin(mark);
                    self.errors.push(ConfigError::new(
                        origin.clone(),
                        "",
                        "alias to an unknown anchor",
                    ));
                    self.push_value(Node {
                        kind: Kind::Null,
                        origin,
                    });
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<str> {
        Arc::from("test.yaml")
    }

    fn scalar(node: &Node) -> &str {
        match &node.kind {
            Kind::Scalar(s) => s,
            other => panic!("expected scalar, got {other:?}"),
        }
    }

    #[test]
    fn nodes_remember_their_lines() {
        let root = parse(
            &file(),
            "# comment\nregistry:\n  type: ecr\n  region: us-east-1\n",
        )
        .unwrap();
        let registry = root.get("registry").unwrap();
        assert_eq!(registry.origin.line, Some(2));
        let region = registry.get("region").unwrap();
        assert_eq!((scalar(region), region.origin.line), ("us-east-1", Some(4)));
    }

    #[test]
    fn scalars_stay_text_and_nulls_are_null() {
        let root = parse(&file(), "a: 0123\nb: 'null'\nc: ~\nd:\ne: true\n").unwrap();
        assert_eq!(scalar(root.get("a").unwrap()), "0123");
        assert_eq!(scalar(root.get("b").unwrap()), "null");
        assert_eq!(root.get("c").unwrap().kind, Kind::Null);
        assert_eq!(root.get("d").unwrap().kind, Kind::Null);
        assert_eq!(scalar(root.get("e").unwrap()), "true");
    }

    #[test]
    fn empty_files_are_empty_maps() {
        for text in ["", "# only a comment\n", "---\n"] {
            assert_eq!(
                parse(&file(), text).unwrap().kind,
                Kind::Map(vec![]),
                "{text:?}"
            );
        }
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let root = parse(&file(), "a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(root.get("a").unwrap().kind, root.get("b").unwrap().kind);
    }

    #[test]
    fn structural_errors_name_the_line() {
        let errs = parse(&file(), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "test.yaml:3: duplicate key `a` in the same map"
        );
        let errs = parse(&file(), "a: [1,\n").unwrap_err();
        assert!(errs[0].to_string().starts_with("test.yaml:"), "{}", errs[0]);
        assert!(errs[0].to_string().contains("invalid YAML"), "{}", errs[0]);
        let errs = parse(&file(), "a: 1\n---\nb: 2\n").unwrap_err();
        assert!(
            errs[0].to_string().contains("one YAML document"),
            "{}",
            errs[0]
        );
    }
}

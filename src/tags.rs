//! The tags rise-registry reads and writes on AWS resources, and AWS's
//! limits on tags: one leaf that the configuration (which validates
//! `registry.tags` against them) and the reconciler (which sets them) both
//! use.

use std::collections::BTreeMap;

/// Tag that marks a repository as managed by rise-registry.
pub const TAG_MANAGED: &str = "rise:managed";
/// Tag naming the project a repository belongs to.
pub const TAG_PROJECT: &str = "rise:project";
/// Tag on a managed repository whose project was removed (auto_remove off).
pub const TAG_ORPHANED: &str = "rise:orphaned";
/// Tag recording which tag keys rise-registry set from `registry.tags`, so
/// that a key removed from the config is removed from AWS while every tag
/// someone else put on the resource stays (see [`encode_tag_keys`]).
pub const TAG_KEYS: &str = "rise:tag-keys";
/// Tags rise-registry itself may put on a repository beside `registry.tags`
/// (`rise:managed`, `rise:project`, `rise:orphaned`, `rise:tag-keys`).
pub const RESERVED_REPOSITORY_TAGS: usize = 4;
/// AWS's limit of tags on one ECR repository or IAM role.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// AWS's limit of the length of a tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// The value of [`TAG_KEYS`] for these keys: sorted, separated by single
/// spaces. AWS allows the same characters in keys as in values, so no
/// separator is free; a space inside a key is written `@s` and an `@` as
/// `@@`. `None` when there are no keys (then the record is not written).
pub fn encode_tag_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let encoded: Vec<String> = keys
        .into_iter()
        .map(|k| k.replace('@', "@@").replace(' ', "@s"))
        .collect();
    (!encoded.is_empty()).then(|| encoded.join(" "))
}

/// The keys a [`TAG_KEYS`] value records (the inverse of
/// [`encode_tag_keys`]; an `@` before anything else is read as itself).
pub fn decode_tag_keys(value: &str) -> Vec<String> {
    value
        .split(' ')
        .filter(|k| !k.is_empty())
        .map(|k| {
            let mut out = String::new();
            let mut chars = k.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('@', Some('@')) => {
                        chars.next();
                        out.push('@');
                    }
                    ('@', Some('s')) => {
                        chars.next();
                        out.push(' ');
                    }
                    _ => out.push(c),
                }
            }
            out
        })
        .collect()
}

/// `registry.tags` plus the record of their keys: the tags rise-registry
/// sets on every resource it manages.
pub fn configured_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = tags.clone();
    if let Some(record) = encode_tag_keys(tags.keys()) {
        out.insert(TAG_KEYS.to_string(), record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_key_record_round_trips_any_key() {
        let keys: Vec<String> = ["cost center", "a@b", "team", "x@s", "k8s.io/name"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let record = encode_tag_keys(&sorted).unwrap();
        assert_eq!(record, "a@@b cost@scenter k8s.io/name team x@@s");
        assert_eq!(decode_tag_keys(&record), sorted);
        assert_eq!(encode_tag_keys(&Vec::new()), None);
        assert!(decode_tag_keys("").is_empty());
    }
}

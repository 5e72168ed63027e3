//! A ConfigMap or Secret volume as the kubelet lays it out in a pod: the
//! files of one version in a timestamped folder, a `..data` link to that
//! folder, and each file name a link through `..data`. An update writes a
//! new folder and swaps `..data` in one rename, so readers see the old
//! files or the new ones, never a mix; then the old folder is removed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

static VERSION: AtomicUsize = AtomicUsize::new(0);

/// Writes `files` into `dir` (which may hold an earlier version) the way
/// the kubelet's atomic writer does.
pub fn write_volume(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    let version = format!(
        "..2026_01_01_00_00_00.{}",
        VERSION.fetch_add(1, Ordering::Relaxed)
    );
    let folder = dir.join(&version);
    std::fs::create_dir(&folder).unwrap();
    for (name, bytes) in files {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in files.keys() {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
        }
    }
    // Files the new version no longer has lose their links.
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if !name.starts_with("..") && !files.contains_key(&name) {
            std::fs::remove_file(dir.join(&name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// [`write_volume`] for text files.
pub fn write_text_volume(dir: &Path, files: &[(&str, &str)]) {
    let files = files
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    write_volume(dir, &files);
}

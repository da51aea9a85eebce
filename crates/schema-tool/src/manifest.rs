//! `schemas/manifest.json` and the `vN.avsc` files it points at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use avro_compat::Level;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct ManifestFile {
    subjects: BTreeMap<String, SubjectEntry>,
}

#[derive(Debug, Deserialize)]
struct SubjectEntry {
    directory: String,
    compatibility: String,
    producer_version: u32,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub number: u32,
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub directory: String,
    pub level: Level,
    pub producer_version: u32,
    /// Oldest first, numbered 1, 2, … without gaps.
    pub versions: Vec<Version>,
}

/// Loads the manifest and every version file, checking that versions are numbered 1..=N and that
/// the producer version exists.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Subject>> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: ManifestFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))?;
    let mut subjects = Vec::new();
    for (name, entry) in manifest.subjects {
        let level: Level =
            entry.compatibility.parse().with_context(|| format!("{}: subject {name}", path.display()))?;
        let sub = dir.join(&entry.directory);
        let mut versions = Vec::new();
        for file in std::fs::read_dir(&sub).with_context(|| format!("reading {}", sub.display()))? {
            let file = file?.path();
            let Some(n) = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v')?.strip_suffix(".avsc")?.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            versions.push(Version { number: n, path: file, text });
        }
        versions.sort_by_key(|v| v.number);
        for (i, v) in versions.iter().enumerate() {
            if v.number != i as u32 + 1 {
                bail!(
                    "{}: versions must be numbered v1, v2, … without gaps; found v{} where v{} was expected",
                    sub.display(),
                    v.number,
                    i + 1
                );
            }
        }
        if versions.is_empty() {
            bail!("{}: subject {name} has no vN.avsc file", sub.display());
        }
        if !versions.iter().any(|v| v.number == entry.producer_version) {
            bail!(
                "{}: producer_version {} of {name} has no file v{}.avsc",
                path.display(),
                entry.producer_version,
                entry.producer_version
            );
        }
        subjects.push(Subject {
            name,
            directory: entry.directory,
            level,
            producer_version: entry.producer_version,
            versions,
        });
    }
    Ok(subjects)
}

//! The offline check: every version parses, and is compatible with the earlier ones at its
//! subject's level (Avro resolution rules, via avro-compat, exactly as the registry decides);
//! and the `events` crate was generated from these very files.

use apache_avro::Schema;

use crate::manifest::Subject;

/// One line per finding; `Ok` lines describe what passed.
pub struct Report {
    pub ok: Vec<String>,
    pub problems: Vec<String>,
}

pub fn check(subjects: &[Subject]) -> Report {
    let mut report = Report { ok: Vec::new(), problems: Vec::new() };
    for subject in subjects {
        let mut parsed: Vec<(i32, Schema)> = Vec::new();
        for v in &subject.versions {
            let schema = match Schema::parse_str(&v.text) {
                Ok(s) => s,
                Err(e) => {
                    report.problems.push(format!("{}: not a valid Avro schema: {e}", v.path.display()));
                    continue;
                }
            };
            if !parsed.is_empty() {
                let reasons = subject.level.check(&schema, &parsed);
                if reasons.is_empty() {
                    report.ok.push(format!(
                        "{} v{}: {} compatible with {}",
                        subject.name,
                        v.number,
                        subject.level,
                        earlier(&parsed, subject.level)
                    ));
                } else {
                    for r in reasons {
                        report.problems.push(format!(
                            "{} v{} ({}) breaks {}: {r}",
                            subject.name,
                            v.number,
                            v.path.display(),
                            subject.level
                        ));
                    }
                }
            }
            parsed.push((v.number as i32, schema));
        }
    }
    report
}

fn earlier(parsed: &[(i32, Schema)], level: avro_compat::Level) -> String {
    let transitive = level.as_str().ends_with("TRANSITIVE");
    let versions: Vec<String> = if transitive {
        parsed.iter().map(|(n, _)| format!("v{n}")).collect()
    } else {
        parsed.last().map(|(n, _)| format!("v{n}")).into_iter().collect()
    };
    versions.join(", ")
}

/// The `events` crate compiles the schema files in; if they differ from the files on disk, the
/// generated types are stale (rebuild).
pub fn generated_code_is_current(subjects: &[Subject]) -> Vec<String> {
    // Every subject the events crate generates types for: (subject, versions, producer version).
    let generated = [
        (events::device_synced::SUBJECT, events::device_synced::VERSIONS, events::device_synced::PRODUCER_VERSION),
        (
            events::user_data_erasure_requested::SUBJECT,
            events::user_data_erasure_requested::VERSIONS,
            events::user_data_erasure_requested::PRODUCER_VERSION,
        ),
    ];
    let mut problems = Vec::new();
    for (subject, compiled, producer) in
        subjects.iter().filter_map(|s| generated.iter().find(|g| g.0 == s.name).map(|g| (s, g.1, g.2)))
    {
        if compiled.len() != subject.versions.len() {
            problems.push(format!(
                "{}: the events crate was generated from {} version(s), the directory has {}; rebuild",
                subject.name,
                compiled.len(),
                subject.versions.len()
            ));
        }
        for (n, text) in compiled {
            match subject.versions.iter().find(|v| v.number == *n) {
                Some(v) if v.text == *text => {}
                Some(v) => {
                    problems.push(format!("{}: generated from an older {}; rebuild", subject.name, v.path.display()))
                }
                None => {
                    problems.push(format!("{}: generated from a v{n} that no longer exists; rebuild", subject.name))
                }
            }
        }
        if producer != subject.producer_version {
            problems.push(format!(
                "{}: the events crate writes v{producer}, the manifest says v{}; rebuild",
                subject.name, subject.producer_version
            ));
        }
    }
    problems
}

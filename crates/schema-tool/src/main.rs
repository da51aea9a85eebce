use std::path::PathBuf;

use anyhow::Context;
use schema_tool::{check, diff, manifest, register};

const USAGE: &str = "usage:
  schemas check    [--dir schemas]                              offline compatibility of every version, generated code current
  schemas diff     [--dir schemas] [--subject S] [--from N] [--to M]   what changed, in words (default: the last two versions)
  schemas register --registry URL [--dir schemas] [--apply]     set levels, check, register (dry run without --apply)";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()).await {
        eprintln!("schemas: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let command = args.first().cloned().unwrap_or_default();
    let (mut dir, mut registry, mut apply, mut subject, mut from, mut to) =
        (PathBuf::from("schemas"), None, false, None, None, None);
    let mut it = args.iter().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--dir" => dir = PathBuf::from(value()?),
            "--registry" => registry = Some(value()?),
            "--apply" => apply = true,
            "--subject" => subject = Some(value()?),
            "--from" => from = Some(value()?.parse::<u32>().context("--from takes a version number")?),
            "--to" => to = Some(value()?.parse::<u32>().context("--to takes a version number")?),
            other => anyhow::bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let subjects = manifest::load(&dir)?;
    match command.as_str() {
        "check" => {
            let report = check::check(&subjects);
            let mut problems = report.problems;
            problems.extend(check::generated_code_is_current(&subjects));
            for line in &report.ok {
                println!("ok: {line}");
            }
            if problems.is_empty() {
                println!(
                    "{} subject(s) checked: every version is compatible and the generated code is current",
                    subjects.len()
                );
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("problem: {p}");
                }
                anyhow::bail!("{} problem(s) in {}", problems.len(), dir.display())
            }
        }
        "diff" => {
            for s in subjects.iter().filter(|s| subject.as_ref().is_none_or(|x| *x == s.name)) {
                let last = s.versions.len() as u32;
                let to = to.unwrap_or(last);
                let from = from.unwrap_or(to.saturating_sub(1).max(1));
                let text = |n: u32| -> anyhow::Result<serde_json::Value> {
                    let v =
                        s.versions.iter().find(|v| v.number == n).with_context(|| format!("{} has no v{n}", s.name))?;
                    Ok(serde_json::from_str(&v.text)?)
                };
                let has = |n: u32| s.versions.iter().any(|v| v.number == n);
                if subject.is_none() && !(has(from) && has(to)) {
                    // Subjects version on their own: one without these versions has nothing to say.
                    println!("{}: no v{from} and v{to}; skipped (it has {last} version(s))", s.name);
                    continue;
                }
                println!("{}: v{from} → v{to}", s.name);
                let changes = diff::diff(&text(from)?, &text(to)?);
                if changes.is_empty() {
                    println!("  no changes");
                }
                for c in changes {
                    println!("  - {c}");
                }
            }
            Ok(())
        }
        "register" => {
            let url = registry.with_context(|| format!("--registry URL is required\n{USAGE}"))?;
            for line in register::register(&subjects, &url, apply).await? {
                println!("{line}");
            }
            Ok(())
        }
        "" | "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
}

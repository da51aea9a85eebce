//! `schema-registry passwd`: creates or updates one user of a credentials file. The password is
//! read from stdin (`--password-stdin`) or generated and printed once; only its argon2id hash is
//! written. The file is rewritten atomically with mode 0600, comments and other users kept.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;

use crate::auth::{self, Role};

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// The credentials file to create or update.
    #[arg(long)]
    pub file: PathBuf,
    /// The user to add, or whose password and role to replace.
    #[arg(long)]
    pub user: String,
    /// admin, writer or reader.
    #[arg(long)]
    pub role: String,
    /// Read the password from the first line of stdin instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Runs the subcommand; prints a generated password on stdout, once.
pub fn run(args: &PasswdArgs) -> anyhow::Result<()> {
    auth::valid_user_name(&args.user).map_err(anyhow::Error::msg)?;
    let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
    let existing = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.file.display())),
    };
    // A broken file is not rewritten: the operator fixes it first.
    auth::parse(&existing).with_context(|| format!("{} is not a valid credentials file", args.file.display()))?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            bail!("the password on stdin is empty");
        }
        (password, false)
    } else {
        (generate_password(), true)
    };
    let hash = auth::hash_password(&password)?;
    let updated = with_entry(&existing, &args.user, &format!("{}: {hash},{}", args.user, role.as_str()));
    write_private(&args.file, &updated)?;
    if generated {
        println!("{password}");
    }
    eprintln!(
        "{} user {:?} with role {} in {}",
        verb(&existing, &args.user),
        args.user,
        role.as_str(),
        args.file.display()
    );
    Ok(())
}

/// 24 random bytes, URL-safe base64: 192 bits, no characters a shell or `user:password` trips on.
pub fn generate_password() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(&argon2::password_hash::generate_salt());
    bytes.extend_from_slice(&argon2::password_hash::generate_salt()[..8]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn entry_user(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(u, _)| u.trim())
}

fn verb(existing: &str, user: &str) -> &'static str {
    if existing.lines().any(|l| entry_user(l) == Some(user)) {
        "updated"
    } else {
        "added"
    }
}

/// The file with `user`'s line replaced by `line`, or `line` appended.
fn with_entry(existing: &str, user: &str, line: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for l in existing.lines() {
        if entry_user(l) == Some(user) {
            out.push_str(line);
            replaced = true;
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if existing.is_empty() {
        out.push_str("# Schema registry users: `username: <argon2id hash>,role` (admin, writer or reader).\n");
        out.push_str("# Managed with `schema-registry passwd`; never put a plain-text password here.\n");
    }
    if !replaced {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes through a temporary file in the same directory and renames it over, mode 0600.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("the --file path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_replaced_in_place_and_comments_are_kept() {
        let existing = "# team\nalice: x,admin\nbob: y,reader\n";
        let out = with_entry(existing, "bob", "bob: z,writer");
        assert_eq!(out, "# team\nalice: x,admin\nbob: z,writer\n");
        let out = with_entry(existing, "carol", "carol: w,reader");
        assert!(out.ends_with("bob: y,reader\ncarol: w,reader\n"), "{out}");
        assert!(with_entry("", "a", "a: h,admin").starts_with("# Schema registry users"));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}

//! Generates Rust types from the Avro schemas in `schemas/`, so the types can never drift from the
//! source of truth. Supports the subset of Avro our events use: records, enums, arrays, maps,
//! `["null", T]` unions, primitives and logical types on primitives.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The generated module of one subject: `pub mod vN` per schema version (each version's own
/// types, for old producers and tests), the latest version re-exported as the reader's types, and
/// the schema texts.
fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let schemas_dir = manifest_dir.join("../../schemas");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_path = schemas_dir.join("manifest.json");
    println!("cargo:rerun-if-changed={}", manifest_path.display());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("schemas/manifest.json"))
            .expect("schemas/manifest.json is JSON");
    let subjects = manifest["subjects"].as_object().expect("manifest has subjects");
    for (subject, entry) in subjects {
        let dir = entry["directory"].as_str().expect("subject has a directory");
        let producer = entry["producer_version"].as_u64().expect("subject has a producer_version");
        println!("cargo:rerun-if-changed={}", schemas_dir.join(dir).display());
        let versions = versions_in(&schemas_dir.join(dir));
        let latest = *versions.last().unwrap_or_else(|| panic!("{dir} has no vN.avsc"));
        assert!(versions.contains(&producer), "{subject}: producer_version {producer} has no schema file");
        let mut code = String::new();
        for v in &versions {
            let path = schemas_dir.join(dir).join(format!("v{v}.avsc"));
            println!("cargo:rerun-if-changed={}", path.display());
            let body = generate(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let _ = writeln!(code, "/// Types of `{dir}/v{v}.avsc`.\npub mod v{v} {{\n{body}}}\n");
        }
        let abs = |v: u64| schemas_dir.join(dir).join(format!("v{v}.avsc")).display().to_string().replace('\\', "/");
        let _ = writeln!(code, "pub use v{latest}::*;\n");
        let _ = writeln!(code, "/// The subject's versions and their schema texts, oldest first.");
        let list: Vec<String> = versions.iter().map(|v| format!("({v}, include_str!({:?}))", abs(*v))).collect();
        let _ = writeln!(code, "pub const VERSIONS: &[(u32, &str)] = &[{}];", list.join(", "));
        let _ = writeln!(code, "/// The version producers write (the manifest's `producer_version`).\npub const PRODUCER_VERSION: u32 = {producer};");
        let _ = writeln!(
            code,
            "/// The schema producers write.\npub const SCHEMA_JSON: &str = include_str!({:?});",
            abs(producer)
        );
        let _ = writeln!(code, "/// The reader's schema: the latest version, whose types are re-exported above.\npub const READER_SCHEMA_JSON: &str = include_str!({:?});", abs(latest));
        let _ = writeln!(code, "/// The Schema Registry subject.\npub const SUBJECT: &str = {subject:?};");
        let full_name = record_full_name(&schemas_dir.join(dir).join(format!("v{latest}.avsc")));
        let _ = writeln!(
            code,
            "/// The record's full name (namespace.name), which tells the events on a topic apart.\npub const FULL_NAME: &str = {full_name:?};"
        );
        std::fs::write(out_dir.join(format!("{}.rs", dir.replace('-', "_"))), code).expect("write generated code");
    }
}

/// `namespace.name` of the top-level record of a schema file.
fn record_full_name(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name =
        schema["name"].as_str().unwrap_or_else(|| panic!("{}: the top level is not a named record", path.display()));
    match schema["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

/// The N of every `vN.avsc` in a directory, sorted.
fn versions_in(dir: &Path) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix('v')?.strip_suffix(".avsc")?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

fn generate(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let schema: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut gen = Generator::default();
    gen.type_of(&schema, "")?;
    Ok(gen.out)
}

#[derive(Default)]
struct Generator {
    out: String,
    /// Named types defined so far: is it an enum (else a record)?
    named: std::collections::HashMap<String, bool>,
}

impl Generator {
    /// Returns the Rust type for an Avro type, emitting definitions for named types on the way.
    fn type_of(&mut self, schema: &Value, namespace: &str) -> Result<String, String> {
        match schema {
            Value::String(name) => Ok(primitive(name).map(str::to_owned).unwrap_or_else(|| {
                // A reference to a named type defined earlier.
                rust_name(name.rsplit('.').next().unwrap_or(name))
            })),
            Value::Array(branches) => self.union(branches, namespace),
            Value::Object(obj) => {
                let kind = obj.get("type").ok_or("a type object without \"type\"")?;
                match kind.as_str() {
                    Some("record") => self.record(obj, namespace),
                    Some("enum") => self.enumeration(obj),
                    Some("array") => {
                        let items = obj.get("items").ok_or("array without items")?;
                        Ok(format!("Vec<{}>", self.type_of(items, namespace)?))
                    }
                    Some("map") => {
                        let values = obj.get("values").ok_or("map without values")?;
                        Ok(format!("std::collections::BTreeMap<String, {}>", self.type_of(values, namespace)?))
                    }
                    // A primitive with a logical type, e.g. {"type": "long", "logicalType": "timestamp-millis"}.
                    _ => self.type_of(kind, namespace),
                }
            }
            other => Err(format!("unsupported schema node {other}")),
        }
    }

    fn union(&mut self, branches: &[Value], namespace: &str) -> Result<String, String> {
        match branches {
            [Value::String(null), other] if null == "null" => {
                Ok(format!("Option<{}>", self.type_of(other, namespace)?))
            }
            _ => Err("only [\"null\", T] unions are supported".into()),
        }
    }

    fn record(&mut self, obj: &serde_json::Map<String, Value>, namespace: &str) -> Result<String, String> {
        let name = obj.get("name").and_then(Value::as_str).ok_or("record without name")?;
        let namespace = obj.get("namespace").and_then(Value::as_str).unwrap_or(namespace).to_owned();
        let fields = obj.get("fields").and_then(Value::as_array).ok_or("record without fields")?;
        let mut body = String::new();
        for field in fields {
            let fname = field.get("name").and_then(Value::as_str).ok_or("field without name")?;
            let ftype = self.type_of(field.get("type").ok_or("field without type")?, &namespace)?;
            if let Some(doc) = field.get("doc").and_then(Value::as_str) {
                let _ = writeln!(body, "    /// {doc}");
            }
            let _ = writeln!(body, "    pub {}: {ftype},", field_ident(fname));
        }
        let rust = rust_name(name);
        let mut encode = String::new();
        for field in fields {
            let fname = field.get("name").and_then(Value::as_str).ok_or("field without name")?;
            let place = format!("self.{}", field_ident(fname));
            encode += &self.encoder(field.get("type").ok_or("field without type")?, &place)?;
        }
        self.named.insert(name.to_owned(), false);
        let full = if namespace.is_empty() { name.to_owned() } else { format!("{namespace}.{name}") };
        let _ = writeln!(
            self.out,
            "impl crate::avro::Encode for {rust} {{\n    fn encode(&self, out: &mut Vec<u8>) {{\n{encode}    }}\n}}\n"
        );
        let _ = writeln!(self.out, "/// Avro record `{full}`.");
        if let Some(doc) = obj.get("doc").and_then(Value::as_str) {
            let _ = writeln!(self.out, "///\n/// {doc}");
        }
        let _ = writeln!(
            self.out,
            "#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]\npub struct {rust} {{\n{body}}}\n"
        );
        Ok(rust)
    }

    fn enumeration(&mut self, obj: &serde_json::Map<String, Value>) -> Result<String, String> {
        let name = obj.get("name").and_then(Value::as_str).ok_or("enum without name")?;
        let symbols = obj.get("symbols").and_then(Value::as_array).ok_or("enum without symbols")?;
        let rust = rust_name(name);
        self.named.insert(name.to_owned(), true);
        let mut body = String::new();
        for symbol in symbols {
            let symbol = symbol.as_str().ok_or("enum symbol is not a string")?;
            let _ = writeln!(body, "    #[serde(rename = \"{symbol}\")]\n    {},", rust_name(symbol));
        }
        let _ = writeln!(
            self.out,
            "/// Avro enum `{name}`.\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]\npub enum {rust} {{\n{body}}}\n"
        );
        Ok(rust)
    }
}

impl Generator {
    /// Statements that append the Avro binary encoding of the value at `place` (a place
    /// expression of the generated Rust type of `schema`) to `out`. Named types must be defined
    /// already, as Avro requires.
    fn encoder(&self, schema: &Value, place: &str) -> Result<String, String> {
        Ok(match schema {
            Value::String(name) => match name.as_str() {
                "null" => String::new(),
                "boolean" => format!("        out.push(u8::from({place}));\n"),
                "int" => format!("        crate::avro::write_long(out, i64::from({place}));\n"),
                "long" => format!("        crate::avro::write_long(out, {place});\n"),
                "float" | "double" => format!("        out.extend_from_slice(&{place}.to_le_bytes());\n"),
                "bytes" => format!("        crate::avro::write_bytes(out, &{place});\n"),
                "string" => format!("        crate::avro::write_bytes(out, {place}.as_bytes());\n"),
                other => {
                    let short = other.rsplit('.').next().unwrap_or(other);
                    match self.named.get(short) {
                        // An enum's index is its symbol's position, as the variants are declared.
                        Some(true) => format!("        crate::avro::write_long(out, {place} as i64);\n"),
                        Some(false) => format!("        {place}.encode(out);\n"),
                        None => return Err(format!("{other} is used before it is defined")),
                    }
                }
            },
            Value::Array(branches) => match branches.as_slice() {
                [Value::String(null), other] if null == "null" => {
                    let inner = self.encoder(other, "value")?;
                    // A `Copy` value is matched by value, anything else by reference.
                    let by = if self.is_copy(other) { "" } else { "&" };
                    format!(
                        "        match {by}{place} {{\n            None => out.push(0),\n            Some(value) => {{\n                out.push(2);\n{inner}            }}\n        }}\n"
                    )
                }
                _ => return Err("only [\"null\", T] unions are supported".into()),
            },
            Value::Object(obj) => match obj.get("type").and_then(Value::as_str) {
                Some("record") | Some("enum") => {
                    let name = obj.get("name").and_then(Value::as_str).ok_or("named type without name")?;
                    self.encoder(&Value::String(name.to_owned()), place)?
                }
                Some("array") => {
                    let items = obj.get("items").ok_or("array without items")?;
                    let item = self.encoder(items, "item")?;
                    let bind = if self.is_copy(items) { "&item" } else { "item" };
                    // One block: its count, the items, then the empty block that ends the array.
                    format!(
                        "        if !{place}.is_empty() {{\n            crate::avro::write_long(out, {place}.len() as i64);\n            for {bind} in &{place} {{\n{item}            }}\n        }}\n        out.push(0);\n"
                    )
                }
                Some("map") => {
                    let values = obj.get("values").ok_or("map without values")?;
                    let value = self.encoder(values, "value")?;
                    let bind = if self.is_copy(values) { "&value" } else { "value" };
                    format!(
                        "        if !{place}.is_empty() {{\n            crate::avro::write_long(out, {place}.len() as i64);\n            for (key, {bind}) in &{place} {{\n                crate::avro::write_bytes(out, key.as_bytes());\n{value}            }}\n        }}\n        out.push(0);\n"
                    )
                }
                // A primitive with a logical type.
                _ => self.encoder(obj.get("type").ok_or("a type object without \"type\"")?, place)?,
            },
            other => return Err(format!("unsupported schema node {other}")),
        })
    }

    /// Is the Rust type of `schema` `Copy` (a number, a boolean or an enum)? Loops and matches
    /// then bind it by value.
    fn is_copy(&self, schema: &Value) -> bool {
        match schema {
            Value::String(name) => match name.as_str() {
                "boolean" | "int" | "long" | "float" | "double" => true,
                other => self.named.get(other.rsplit('.').next().unwrap_or(other)) == Some(&true),
            },
            Value::Object(obj) => match obj.get("type") {
                Some(Value::String(t)) if t == "enum" => true,
                Some(Value::String(t)) if t == "record" || t == "array" || t == "map" => false,
                Some(kind) => self.is_copy(kind),
                None => false,
            },
            _ => false,
        }
    }
}

fn primitive(name: &str) -> Option<&'static str> {
    Some(match name {
        "null" => "()",
        "boolean" => "bool",
        "int" => "i32",
        "long" => "i64",
        "float" => "f32",
        "double" => "f64",
        "bytes" => "Vec<u8>",
        "string" => "String",
        _ => return None,
    })
}

/// `HEART_RATE` or `heart_rate` or `HeartRate` → `HeartRate`.
fn rust_name(name: &str) -> String {
    if name.contains('_') || name.chars().all(|c| !c.is_ascii_lowercase()) {
        name.split('_')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let lower = p.to_ascii_lowercase();
                let mut chars = lower.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect()
    } else {
        let mut chars = name.chars();
        chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
    }
}

fn field_ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "type", "match", "ref", "mod", "use", "fn", "struct", "enum", "loop", "move", "self", "box", "in", "impl",
        "trait", "where", "async", "await", "dyn",
    ];
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

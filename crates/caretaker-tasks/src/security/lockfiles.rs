//! Reading the packages and versions a lockfile pins: `Cargo.lock` (crates.io), pip's
//! `requirements.txt` (PyPI, `==` pins only) and npm's `package-lock.json` (versions 1 to 3).

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

/// A package ecosystem, named as OSV names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Ecosystem {
    #[serde(rename = "crates.io")]
    CratesIo,
    PyPI,
    #[serde(rename = "npm")]
    Npm,
}

impl Ecosystem {
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
        }
    }

    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        match name {
            "crates.io" => Some(Ecosystem::CratesIo),
            "PyPI" => Some(Ecosystem::PyPI),
            "npm" => Some(Ecosystem::Npm),
            _ => None,
        }
    }

    /// The name as the ecosystem compares names: PyPI folds case and runs of `-_.` (PEP 503);
    /// crates.io and npm names are exact.
    pub fn normalize(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => {
                let mut out = String::with_capacity(name.len());
                let mut dash = false;
                for c in name.trim().chars() {
                    if matches!(c, '-' | '_' | '.') {
                        dash = true;
                    } else {
                        if dash && !out.is_empty() {
                            out.push('-');
                        }
                        dash = false;
                        out.push(c.to_ascii_lowercase());
                    }
                }
                out
            }
            Ecosystem::CratesIo | Ecosystem::Npm => name.to_string(),
        }
    }

    /// The lockfile kind a file name says, if any.
    pub fn of_lockfile(path: &Path) -> Option<Ecosystem> {
        let name = path.file_name()?.to_str()?;
        if name == "Cargo.lock" {
            Some(Ecosystem::CratesIo)
        } else if name == "package-lock.json" || name == "npm-shrinkwrap.json" {
            Some(Ecosystem::Npm)
        } else if name.ends_with(".txt") && name.contains("requirements") {
            Some(Ecosystem::PyPI)
        } else {
            None
        }
    }
}

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
}

/// What a lockfile pins, and what it names without a version the scan can check.
#[derive(Debug, Default, Serialize)]
pub struct Lockfile {
    pub path: String,
    pub packages: Vec<Package>,
    /// Requirements without an exact pin, path or git dependencies, other registries: not
    /// checked, and listed so nobody believes they were.
    pub unchecked: Vec<String>,
}

/// Reads a lockfile; the error names the file and what is wrong with it.
pub fn read(path: &Path, ecosystem: Ecosystem) -> Result<Lockfile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file("read", path, e))?;
    let mut lockfile = match ecosystem {
        Ecosystem::CratesIo => cargo_lock(path, &text, &workspace_members(path))?,
        Ecosystem::PyPI => requirements(&text),
        Ecosystem::Npm => package_lock(path, &text)?,
    };
    lockfile.path = path.display().to_string();
    lockfile.packages.sort();
    lockfile.packages.dedup();
    Ok(lockfile)
}

/// The package names of the Cargo workspace beside a `Cargo.lock` (its own `[package]` and the
/// `[workspace] members`, globs expanded): the path packages that are the project's own code.
fn workspace_members(lockfile: &Path) -> std::collections::BTreeSet<String> {
    let root = lockfile.parent().unwrap_or(Path::new("."));
    let manifest =
        |dir: &Path| -> Option<toml::Table> { std::fs::read_to_string(dir.join("Cargo.toml")).ok()?.parse().ok() };
    let name = |t: &toml::Table| t.get("package")?.get("name")?.as_str().map(str::to_string);
    let mut names = std::collections::BTreeSet::new();
    let Some(top) = manifest(root) else { return names };
    names.extend(name(&top));
    let members = top.get("workspace").and_then(|w| w.get("members")).and_then(|m| m.as_array()).cloned();
    for pattern in members.unwrap_or_default().iter().filter_map(|m| m.as_str()) {
        let Ok(dirs) = glob::glob(&root.join(pattern).to_string_lossy()) else { continue };
        for dir in dirs.flatten() {
            names.extend(manifest(&dir).as_ref().and_then(name));
        }
    }
    names
}

/// Why the lockfile at `path` cannot be read as its kind.
fn malformed(path: &Path, cause: impl std::fmt::Display) -> Error {
    Error::step(format!("reading {}", path.display()), cause)
}

fn cargo_lock(path: &Path, text: &str, members: &std::collections::BTreeSet<String>) -> Result<Lockfile> {
    #[derive(serde::Deserialize)]
    struct CargoLock {
        #[serde(default)]
        package: Vec<CargoPackage>,
    }
    #[derive(serde::Deserialize)]
    struct CargoPackage {
        name: String,
        version: String,
        source: Option<String>,
    }
    let lock: CargoLock =
        toml::from_str(text).map_err(|e| malformed(path, format!("not a Cargo.lock: {}", e.message())))?;
    let mut out = Lockfile::default();
    for p in lock.package {
        match p.source.as_deref() {
            // Workspace members: our own code, not a published crate.
            None if members.contains(&p.name) => {}
            // A path dependency (a vendored or patched copy): whatever it was copied from, the
            // lockfile cannot say which published version it matches.
            None => out.unchecked.push(format!("{} {} (a path dependency: not a published crate)", p.name, p.version)),
            Some("registry+https://github.com/rust-lang/crates.io-index" | "sparse+https://index.crates.io/") => {
                out.packages.push(Package { ecosystem: Ecosystem::CratesIo, name: p.name, version: p.version })
            }
            Some(other) => out.unchecked.push(format!("{} {} from {other}", p.name, p.version)),
        }
    }
    Ok(out)
}

fn requirements(text: &str) -> Lockfile {
    let mut out = Lockfile::default();
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for raw in joined.lines() {
        // Comments start at a `#` at the start of a line or after whitespace.
        let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(i) => &raw[..i],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        // Included files and editable installs name packages the scan does not see: say so.
        let option = line.trim();
        let included = ["-r", "--requirement", "-c", "--constraint"].iter().any(|o| option.starts_with(o));
        let editable = ["-e", "--editable"].iter().any(|o| option.starts_with(o));
        if included {
            out.unchecked.push(format!("{option} (an included file is not read: list it in lockfiles to scan it)"));
            continue;
        }
        if editable {
            out.unchecked.push(format!("{option} (an editable install: not a registry version)"));
            continue;
        }
        // Other options (`--index-url`, ...) and per-requirement options (`--hash=...`).
        let line = line.split(" --").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        let requirement = line.split(';').next().unwrap_or("").trim();
        let name_end = requirement
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(requirement.len());
        let name = &requirement[..name_end];
        let mut rest = requirement[name_end..].trim_start();
        if let Some(extras_end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
            rest = rest[extras_end + 2..].trim_start();
        }
        let pinned = rest
            .strip_prefix("===")
            .or_else(|| rest.strip_prefix("=="))
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.contains([',', '*', ' ']));
        match (name.is_empty(), pinned) {
            (false, Some(version)) => out.packages.push(Package {
                ecosystem: Ecosystem::PyPI,
                name: Ecosystem::PyPI.normalize(name),
                version: version.to_string(),
            }),
            _ => out.unchecked.push(format!("{requirement} (not pinned with ==)")),
        }
    }
    out
}

fn package_lock(path: &Path, text: &str) -> Result<Lockfile> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| malformed(path, format!("not JSON: {e}")))?;
    let mut out = Lockfile::default();
    if let Some(packages) = json.get("packages").and_then(|p| p.as_object()) {
        for (key, entry) in packages {
            let Some(at) = key.rfind("node_modules/") else { continue }; // "" is the project itself
            if entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or(&key[at + "node_modules/".len()..]);
            push_npm(&mut out, name, entry);
        }
    } else if let Some(deps) = json.get("dependencies").and_then(|d| d.as_object()) {
        let mut stack: Vec<&serde_json::Map<String, serde_json::Value>> = vec![deps];
        while let Some(deps) = stack.pop() {
            for (name, entry) in deps {
                push_npm(&mut out, name, entry);
                if let Some(nested) = entry.get("dependencies").and_then(|d| d.as_object()) {
                    stack.push(nested);
                }
            }
        }
    } else {
        return Err(malformed(path, "no `packages` nor `dependencies`: not a package-lock.json"));
    }
    Ok(out)
}

fn push_npm(out: &mut Lockfile, name: &str, entry: &serde_json::Value) {
    match entry.get("version").and_then(|v| v.as_str()) {
        Some(v) if semver::Version::parse(v).is_ok() => {
            out.packages.push(Package { ecosystem: Ecosystem::Npm, name: name.to_string(), version: v.to_string() })
        }
        Some(v) => out.unchecked.push(format!("{name} {v} (not a registry version)")),
        None => out.unchecked.push(format!("{name} (no version)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_keep_exact_pins_and_list_the_rest() {
        let text = "# tools\nrequests==2.19.1  # pinned\nDjango[argon2] == 3.2.0 ; python_version >= '3.8'\n\
                    numpy>=1.20\n-r other.txt\nurllib3==1.26.4 \\\n    --hash=sha256:abc\nZope.Interface===5.0\nflask\n\
                    -e git+https://example.org/lib.git#egg=lib\n--index-url https://pypi.example\n";
        let lock = requirements(text);
        let pins: Vec<(&str, &str)> = lock.packages.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
        assert_eq!(
            pins,
            vec![("requests", "2.19.1"), ("django", "3.2.0"), ("urllib3", "1.26.4"), ("zope-interface", "5.0")]
        );
        // Everything that names a package the scan does not check is listed, with why; options
        // that name none (`--index-url`) are not.
        assert_eq!(lock.unchecked.len(), 4, "{:?}", lock.unchecked);
        assert!(lock.unchecked[0].starts_with("numpy>=1.20"));
        assert_eq!(lock.unchecked[1], "-r other.txt (an included file is not read: list it in lockfiles to scan it)");
        assert_eq!(lock.unchecked[2], "flask (not pinned with ==)");
        assert!(lock.unchecked[3].starts_with("-e git+https://example.org/lib.git#egg=lib (an editable install"));
    }

    #[test]
    fn package_lock_v3_and_v1() {
        let v3 = r#"{"lockfileVersion": 3, "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.20"},
            "node_modules/a/node_modules/minimist": {"version": "1.2.0"},
            "node_modules/alias": {"name": "left-pad", "version": "1.3.0"},
            "node_modules/local": {"link": true},
            "node_modules/gitdep": {"version": "git+https://x/y.git"}}}"#;
        let path = Path::new("package-lock.json");
        let lock = package_lock(path, v3).unwrap();
        let mut names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["left-pad", "lodash", "minimist"]);
        assert_eq!(lock.unchecked.len(), 1);
        let v1 = r#"{"lockfileVersion": 1, "dependencies": {"lodash": {"version": "4.17.20",
            "dependencies": {"minimist": {"version": "0.0.8"}}}}}"#;
        let lock = package_lock(path, v1).unwrap();
        assert_eq!(lock.packages.len(), 2);
        let refused = |text| package_lock(path, text).unwrap_err().to_string();
        assert!(refused("{}").starts_with("reading package-lock.json: no `packages` nor"), "{}", refused("{}"));
        assert!(refused("{").starts_with("reading package-lock.json: not JSON"), "{}", refused("{"));
    }

    #[test]
    fn cargo_lock_skips_workspace_members_and_lists_path_and_git_dependencies() {
        let text = "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"forked\"\nversion = \"0.2.0\"\nsource = \"git+https://example.org/forked#abc\"\n\n[[package]]\nname = \"vendored-trees\"\nversion = \"0.8.1\"\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), text).unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\nmembers = [\"crates/*\"]\n").unwrap();
        std::fs::create_dir_all(dir.path().join("crates/app")).unwrap();
        std::fs::write(dir.path().join("crates/app/Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
        let lock = read(&dir.path().join("Cargo.lock"), Ecosystem::CratesIo).unwrap();
        assert_eq!(
            lock.packages,
            vec![Package { ecosystem: Ecosystem::CratesIo, name: "smallvec".into(), version: "1.6.0".into() }]
        );
        assert_eq!(
            lock.unchecked,
            vec![
                "forked 0.2.0 from git+https://example.org/forked#abc".to_string(),
                "vendored-trees 0.8.1 (a path dependency: not a published crate)".to_string()
            ]
        );
        let none = std::collections::BTreeSet::new();
        let refused = cargo_lock(Path::new("Cargo.lock"), "[[package]]\nname = 3", &none).unwrap_err().to_string();
        assert!(refused.starts_with("reading Cargo.lock: not a Cargo.lock"), "{refused}");
    }

    #[test]
    fn pypi_names_fold() {
        assert_eq!(Ecosystem::PyPI.normalize("Zope__Interface.x"), "zope-interface-x");
        assert_eq!(Ecosystem::Npm.normalize("@scope/Pkg"), "@scope/Pkg");
    }
}

//! The Debian package of the desktop app, made by Tauri's bundler from the release binary the
//! other desktop tests use (no second release build): it declares the package of every
//! library the binary links, registers the `rounds://` handler, and apt can resolve it.
//!
//! The bundler is the Tauri CLI from the UI's npm packages (`ui/node_modules/.bin/tauri`,
//! the same program `cargo install tauri-cli` builds). It marks the binary it packages, so
//! it works on a copy.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Debian package that ships `library`, on this machine.
fn package_of(library: &str) -> String {
    let out = run(Command::new("dpkg").args(["-S", &format!("*/{library}")]));
    out.lines()
        .next()
        .and_then(|l| l.split(':').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_deb_declares_its_libraries_and_the_rounds_link_handler() {
    let cli = root().join("ui/node_modules/.bin/tauri");
    assert!(
        cli.is_file(),
        "{} is missing: run `npm ci` in ui/ (scripts/install-deps.sh does)",
        cli.display()
    );
    let binary = rounds_desktop_tests::app_binary();
    let target = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(target.path().join("release")).unwrap();
    std::fs::copy(&binary, target.path().join("release/rounds-desktop")).unwrap();
    run(Command::new(&cli)
        .args(["bundle", "--bundles", "deb"])
        .current_dir(root().join("src-tauri"))
        .env("CARGO_TARGET_DIR", target.path())
        .env("CI", "true"));
    let deb_dir = target.path().join("release/bundle/deb");
    let deb = std::fs::read_dir(&deb_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}", deb_dir.display()));

    // Every library the binary links comes from a package the .deb depends on.
    let control = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends"));
    let depends: Vec<&str> = control
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .collect();
    let unpacked = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path()));
    let installed = unpacked.path().join("usr/bin/rounds-desktop");
    let needed = run(Command::new("objdump").arg("-p").arg(&installed));
    let mut missing = Vec::new();
    for library in needed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
    {
        let package = package_of(library);
        if !depends.contains(&package.as_str()) {
            missing.push(format!("{library} ({package})"));
        }
    }
    assert!(
        missing.is_empty(),
        "the .deb does not declare {missing:?}; Depends: {control}"
    );
    let ldd = run(Command::new("ldd").arg(&installed));
    assert!(!ldd.contains("not found"), "{ldd}");

    // The rounds:// handler and the launcher entry.
    let entry = std::fs::read_to_string(
        unpacked
            .path()
            .join("usr/share/applications/Rounds.desktop"),
    )
    .unwrap();
    assert!(
        entry
            .lines()
            .any(|l| l == "MimeType=x-scheme-handler/rounds"),
        "{entry}"
    );
    assert!(entry.lines().any(|l| l == "Exec=rounds-desktop"), "{entry}");
    assert!(
        unpacked
            .path()
            .join("usr/share/icons/hicolor/128x128/apps/rounds-desktop.png")
            .is_file()
    );

    // apt can install it here: every dependency resolves (simulated; nothing changes).
    let plan = run(Command::new("apt-get")
        .args(["install", "--simulate", "--no-install-recommends"])
        .arg(&deb));
    assert!(plan.contains("Inst rounds"), "{plan}");
}

include!("src/command_names.rs");

fn main() {
    let ui = std::path::Path::new("../ui/dist/provider.html");
    println!("cargo:rerun-if-changed=../ui/dist");
    assert!(
        ui.is_file(),
        "the clinician window is not built: run `npm --prefix ui ci && npm --prefix ui run build` first (scripts/test.sh and scripts/run.sh do)"
    );
    // Every app command is listed, so capabilities can grant them one by one.
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMAND_NAMES)),
    )
    .expect("tauri build step");
}

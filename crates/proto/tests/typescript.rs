//! The UI's TypeScript types must match the Rust wire contract.

#[test]
fn generated_typescript_is_up_to_date() {
    // The folder at run time: a test binary reused from another checkout of the same commit
    // must read this checkout's file.
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("../../ui/src/generated/proto.ts");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = rounds_proto::typescript_bindings();
    assert!(
        committed == fresh,
        "{} is stale: run `cargo run -p rounds-proto --bin gen-ts` and commit the result",
        path.display()
    );
}

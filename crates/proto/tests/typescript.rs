//! The UI's TypeScript types must match the Rust wire contract.

#[test]
fn generated_typescript_is_up_to_date() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/generated/proto.ts");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = rounds_proto::typescript_bindings();
    assert!(
        committed == fresh,
        "{} is stale: run `cargo run -p rounds-proto --bin gen-ts` and commit the result",
        path.display()
    );
}

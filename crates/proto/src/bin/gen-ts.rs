//! Writes `ui/src/generated/proto.ts` from the wire contract.

fn main() -> std::io::Result<()> {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("../../ui/src/generated/proto.ts");
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(&path, rounds_proto::typescript_bindings())?;
    println!("wrote {}", path.display());
    Ok(())
}

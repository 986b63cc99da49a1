//! Compiles every `.proto` under `proto/` with `protox` (pure Rust): no system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/blob.proto", "proto/meta.proto", "proto/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // Methods a server does not implement answer UNIMPLEMENTED (tonic's default stubs), so a
    // new RPC can land in the contract before every server serves it.
    tonic_prost_build::configure()
        .generate_default_stubs(true)
        .bytes(".cairn.blob.v1.PutShardRequest.data")
        .bytes(".cairn.blob.v1.GetShardResponse.data")
        .bytes(".cairn.meta.v1.ObjectVersion.inline_data")
        .bytes(".cairn.meta.v1.RaftMessage.snapshot_chunk")
        .compile_fds(fds)?;
    Ok(())
}

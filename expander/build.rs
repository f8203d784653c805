//! Compiles `proto/expander.proto` with protox (pure Rust; no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/expander.proto");
    let descriptors = protox::compile(["expander.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Pods and nodes stay views into the request buffer until decoded.
        .bytes(".")
        // The server is written by hand (`grpc::ExpanderServer`) to read the
        // request in place; the client serves tests, benchmarks and tools.
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}

//! Compiles `proto/expander.proto` with protox (pure Rust; no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/expander.proto");
    let descriptors = protox::compile(["expander.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // Pods and nodes stay views into the request buffer until decoded.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}

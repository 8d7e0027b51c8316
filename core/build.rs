//! Generates the LDLM gRPC client from `proto/ldlm.proto` with a pure-Rust
//! protobuf compiler (protox), so building polylock needs no `protoc`. Only
//! with the `ldlm` feature: without it there is no LDLM backend to use the
//! code (the build-dependencies are still built; cargo cannot make them
//! optional per feature).

fn main() {
    println!("cargo:rerun-if-changed=proto/ldlm.proto");
    if std::env::var_os("CARGO_FEATURE_LDLM").is_none() {
        return;
    }
    let descriptors =
        protox::compile(["proto/ldlm.proto"], ["proto"]).expect("proto/ldlm.proto compiles");
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(descriptors)
        .expect("the LDLM client code is generated");
}

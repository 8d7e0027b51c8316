//! Generates the LDLM gRPC client from `proto/ldlm.proto` with a pure-Rust
//! protobuf compiler (protox), so building polylock needs no `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/ldlm.proto");
    let descriptors =
        protox::compile(["proto/ldlm.proto"], ["proto"]).expect("proto/ldlm.proto compiles");
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(descriptors)
        .expect("the LDLM client code is generated");
}

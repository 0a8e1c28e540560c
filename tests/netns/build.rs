//! Builds the test client of the Kubernetes CRI subset the containerd tests drive.

fn main() {
    println!("cargo:rerun-if-changed=proto/cri.proto");
    if let Err(e) = tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/cri.proto"], &["proto"])
    {
        println!(
            "cargo:warning=compile proto/cri.proto (needs protoc, Debian's protobuf-compiler): {e}"
        );
        std::process::exit(1);
    }
}

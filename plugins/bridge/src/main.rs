//! `netctl-bridge`: the CNI plugin behind Docker-style bridge networks.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = netctl_bridge::helper_mode(&args) {
        std::process::exit(code);
    }
    netctl_bridge::run()
}

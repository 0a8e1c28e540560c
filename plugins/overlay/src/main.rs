//! `netctl-overlay`: the CNI plugin behind overlay networks.

fn main() {
    // The bridge path starts its firewall watcher and link reaper as this binary.
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = netctl_bridge::helper_mode(&args) {
        std::process::exit(code);
    }
    netctl_overlay::run()
}

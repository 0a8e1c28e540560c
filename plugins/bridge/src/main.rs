//! `netctl-bridge`: the CNI plugin behind Docker-style bridge networks.

fn main() {
    netctl_bridge::run()
}

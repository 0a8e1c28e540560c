//! `netctl-overlay`: the CNI plugin behind overlay networks.

fn main() {
    netctl_overlay::run()
}

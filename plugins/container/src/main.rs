//! `netctl-container`: the CNI plugin behind `--net container:NAME`.

fn main() {
    netctl_container::run()
}

//! `netctl-bridge`: the CNI plugin behind Docker-style bridge networks.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, run_dir] = args.as_slice() {
        if flag == "--watch-firewall" {
            std::process::exit(netctl_bridge::watch_firewall(std::path::Path::new(run_dir)));
        }
    }
    if let [_, flag, name, fd] = args.as_slice() {
        if flag == "--reap-link" {
            let code = i32::from(netctl_bridge::reap_link(name, fd).is_err());
            std::process::exit(code);
        }
    }
    netctl_bridge::run()
}

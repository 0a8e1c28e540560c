// libcni-client drives CNI plugins through Debian's libcni, the library podman's CNI
// backend and containerd use, so tests can show that a real client accepts our plugins.
//
// Usage: libcni-client add|check|del|version CONFLIST CONTAINER_ID NETNS IFNAME
// Plugins are searched in CNI_PATH; results are cached in CNI_CACHE_DIR.
// CAP_ARGS may hold a JSON object of capability arguments.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: libcni-client add|check|del CONFLIST CONTAINER_ID NETNS IFNAME")
	}
	list, err := libcni.ConfListFromFile(args[1])
	if err != nil {
		return err
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{ContainerID: args[2], NetNS: args[3], IfName: args[4]}
	if caps := os.Getenv("CAP_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			return fmt.Errorf("CAP_ARGS: %w", err)
		}
	}
	ctx := context.Background()
	switch args[0] {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return res.Print()
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	case "version":
		for _, p := range list.Plugins {
			info, err := cni.GetVersionInfo(ctx, p.Network.Type)
			if err != nil {
				return err
			}
			fmt.Println(p.Network.Type, info.SupportedVersions())
		}
		return nil
	}
	return fmt.Errorf("unknown action %q", args[0])
}

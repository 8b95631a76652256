package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/exec"
)

// newBinfmtCmd is kiln binfmt: the one place kiln changes the host's binfmt_misc
// registrations, which a build of a foreign platform's RUN steps needs (a build only
// reads them).
func newBinfmtCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "binfmt",
		Short: "Register emulators for RUN steps of foreign platforms (binfmt_misc)",
		Long: `A RUN in a stage of another architecture (kiln build --platform linux/arm64 on an
amd64 host) runs that architecture's binaries under an emulator the kernel's
binfmt_misc hands them to. kiln uses Debian's qemu-user-static
(apt-get install qemu-user-static), registered with the F (fix binary) flag so that it
works inside a step's rootfs. A build never changes the registrations; these commands
do, as root, for the whole host (until reboot).

Examples:
  kiln binfmt install arm64
  kiln binfmt install arm64 arm riscv64
  kiln binfmt status
  kiln binfmt remove arm64`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "install ARCH...",
		Short: "Register qemu-user-static for each architecture (arm64, arm, riscv64, ppc64le, s390x, ...)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arch := range args {
				e, added, err := exec.InstallEmulator(arch)
				if err != nil {
					return fmt.Errorf("kiln binfmt install %s: %w", arch, err)
				}
				verb := "registered"
				if !added {
					verb = "already registered"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s (interpreter %s, flags %s)\n", arch, verb, e.Name, e.Interpreter, e.Flags)
				if _, err := exec.FindEmulator(arch); err != nil {
					return fmt.Errorf("kiln binfmt install %s: %w", arch, err)
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "remove ARCH...",
		Short: "Remove the qemu-NAME registration of each architecture",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mounted, err := exec.BinfmtMounted()
			if err != nil {
				return err
			}
			if !mounted {
				fmt.Fprintf(cmd.OutOrStdout(), "binfmt_misc is not mounted on %s: nothing is registered\n", exec.BinfmtDir)
				return nil
			}
			for _, arch := range args {
				removed, err := exec.RemoveEmulator(arch)
				if err != nil {
					return fmt.Errorf("kiln binfmt remove %s: %w", arch, err)
				}
				q, _ := exec.QemuName(arch)
				if removed {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: removed qemu-%s\n", arch, q)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: qemu-%s was not registered\n", arch, q)
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Say which architectures' RUN steps this host can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return binfmtStatus(cmd.OutOrStdout())
		},
	})
	return cmd
}

// binfmtStatus prints, for each architecture kiln knows, whether RUN steps of it run
// natively, under an emulator, or not at all.
func binfmtStatus(w io.Writer) error {
	mounted, err := exec.BinfmtMounted()
	if err != nil {
		return err
	}
	if !mounted {
		if err := exec.Isolate(); err != nil { // mount it only in a private namespace
			return err
		}
		if err := exec.MountBinfmt(); err != nil {
			return err
		}
	}
	for _, a := range []string{"386", "amd64", "arm", "arm64", "loong64", "mips64le", "ppc64", "ppc64le", "riscv64", "s390x"} {
		switch e, err := exec.FindEmulator(a); {
		case !exec.NeedsEmulation(a):
			fmt.Fprintf(w, "linux/%-9s native (host linux/%s)\n", a, runtime.GOARCH)
		case err != nil:
			fmt.Fprintf(w, "linux/%-9s no emulator: kiln binfmt install %s\n", a, a)
		default:
			fmt.Fprintf(w, "linux/%-9s emulated by %s (%s, flags %s)\n", a, e.Name, e.Interpreter, e.Flags)
		}
	}
	return nil
}

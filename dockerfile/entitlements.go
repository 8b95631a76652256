package dockerfile

import (
	"fmt"
	"slices"
)

// Entitlements kiln knows, as buildx's --allow names them.
const (
	EntitlementSecurityInsecure = "security.insecure"
	EntitlementNetworkHost      = "network.host"
)

// ValidateEntitlement accepts the --allow values kiln knows.
func ValidateEntitlement(e string) error {
	switch e {
	case EntitlementSecurityInsecure, EntitlementNetworkHost:
		return nil
	}
	return fmt.Errorf("invalid --allow %q: kiln knows security.insecure and network.host", e)
}

// checkSecurity decides RUN --security. sandbox is the default. insecure needs the
// security.insecure entitlement, as in BuildKit; granted, it is still refused, as
// kiln's sandbox cannot yet run a step with every capability and running it
// sandboxed would silently change what the step does.
func (b *build) checkSecurity(sc *stepCtx, sec string) error {
	switch sec {
	case "", "sandbox":
		return nil
	case "insecure":
		if !slices.Contains(b.opts.Entitlements, EntitlementSecurityInsecure) {
			return sc.errorf(b.opts.Filename, "RUN --security=insecure is not allowed: it needs the security.insecure entitlement (kiln build --allow security.insecure)")
		}
		return sc.errorf(b.opts.Filename, "RUN --security=insecure: the security.insecure entitlement is granted, but kiln cannot run a step with all capabilities yet (not implemented); remove --security=insecure")
	}
	return sc.errorf(b.opts.Filename, "RUN --security=%s is not supported (use sandbox or insecure)", sec)
}
